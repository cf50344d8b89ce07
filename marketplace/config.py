"""Configuration from environment variables, in one place (see the README's table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class Config:
    """Where the marketplace keeps its events and data.

    SQLite in ``data_dir`` is the embedded default; ``database_url`` switches the event
    store (and the read models beside it) to PostgreSQL for production.
    """

    data_dir: Path
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("SHUYUN_DATA_DIR", "var")).expanduser().resolve()
        return cls(data_dir=data_dir, database_url=env.get("SHUYUN_DATABASE_URL") or None)

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "shuyun.sqlite"

    @property
    def product_dir(self) -> Path:
        """Content-addressed Parquet files of resources and product versions."""
        return self.data_dir / "data"

    def eventsourcing_env(self) -> dict[str, str]:
        """The ``eventsourcing`` settings for this configuration (never the in-memory store)."""
        if self.database_url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.sqlite_path)}
        else:
            env = postgres_env(self.database_url)
        env.update(self.extra_env)
        return env


def postgres_env(url: str) -> dict[str, str]:
    """Translate ``postgresql://user:pw@host:port/db`` into eventsourcing's variables."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"SHUYUN_DATABASE_URL must start with postgresql://, got {parsed.scheme!r}")
    if not parsed.path.strip("/"):
        raise ValueError("SHUYUN_DATABASE_URL must name a database, e.g. postgresql://localhost/shuyun")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parsed.path.strip("/")),
        "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        # eventsourcing requires the key even with trust authentication.
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "10",
    }
