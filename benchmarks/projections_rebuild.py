"""Full rebuild of every registered read model vs merely reading the notification log.

Workload per store kind: ``1_000_000 * scale`` events in the log (real parties events:
unit histories made by the domain's own commands and encoded by the store's mapper,
repeated under fresh aggregate ids and bulk-inserted through the recorder). Then, on
the same log and in the same batch size:

- baseline: read the whole log with ``recorder.select_notifications`` and do nothing;
- measured: ``Runner.rebuild()`` of all registered projections (drop, read, decode, map,
  write rows and tracking positions batch by batch, build deferred indexes), as
  ``shuyun projections rebuild`` runs it: a backlog this long is shared with a second
  runner process (``projections.worker``), so the rebuild uses two cores.

Targets: rebuild >= 50,000 events/s on SQLite, and rebuild time <= 3x the plain read on
both stores. Also reported: the runner's own log reader alone, and events per CPU-second
of the rebuild, both processes counted (this machine is shared, so wall time includes
others' load).
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from benchmarks import Result, result
from benchmarks.pgcluster import throwaway_postgres
from domain.identity import Actor, Role
from domain.parties import ApplicationUnit, UnitKind, credit_code_check_char
from marketplace.config import Config
from marketplace.store import MarketplaceApplication, open_store
from projections.base import Projection
from projections.runner import DEFAULT_BATCH_SIZE, Runner

OPERATOR = Actor("bench-admin", Role.OPERATOR_ADMIN)
TEMPLATES = 250


def _history(i: int) -> ApplicationUnit:
    body = f"91150200MA{i:07d}"
    admin = Actor(f"admin-{i}", Role.UNIT_ADMIN, unit_id=ApplicationUnit.create_id(body + credit_code_check_char(body)))
    unit = ApplicationUnit.register(
        name=f"包头测试单位{i}", credit_code=body + credit_code_check_char(body), kind=list(UnitKind)[i % 4],
        contact_email=f"u{i}@example.cn", admin_user_id=admin.user_id, by=admin,
    )
    for j in range(6):
        unit.add_member(user_id=f"analyst-{i}-{j}", role=Role.UNIT_ANALYST, by=admin)
    unit.remove_member(user_id=f"analyst-{i}-0", by=admin)
    unit.qualify(approved=True, reason="资质齐全，材料完整", by=OPERATOR)
    unit.suspend(reason="季度检查发现异常访问", by=OPERATOR)
    unit.reinstate(reason="整改完成", by=OPERATOR)
    return unit


def generate(app: MarketplaceApplication, events: int, chunk: int = 5_000) -> int:
    """Put ``events`` events in the log fast; returns the head notification id.

    Chunks stay moderate: eventsourcing's PostgreSQL recorder pipelines a whole chunk,
    and a 20,000-event pipeline was seen to stall against the server for good.
    """
    templates = [[app.mapper.to_stored_event(e) for e in _history(i).collect_events()] for i in range(TEMPLATES)]
    pending: list[StoredEvent] = []
    written = k = 0
    while written < events:
        template = templates[k % TEMPLATES]
        k += 1
        originator = UUID(int=(0x5348_5559_554E << 64) | k)
        take = template[: events - written]
        pending.extend(StoredEvent(originator, s.originator_version, s.topic, s.state) for s in take)
        written += len(take)
        if len(pending) >= chunk:
            app.recorder.insert_events(pending)
            pending = []
    if pending:
        app.recorder.insert_events(pending)
    return int(app.recorder.max_notification_id() or 0)


def read_log(app: MarketplaceApplication, batch: int) -> int:
    """The baseline: every notification through the recorder's public API, nothing else."""
    position = read = 0
    while True:
        notifications = app.recorder.select_notifications(position, batch, inclusive_of_start=False)
        if not notifications:
            return read
        read += len(notifications)
        position = notifications[-1].id


def measure(
    config: Config, kind: str, events: int, batch: int = DEFAULT_BATCH_SIZE,
    projections: Sequence[Projection] | None = None,
) -> list[Result]:
    """Generate the log on ``config``'s store, then time the plain read and the rebuild.

    ``projections`` defaults to every registered read model.
    """
    app = open_store(config)
    try:
        head = generate(app, events)
        with Runner.open(config, projections, app=app, batch_size=batch) as runner:
            start = time.perf_counter()
            raw = _read_raw(runner, head, batch)
            raw_seconds = time.perf_counter() - start

            start = time.perf_counter()
            assert read_log(app, batch) == events
            read_seconds = time.perf_counter() - start

            cpu = _cpu_seconds()
            start = time.perf_counter()
            rebuilt = runner.rebuild()
            rebuild_seconds = time.perf_counter() - start
            cpu_seconds = _cpu_seconds() - cpu
            assert rebuilt == events == raw and not any(runner.lag().values())
            names = ", ".join(runner.projections)
    finally:
        app.close()
    read_rate = events / read_seconds
    return [
        result(f"projections_rebuild_{kind}", events / rebuild_seconds, "events/s", read_rate,
               ">= 50000 events/s" if kind == "sqlite" else "report"),
        result(f"projections_rebuild_vs_read_{kind}", rebuild_seconds, "s", read_seconds, "<= 3.0"),
        result(f"projections_rebuild_cpu_{kind}", events / cpu_seconds, "events/cpu-s", read_rate,
               f"report ({names}; {events} events)"),
        result(f"projections_log_reader_{kind}", events / raw_seconds, "events/s", read_rate, "report"),
    ]


def _cpu_seconds() -> float:
    """CPU time of this process and of its ended children (the helper runner is waited for)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _read_raw(runner: Runner, head: int, batch: int) -> int:
    """The runner's own reader (plain tuples from its own connection) over the whole log."""
    position = read = 0
    while True:
        rows = runner.log.read(position, head, batch)
        if not rows:
            return read
        read += len(rows)
        position = rows[-1][0]


def run(scale: float = 1.0) -> list[Result]:
    events = max(5_000, int(1_000_000 * scale))
    # A million events take about a gigabyte of SQLite file: never leave it behind.
    with tempfile.TemporaryDirectory(prefix="shuyun-bench-projections-") as name:
        tmp = Path(name)
        results = measure(Config(data_dir=tmp / "sqlite"), "sqlite", events)
        with throwaway_postgres() as url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS b_projections")
                conn.execute("CREATE DATABASE b_projections")
            pg = Config(data_dir=tmp / "postgres", database_url=url.rsplit("/", 1)[0] + "/b_projections")
            results.extend(measure(pg, "postgres", events))
    return results


def main(argv: Any = None) -> None:  # pragma: no cover - manual runs
    import json
    import sys

    scale = float((argv or sys.argv[1:] or ["1.0"])[0])
    for row in run(scale):
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover
    main()
