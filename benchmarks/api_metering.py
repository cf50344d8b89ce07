"""Metered sandbox queries per second on PostgreSQL with concurrent clients (target >= 1,000/s).

Workload: a seeded marketplace on a throwaway PostgreSQL cluster (4 units, each with an
active subscription to one general_2 product whose version is a real Parquet file, and
an API client with a token). ``concurrency`` requests are kept in flight through the
API's own query path (``marketplace.api.v1.answer_query``, exactly what the HTTP
endpoint awaits: token verification, live checks against the store, policy validation,
Polars execution and output controls in the worker threads, then the wait for the
group-commit meter) for a fixed time, without the HTTP layer.

Value: metered queries/s (every answered query is on its ledger before it is returned;
checked against the ledgers afterwards). Baseline: the same path, same process, same
concurrency, with metering switched off. Also reported: the metered rate through real
HTTP (uvicorn in a subprocess, keep-alive connections from this process, all on the same two
cores), whose baseline is the in-process metered rate, so its ratio is what HTTP costs;
and the metering alone: uses/s stored by the group-commit meter from ``concurrency``
concurrent requests, against one ``UsageService`` save per use (one writer per ledger).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from uuid import UUID

import polars as pl

from benchmarks import Result, result
from benchmarks.pgcluster import throwaway_postgres
from domain.identity import SYSTEM, Actor, Role
from domain.licensing import AgreementKind, business_date
from domain.parties import ApplicationUnit, credit_code_check_char
from domain.usage import UsageLedger, period_of
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config

ROOT = Path(__file__).resolve().parent.parent
QUERY = b'{"dimensions": ["district"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "m3"}]}'
DISTRICTS = ["昆都仑区", "青山区", "东河区", "九原区", "石拐区", "白云鄂博矿区"]
UNITS = 4
#: Counters of the last in-process run (batches, records, time in saves), for the curious.
LAST: dict[str, float] = {}


def _frame(rows: int) -> pl.DataFrame:
    rng = random.Random(2023)
    return pl.DataFrame({
        "district": [rng.choice(DISTRICTS) for _ in range(rows)],
        "month": [date(2024, 1 + rng.randrange(12), 1) for _ in range(rows)],
        "m3": [round(rng.uniform(0.5, 40.0), 3) for _ in range(rows)],
    })


def seed(mp: Marketplace, rows: int) -> tuple[list[tuple[UUID, UUID, str]], UUID]:
    """One product; ``UNITS`` units, each with a subscription and a client: ``([(sub, client, secret)], product)``."""
    admin = Actor("bench-admin", Role.OPERATOR_ADMIN)
    pm, reviewer, bureau = (Actor("bench-pm", Role.PRODUCT_MANAGER), Actor("bench-rev", Role.COMPLIANCE_REVIEWER),
                            Actor("bench-bureau", Role.SUPERVISOR))
    mp.parties.enrol_staff(SYSTEM, user_id=admin.user_id, name="Admin", roles=[Role.OPERATOR_ADMIN])
    for actor in (pm, reviewer, bureau):
        mp.parties.enrol_staff(admin, user_id=actor.user_id, name=actor.user_id, roles=[actor.role])
    provider_id = mp.catalog.register_provider(bureau, name="包头供水", kind="water", contact_email="w@example.cn")
    mp.catalog.add_provider_staff(admin, provider_id, user_id="clerk")
    clerk = Actor("clerk", Role.PROVIDER_STAFF, provider_id=provider_id)
    fields = [
        {"name": "district", "dtype": "category", "description": "District"},
        {"name": "month", "dtype": "date", "description": "Month"},
        {"name": "m3", "dtype": "float", "description": "Cubic metres"},
    ]
    resource = mp.catalog.compile_resource(
        clerk, provider_id=provider_id, name="Water use", description="Monthly water use", category="utilities",
        fields=fields, grade="general_2", openness="unconditional", update_frequency="monthly")
    mp.catalog.review_resource(bureau, resource, approved=True, reason="ok")
    mp.catalog.register_resource_version(clerk, resource, content_hash=hashlib.sha256(b"r").hexdigest(), row_count=1)
    product = mp.products.build_product(
        pm, name="District water use", description="Per district", category="utilities", source_ids=[resource],
        fields=fields, delivery_modes=["sandbox_aggregate"])
    mp.catalog.decide_supply(clerk, resource, product_id=product, granted=True, reason="ok")
    buffer = io.BytesIO()
    frame = _frame(rows)
    frame.write_parquet(buffer)
    content_hash = hashlib.sha256(buffer.getvalue()).hexdigest()
    mp.config.product_dir.mkdir(parents=True, exist_ok=True)
    (mp.config.product_dir / f"{content_hash}.parquet").write_bytes(buffer.getvalue())
    mp.products.register_product_version(pm, product, content_hash=content_hash, row_count=frame.height)
    mp.products.submit_for_review(pm, product)
    mp.products.review_compliance(reviewer, product, approved=True, reason="aggregates only")
    mp.products.set_price_cap(admin, product, cap="100.00", reason="cap")
    mp.products.set_price_plan(pm, product, plan={
        "plan_id": "basic", "name": "Basic", "billing_unit": "per_call",
        "tiers": [{"up_to": None, "unit_price": "1.00"}], "period_months": None, "stage": "trial"},
        reason="trial")
    mp.products.list_product(pm, product)
    out = []
    today = business_date(mp.demand.clock())
    for i in range(UNITS):
        body = f"91150200MA0N7B{i:03d}"
        code = body + credit_code_check_char(body)
        unit_id = ApplicationUnit.create_id(code)
        mp.parties.register_unit(Actor(f"u{i}-admin", Role.APPLICANT), name=f"包头测试单位{i}", credit_code=code,
                                 kind="company", contact_email="u@example.cn")
        mp.parties.qualify_unit(reviewer, unit_id, approved=True, reason="ok")
        unit_admin = Actor(f"u{i}-admin", Role.UNIT_ADMIN, unit_id=unit_id)
        mp.parties.add_member(unit_admin, unit_id, user_id=f"u{i}-analyst", role="unit_analyst")
        analyst = Actor(f"u{i}-analyst", Role.UNIT_ANALYST, unit_id=unit_id)
        application = mp.demand.file_application(
            analyst, unit_id=unit_id, scenario="Forecast district water demand for maintenance planning",
            purpose="planning", purpose_class="industry",
            scope=[{"product_id": product, "fields": ["district", "month", "m3"]}],
            period_start=today, period_end=today + timedelta(days=365), security_controls=["sandbox only"])
        mp.demand.assess_risk(reviewer, application, level="low", notes="aggregates")
        mp.demand.decide_application(admin, application, approved=True, reason="ok")
        subscription = mp.licensing.create_subscription(
            admin, application_id=application, product_id=product, plan_id="basic",
            entitlements={"queries_per_period": 10_000_000, "rows_per_period": 1_000_000_000,
                          "privacy_budget": 1.0})
        for kind in AgreementKind:
            mp.licensing.sign_agreement(unit_admin, subscription, kind=kind)
            mp.licensing.sign_agreement(admin, subscription, kind=kind)
        client_id, secret = mp.credentials.issue_client(
            unit_admin, unit_id=unit_id, user_id=analyst.user_id, label="bench", subscription_ids=[subscription])
        out.append((subscription, client_id, secret))
    return out, product


def _in_process(config: Config, clients: list[tuple[UUID, UUID, str]], product: UUID, *, metered: bool,
                concurrency: int, seconds: float) -> tuple[float, int]:
    """Queries/s of ``concurrency`` requests in flight through the API's query path (no HTTP); ok count."""
    import anyio.to_thread

    from marketplace.api import v1
    from marketplace.api.app import build_state
    from marketplace.api.state import WORKER_THREADS

    state = build_state(config)
    state.metered = metered
    try:
        tokens = []
        path = f"/v1/products/{product}/query"
        for _, client_id, secret in clients:
            api_client = state.mp.credentials.authenticate_client(str(client_id), secret)
            grant = state.mp.credentials.grant(api_client, requested=None, at=state.clock())
            token, _ = state.tokens.issue(user_id=grant.actor.user_id, unit_id=grant.unit_id,
                                          client_id=grant.client_id, scope=grant.scope, now=state.clock())
            tokens.append(v1.Presented.bearer(token, url=f"http://api{path}"))
        failures: list[str] = []

        async def main() -> tuple[float, int]:
            anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
            for token in tokens:  # warm caches (policy, data, first ledger)
                response = await v1.answer_query(state, token, str(product), None, QUERY, "", path)
                assert response.status_code == 200, bytes(response.body)
            done = 0
            stop = time.perf_counter() + seconds

            async def client(index: int) -> None:
                nonlocal done
                token = tokens[index % len(tokens)]
                while time.perf_counter() < stop:
                    response = await v1.answer_query(state, token, str(product), None, QUERY, "", path)
                    if response.status_code != 200:
                        failures.append(bytes(response.body).decode())
                        return
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(client(i) for i in range(concurrency)))
            return done / (time.perf_counter() - start), done

        rate, ok = asyncio.run(main())
        if failures:
            raise RuntimeError(f"a benchmark query failed: {failures[0]}")
        LAST.update(batches=state.meter.batches, records=state.meter.records,
                    save_seconds=round(state.meter.save_seconds, 3), catch_ups=state.live.catch_ups,
                    selects=state.live.selects)
        return rate, ok
    finally:
        state.close()


def _over_http(config: Config, clients: list[tuple[UUID, UUID, str]], product: UUID, *, concurrency: int,
               seconds: float) -> float:
    """Metered queries/s through uvicorn in a subprocess, from ``concurrency`` keep-alive connections."""
    import httpx

    port = _free_port()
    env = dict(os.environ, SHUYUN_DATA_DIR=str(config.data_dir), SHUYUN_DATABASE_URL=config.database_url or "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "marketplace.api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)
        tokens = []
        for _, client_id, secret in clients:
            r = httpx.post(f"{url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(str(client_id), secret))
            tokens.append(r.json()["access_token"])

        async def main() -> float:
            # A minimal keep-alive HTTP/1.1 load generator (like wrk): httpx spends more CPU per
            # request than the server on these two shared cores, which would measure the client.
            done = 0
            stop = 0.0
            host = f"127.0.0.1:{port}"

            async def one(i: int) -> None:
                nonlocal done
                request = (
                    f"POST /v1/products/{product}/query HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {tokens[i % len(tokens)]}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(QUERY)}\r\n\r\n"
                ).encode() + QUERY
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    while time.perf_counter() < stop:
                        writer.write(request)
                        head = await reader.readuntil(b"\r\n\r\n")
                        status = head[9:12]
                        length = 0
                        for line in head.split(b"\r\n"):
                            if line[:15].lower() == b"content-length:":
                                length = int(line[15:])
                        body = await reader.readexactly(length)
                        if status != b"200":
                            raise RuntimeError(body.decode(errors="replace"))
                        done += 1
                finally:
                    writer.close()

            stop = time.perf_counter() + 1.0  # warm up
            await asyncio.gather(*(one(i) for i in range(concurrency)))
            done = 0
            start = time.perf_counter()
            stop = start + seconds
            await asyncio.gather(*(one(i) for i in range(concurrency)))
            return done / (time.perf_counter() - start)

        return asyncio.run(main())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _meter_only(config: Config, clients: list[tuple[UUID, UUID, str]], *, grouped: bool, submitters: int,
                seconds: float) -> float:
    """Uses/s stored by the group-commit meter (``grouped``), or one ``UsageService`` save per use."""
    from uuid import uuid4

    from domain.licensing import Subscription
    from marketplace.api.metering import UsageMeter, Use

    mp = build(config)
    meter = UsageMeter(mp.app) if grouped else None
    try:
        subscriptions = [mp.licensing.get(Subscription, c[0]) for c in clients]
        actors = [Actor(f"u{i}-analyst", Role.UNIT_ANALYST, unit_id=s.unit_id) for i, s in enumerate(subscriptions)]
        done = [0] * submitters
        stop = time.perf_counter() + seconds

        def submitter(index: int) -> None:
            # Without grouping, one writer per ledger (more would only conflict on the same ledger).
            k = index % len(subscriptions)
            subscription, actor = subscriptions[k], actors[k]
            while time.perf_counter() < stop:
                if meter is not None:
                    meter.record(Use(subscription=subscription, actor=actor, use_id=str(uuid4()),
                                     query={"dimensions": ["district"]}, at=mp.usage.clock(), product_version="1",
                                     fields=("district",), rows_out=6))
                else:
                    mp.usage.record_use(actor, subscription_id=subscription.id, kind="query", product_version="1",
                                        query={"dimensions": ["district"]}, fields=["district"], rows_out=6,
                                        budget_spent=0.0)
                done[index] += 1

        count = submitters if grouped else len(subscriptions)
        workers = [threading.Thread(target=submitter, args=(i,)) for i in range(count)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(done) / (time.perf_counter() - start)
    finally:
        if meter is not None:
            meter.close()
        mp.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stored_uses(mp: Marketplace, subscriptions: list[UUID]) -> int:
    period = period_of(mp.usage.clock())
    total = 0
    for sid in subscriptions:
        ledger_id = UsageLedger.create_id(sid, period)
        if mp.usage.exists(ledger_id):
            total += mp.usage.get(UsageLedger, ledger_id).queries_used
    return total


def run(scale: float = 1.0) -> list[Result]:
    seconds = max(2.0, 8.0 * scale)
    concurrency = 64
    tmp = Path(tempfile.mkdtemp(prefix="shuyun-bench-api-"))
    results: list[Result] = []
    with throwaway_postgres() as url:
        config = Config(data_dir=tmp, database_url=url)
        mp = build(config)
        try:
            clients, product = seed(mp, rows=max(1000, int(20_000 * scale)))
            before = _stored_uses(mp, [c[0] for c in clients])
            best_metered, best_bare, metered_ok = 0.0, 0.0, 0
            for r in range(2):  # alternate, keep the best of each: the machine is shared and noisy
                for metered in ((True, False) if r % 2 == 0 else (False, True)):
                    rate, ok = _in_process(config, clients, product, metered=metered, concurrency=concurrency,
                                           seconds=seconds)
                    if metered:
                        best_metered = max(best_metered, rate)
                        metered_ok += ok
                    else:
                        best_bare = max(best_bare, rate)
            stored = _stored_uses(mp, [c[0] for c in clients]) - before
            # Every answered metered query is on a ledger (the warm-up queries are metered too).
            if stored < metered_ok:
                raise RuntimeError(f"{metered_ok} metered answers but only {stored} uses stored")
            results.append(result("api_metered_queries_postgres", best_metered, "queries/s", best_bare,
                                  ">= 1000/s"))
            grouped = _meter_only(config, clients, grouped=True, submitters=concurrency, seconds=seconds)
            single = _meter_only(config, clients, grouped=False, submitters=concurrency, seconds=seconds)
            results.append(result("api_meter_group_commit_postgres", grouped, "uses/s", single, ">= 1000/s"))
            http_rate = _over_http(config, clients, product, concurrency=concurrency, seconds=seconds)
            results.append(result("api_metered_queries_http_postgres", http_rate, "queries/s", best_metered,
                                  "report (HTTP cost on 2 shared cores)"))
        finally:
            mp.close()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 0.25), indent=2))
