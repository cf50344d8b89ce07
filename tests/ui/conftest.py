"""AppTest fixtures: a demo store seeded once per session and store kind, copied for each test.

Every test runs on SQLite and on PostgreSQL (``-m "not postgres"`` keeps SQLite only).
The demo is seeded and its read models caught up once per store kind; each test then
gets a store of its own to change: a copy of the SQLite data directory, or a PostgreSQL
database created from the seeded one as a template (``CREATE DATABASE … TEMPLATE``, a
file copy on the server: far cheaper than seeding again). The app's per-store cached
resources are keyed by the store's location, so tests never share one, and they are
closed after each test so that its database can be dropped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from streamlit.testing.v1 import AppTest

from marketplace.bootstrap import build
from marketplace.config import Config
from marketplace.demo.seed import seed_demo
from projections.runner import Runner
from streamlit_app.ui.context import close_all

HOME = str(Path(__file__).resolve().parents[2] / "streamlit_app" / "Home.py")
TEMPLATE_DB = "shuyun_ui_template"
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _seed(config: Config) -> Config:
    """The demo at scale 0.05 with every read model caught up, then closed (a template must be idle)."""
    seed_demo(config, scale=0.05)
    mp = build(config)
    runner = Runner.open(config, app=mp.app)
    try:
        runner.catch_up()
    finally:
        runner.close()
        mp.close()
    return config


def _server(request: pytest.FixtureRequest) -> str:
    proc = request.getfixturevalue("postgresql_proc")
    return f"postgresql://{proc.user}:{proc.password or ''}@{proc.host}:{proc.port}"


def _admin(server: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return _seed(Config(data_dir=tmp_path_factory.mktemp("demo-sqlite") / "data"))


@pytest.fixture(scope="session")
def postgres_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Config:
    server = _server(request)
    _admin(server, f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}")
    return _seed(Config(data_dir=tmp_path_factory.mktemp("demo-postgres") / "data",
                        database_url=f"{server}/{TEMPLATE_DB}"))


@contextmanager
def _copy(request: pytest.FixtureRequest, kind: str, data_dir: Path) -> Iterator[Config]:
    """A store of its own made from the seeded template of ``kind``; dropped (PostgreSQL) when done."""
    template: Config = request.getfixturevalue(f"{kind}_template")
    shutil.copytree(template.data_dir, data_dir)
    server = _server(request) if kind == "postgres" else None
    name = f"ui_{uuid4().hex[:16]}"
    if server is not None:
        _admin(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield Config(data_dir=data_dir, database_url=None if server is None else f"{server}/{name}")
    finally:
        close_all()
        if server is not None:
            _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _point_app_at(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app reads its store from the environment, as ``shuyun up`` gives it."""
    monkeypatch.setenv("SHUYUN_DATA_DIR", str(config.data_dir))
    if config.database_url is None:
        monkeypatch.delenv("SHUYUN_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("SHUYUN_DATABASE_URL", config.database_url)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """A seeded store of each kind that this test alone changes."""
    with _copy(request, request.param, tmp_path / "data") as config:
        _point_app_at(config, monkeypatch)
        yield config


@pytest.fixture(scope="module", params=STORES)
def shared_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """One seeded store of each kind for the tests of a module that only read (sign in, open pages, look)."""
    with _copy(request, request.param, tmp_path_factory.mktemp("shared") / "data") as config:
        yield config


@pytest.fixture
def viewer(shared_store: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The app on the module's shared store: for tests that change nothing."""
    _point_app_at(shared_store, monkeypatch)
    at = AppTest.from_file(HOME, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at


def head(config: Config) -> int:
    """The store's last notification id (to prove a refused form changed nothing)."""
    mp = build(config)
    try:
        return mp.app.recorder.max_notification_id() or 0
    finally:
        mp.close()


@pytest.fixture
def app(store: Config) -> Iterator[AppTest]:
    at = AppTest.from_file(HOME, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at


def value_of(store: Config, aggregate_id: Any) -> Any:
    """An aggregate as the store has it now (for tests that check what a form changed)."""
    mp = build(store)
    try:
        return mp.app.repository.get(aggregate_id)
    finally:
        mp.close()
