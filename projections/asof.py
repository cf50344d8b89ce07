"""Time travel: any read model as it stood at a past notification id or moment.

The log is the truth and the tables only a cache of it, so a past state is just the
same projections run over a prefix of the log. They are built into a private in-memory
SQLite database (the live tables are untouched, whatever the store) and returned as
Polars frames.

"As of a time" means as of the last notification whose event was stamped at or before
that time. The state at a notification id is one the marketplace really was in;
timestamps are taken when a command runs, so across concurrent writers they follow the
log's order only up to the writers' clock skew, and the search trusts the log's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from projections.base import Projection, ProjectionError, unwrap
from projections.db import memory, read_frame
from projections.log import EventLog
from projections.runner import DEFAULT_BATCH_SIZE, Progress, Runner

if TYPE_CHECKING:
    from eventsourcing.application import Application

    from marketplace.config import Config


@dataclass(frozen=True)
class AsOf:
    """Read-model tables as they stood once the log reached ``notification_id``."""

    notification_id: int
    at: datetime | None
    frames: dict[str, pl.DataFrame]

    def __getitem__(self, table: str) -> pl.DataFrame:
        try:
            return self.frames[table]
        except KeyError:
            raise ProjectionError(f"no table {table!r} here; built: {', '.join(self.frames)}") from None


def parse_time(value: datetime | str) -> datetime:
    """An aware datetime; ISO text is accepted and a naive time is taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ProjectionError(f"at: not an ISO 8601 time: {value!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def event_time(log: EventLog, state: bytes) -> datetime | None:
    stamp = unwrap(log.codec.raw(state).get("timestamp"))
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None


def notification_id_at(log: EventLog, at: datetime | str) -> int:
    """The id of the last notification stamped at or before ``at`` (0 if none): a binary search."""
    moment = parse_time(at)
    lo, hi = 0, log.max_id()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        rows = log.read(mid - 1, hi, 1)
        if not rows:
            hi = mid - 1
            continue
        stamp = event_time(log, rows[0][4])
        if stamp is None or stamp <= moment:
            lo = rows[0][0]
        else:
            hi = mid - 1
    return lo


def build_asof(
    config: Config,
    names: str | Sequence[str] | None = None,
    *,
    upto: int | None = None,
    at: datetime | str | None = None,
    app: Application[Any] | None = None,
    projections: Sequence[Projection] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> AsOf:
    """Build the named projections (all registered ones by default) up to ``upto`` or ``at``.

    Give exactly one of ``upto`` (a notification id) and ``at`` (a time).
    """
    if (upto is None) == (at is None):
        raise ProjectionError("give exactly one of upto (a notification id) or at (a time)")
    if upto is not None and upto < 0:
        raise ProjectionError(f"upto: a notification id is not negative, got {upto}")
    from marketplace.store import open_store
    from projections.registry import all_projections

    own_app = app is None
    store = open_store(config) if app is None else app
    log = EventLog.open(store, config)
    db = memory()
    try:
        moment = parse_time(at) if at is not None else None
        position = notification_id_at(log, moment) if moment is not None else min(int(upto or 0), log.max_id())
        chosen = list(all_projections() if projections is None else projections)
        runner = Runner(log, db, chosen, batch_size=batch_size)
        selected = runner.select(names)
        runner.ensure([p.name for p in selected])
        runner.catch_up([p.name for p in selected], upto=position, progress=progress)
        frames = {table.name: read_frame(db, table) for p in selected for table in p.tables}
        return AsOf(notification_id=position, at=moment, frames=frames)
    finally:
        db.close()
        log.close()
        if own_app:
            store.close()


def asof_frame(
    config: Config, table: str, *, upto: int | None = None, at: datetime | str | None = None,
    app: Application[Any] | None = None,
) -> pl.DataFrame:
    """One read-model table as of a notification id or time."""
    from projections.registry import all_projections

    owner = [p for p in all_projections() if any(t.name == table for t in p.tables)]
    if not owner:
        raise ProjectionError(f"no registered projection has a table {table!r}")
    return build_asof(config, owner[0].name, upto=upto, at=at, app=app)[table]
