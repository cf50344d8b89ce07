"""Shared fixtures: every store test runs on a real SQLite file and a real PostgreSQL.

PostgreSQL is a throwaway cluster of Debian's PostgreSQL 15 started by
pytest-postgresql (through ``scripts/pg_ctl_as_user`` because pg_ctl refuses root);
each test gets a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_postgresql import factories

from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config

ROOT = Path(__file__).resolve().parent.parent

postgresql_proc = factories.postgresql_proc(
    executable=str(ROOT / "scripts" / "pg_ctl_as_user"),
    unixsocketdir="/tmp",
)
postgresql_db = factories.postgresql("postgresql_proc")


def _postgres_url(db: Any) -> str:
    info = db.info
    return f"postgresql://{info.user}:{info.password or ''}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """A configuration on each real store kind."""
    if request.param == "sqlite":
        return Config(data_dir=tmp_path / "data")
    db = request.getfixturevalue("postgresql_db")
    return Config(data_dir=tmp_path / "data", database_url=_postgres_url(db))


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path / "data")


@pytest.fixture
def marketplace(config: Config) -> Iterator[Marketplace]:
    """The whole marketplace wired to a real store of each kind."""
    mp = build(config)
    try:
        yield mp
    finally:
        mp.close()
