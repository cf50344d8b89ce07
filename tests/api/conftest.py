"""A seeded marketplace served by a real API process on loopback, per store kind.

The world is seeded through the services (tests/scenario.py), with product versions that
are real content-addressed Parquet files; then ``uvicorn marketplace.api.app:create_app
--factory`` is started in a subprocess against the same store (a SQLite file, or a
database of the throwaway PostgreSQL cluster), and tests speak HTTP to it with httpx
while holding their own ``Marketplace`` to change the world (suspend, revoke) and read
the ledgers the API wrote.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # ``tests.scenario`` must import under plain ``pytest`` too
    sys.path.insert(0, str(ROOT))

from domain.usage import UsageLedger, period_of  # noqa: E402
from marketplace.bootstrap import Marketplace, build  # noqa: E402
from marketplace.config import Config  # noqa: E402
from tests.scenario import (  # noqa: E402
    Staff,
    Unit,
    active_subscription,
    approved_application,
    basic_plan,
    built_product,
    qualified_unit,
    staff,
)

DISTRICTS = ["昆都仑区", "青山区", "东河区", "九原区", "石拐区", "白云鄂博矿区", "土默特右旗", "固阳县"]
FIELDS: list[dict[str, Any]] = [
    {"name": "district", "dtype": "category", "description": "City district of the meter"},
    {"name": "month", "dtype": "date", "description": "First day of the billing month"},
    {"name": "consumption_m3", "dtype": "float", "description": "Water consumed in cubic metres"},
    {"name": "holder_name", "dtype": "string", "description": "Account holder", "personal": True},
]


def water_frame(rows: int = 2400, seed: int = 7) -> pl.DataFrame:
    """Synthetic water readings: districts of very different sizes (one tiny), personal names."""
    import random

    rng = random.Random(seed)
    weights = [30, 25, 20, 12, 6, 4, 2, 1]  # 固阳县 is small: groups there fall under k after filtering
    districts = rng.choices(DISTRICTS, weights=weights, k=rows)
    months = [date(2024, 1 + rng.randrange(12), 1) for _ in range(rows)]
    consumption = [round(rng.uniform(0.5, 40.0), 3) for _ in range(rows)]
    names = [f"户主{i:05d}" for i in range(rows)]
    return pl.DataFrame(
        {"district": districts, "month": months, "consumption_m3": consumption, "holder_name": names},
        schema={"district": pl.Categorical, "month": pl.Date, "consumption_m3": pl.Float64, "holder_name": pl.String},
    )


def store_version(config: Config, frame: pl.DataFrame) -> str:
    """Write ``frame`` as content-addressed Parquet under the product dir; return its hash."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data = buffer.getvalue()
    content_hash = hashlib.sha256(data).hexdigest()
    config.product_dir.mkdir(parents=True, exist_ok=True)
    (config.product_dir / f"{content_hash}.parquet").write_bytes(data)
    return content_hash


def data_product(
    mp: Marketplace, people: Staff, *, name: str, grade: str, openness: str, frame: pl.DataFrame,
    delivery_modes: tuple[str, ...] = ("sandbox_aggregate",), fields: list[dict[str, Any]] | None = None,
) -> UUID:
    """A listed product whose version is a real Parquet file in the product store."""
    fields = fields or FIELDS
    from tests.scenario import approved_resource

    resource = approved_resource(mp, people, name=f"{name} source", grade=grade, openness=openness, fields=fields)
    product_id = built_product(
        mp, people, name=name, resource_ids=[resource], delivery_modes=delivery_modes, fields=fields,
        grade=grade, openness=openness,
    )
    content_hash = store_version(mp.config, frame)
    mp.products.register_product_version(people.product_manager, product_id, content_hash=content_hash,
                                         row_count=frame.height)
    mp.products.submit_for_review(people.product_manager, product_id)
    mp.products.review_compliance(people.reviewer, product_id, approved=True, reason="aggregates only")
    mp.products.set_price_cap(people.admin, product_id, cap="100.00", reason="cap approved")
    mp.products.set_price_plan(people.product_manager, product_id, plan=basic_plan(), reason="trial")
    mp.products.list_product(people.product_manager, product_id)
    return product_id


@dataclass
class World:
    """Everything a test needs: ids, actors, clients with secrets, the server's URL and a store handle."""

    mp: Marketplace
    config: Config
    url: str
    people: Staff
    unit_a: Unit
    unit_b: Unit
    water3: UUID  # general_3, aggregates only, personal holder_name
    open2: UUID  # general_1 open data, row-level delivery allowed
    b_only: UUID  # a product only unit B subscribes
    sub_a3: UUID
    sub_a_open: UUID
    sub_b_only: UUID
    sub_b3: UUID
    client_a: tuple[UUID, str]
    client_b: tuple[UUID, str]
    raw: pl.DataFrame

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def token(self, client: tuple[UUID, str] | None = None, scope: str | None = None) -> str:
        client_id, secret = client or self.client_a
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        with self.http() as http:
            response = http.post("/oauth/token", data=data, auth=(str(client_id), secret))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def ledger(self, subscription_id: UUID) -> UsageLedger | None:
        ledger_id = UsageLedger.create_id(subscription_id, period_of(self.mp.usage.clock()))
        if not self.mp.usage.exists(ledger_id):
            return None
        return self.mp.usage.get(UsageLedger, ledger_id)

    def refusals(self, subscription_id: UUID) -> list[str]:
        """The reasons of every refusal recorded on the subscription's ledger this month, oldest first."""
        ledger = self.ledger(subscription_id)
        if ledger is None:
            return []
        return [e.reason for e in self.mp.app.events.get(ledger.id)  # type: ignore[attr-defined]
                if type(e).__name__ == "UseRefused"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(config: Config) -> dict[str, Any]:
    mp = build(config)
    try:
        people = staff(mp)
        unit_a = qualified_unit(mp, people)
        unit_b = qualified_unit(mp, people, name="包头稀土数据服务有限公司", code_body="91150200MA0N7X3C4",
                                admin_user="b-admin", analyst_user="b-analyst")
        raw = water_frame()
        water3 = data_product(mp, people, name="District water use (grade 3)", grade="general_3",
                              openness="conditional", frame=raw)
        open_fields = FIELDS[:3]
        open2 = data_product(mp, people, name="Open water statistics", grade="general_1", openness="unconditional",
                             frame=raw.drop("holder_name"), delivery_modes=("sandbox_aggregate", "row_level_file"),
                             fields=open_fields)
        b_only = data_product(mp, people, name="Rare earth port traffic", grade="general_2",
                              openness="unconditional", frame=raw.drop("holder_name"), fields=open_fields)
        # Unit A's analyst may use district, month and consumption of the grade-3 product, not holder_name.
        app_a3 = approved_application(mp, people, unit_a, water3, fields=["district", "month", "consumption_m3"])
        sub_a3 = active_subscription(mp, people, unit=unit_a, product_id=water3, application_id=app_a3,
                                     entitlements={"queries_per_period": 10_000, "rows_per_period": 1_000_000,
                                                   "privacy_budget": 1.0})
        # ... and of the open product only district and consumption (month is outside its scope).
        app_a_open = approved_application(mp, people, unit_a, open2, fields=["district", "consumption_m3"])
        sub_a_open = active_subscription(mp, people, unit=unit_a, product_id=open2, application_id=app_a_open,
                                         entitlements={"queries_per_period": 5, "rows_per_period": 100_000,
                                                       "privacy_budget": 1.0})
        sub_b_only = active_subscription(mp, people, unit=unit_b, product_id=b_only)
        app_b3 = approved_application(mp, people, unit_b, water3, fields=["district", "month", "consumption_m3"])
        sub_b3 = active_subscription(mp, people, unit=unit_b, product_id=water3, application_id=app_b3)
        client_a = mp.credentials.issue_client(unit_a.admin, unit_id=unit_a.id, user_id=unit_a.analyst.user_id,
                                               label="A notebook", subscription_ids=[sub_a3, sub_a_open])
        client_b = mp.credentials.issue_client(unit_b.admin, unit_id=unit_b.id, user_id=unit_b.analyst.user_id,
                                               label="B notebook", subscription_ids=[sub_b_only, sub_b3])
        return dict(people=people, unit_a=unit_a, unit_b=unit_b, water3=water3, open2=open2, b_only=b_only,
                    sub_a3=sub_a3, sub_a_open=sub_a_open, sub_b_only=sub_b_only, sub_b3=sub_b3,
                    client_a=tuple(client_a), client_b=tuple(client_b), raw=raw)
    finally:
        mp.close()


def start_server(config: Config, *, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn marketplace.api.app:create_app --factory`` on a free loopback port; waits for /health."""
    port = _free_port()
    environ = dict(os.environ, SHUYUN_DATA_DIR=str(config.data_dir), PYTHONUNBUFFERED="1", **(env or {}))
    environ.pop("SHUYUN_DATABASE_URL", None)
    if config.database_url:
        environ["SHUYUN_DATABASE_URL"] = config.database_url
    log = open(config.data_dir / f"api-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "marketplace.api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}: {Path(log.name).read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("the API did not answer /health within 60 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _postgres_database(request: pytest.FixtureRequest, name: str) -> str:
    import psycopg

    proc = request.getfixturevalue("postgresql_proc")
    base = f"postgresql://{proc.user}:{proc.password or ''}@{proc.host}:{proc.port}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded store of the given kind with an API process serving it."""
    data_dir = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        config = Config(data_dir=data_dir)
    else:
        module = request.module.__name__.rsplit(".", 1)[-1]
        config = Config(data_dir=data_dir, database_url=_postgres_database(request, f"api_{module}"))
    seeded = seed(config)
    proc, url = start_server(config)
    mp = build(config)
    try:
        yield World(mp=mp, config=config, url=url, **seeded)
    finally:
        mp.close()
        stop_server(proc)


@dataclass(frozen=True)
class Tenant:
    """A unit made for one destructive test: its subscription to the grade-3 product and a client."""

    unit: Unit
    subscription: UUID
    client: tuple[UUID, str]


_tenants = iter(range(100, 999))


def tenant(world: World, *, queries: int = 1000) -> Tenant:
    """A fresh qualified unit subscribed to ``world.water3`` with an API client of its analyst."""
    n = next(_tenants)
    unit = qualified_unit(world.mp, world.people, name=f"包头测试租户{n}", code_body=f"91150200MA0N7T{n:03d}",
                          admin_user=f"t{n}-admin", analyst_user=f"t{n}-analyst")
    application = approved_application(world.mp, world.people, unit, world.water3,
                                       fields=["district", "month", "consumption_m3"])
    subscription = active_subscription(world.mp, world.people, unit=unit, product_id=world.water3,
                                       application_id=application,
                                       entitlements={"queries_per_period": queries, "rows_per_period": 100_000,
                                                     "privacy_budget": 1.0})
    client = world.mp.credentials.issue_client(unit.admin, unit_id=unit.id, user_id=unit.analyst.user_id,
                                               label="tenant notebook", subscription_ids=[subscription])
    return Tenant(unit, subscription, (client.client_id, client.client_secret))
