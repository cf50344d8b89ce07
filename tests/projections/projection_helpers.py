"""Test-only projections and event generators for the projection runner tests.

Importable both by the tests (pytest puts this directory on ``sys.path``) and by runner
subprocesses (``python -m projections --projection projection_helpers:ALL ...`` with this
directory on ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from domain.identity import Actor, Role
from domain.parties import ApplicationUnit, UnitKind, credit_code_check_char
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from marketplace.demo.seed import SimulatedClock as Clock
from projections.audit import AuditProjection
from projections.base import INT, TEXT, Delete, Increment, Insert, Op, Projection, Recorded, Table, Update, Upsert
from projections.runner import Runner
from tests.scenario import Staff, staff


@dataclass
class World:
    """A marketplace on a simulated clock, its staff, and a runner of every read model."""

    mp: Marketplace
    runner: Runner
    clock: Clock
    people: Staff
    config: Config

    def caught_up(self) -> Runner:
        self.runner.catch_up()
        return self.runner


@contextmanager
def open_world(config: Config, start: datetime, *, batch_size: int) -> Iterator[World]:
    clock = Clock(start)
    mp = build(config, clock=clock)
    runner = Runner.open(config, app=mp.app, batch_size=batch_size)
    try:
        yield World(mp, runner, clock, staff(mp), config)
    finally:
        runner.close()
        mp.close()


#: The ``open_runner`` fixture: ``open_runner(projections, app=..., batch_size=...)``.
OpenRunner = Callable[..., Runner]
OPERATOR = Actor("ops-admin", Role.OPERATOR_ADMIN)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class CountingProjection(Projection):
    """Counts every event per topic and sums their notification ids: a duplicate or a gap shows."""

    name = "counting"
    version = 1
    topics = None
    TOPICS = Table("rm_counting_topics", {"topic": TEXT, "events": INT, "id_sum": INT}, key=("topic",))
    AGGREGATES = Table(
        "rm_counting_aggregates", {"aggregate_id": TEXT, "events": INT, "last_version": INT}, key=("aggregate_id",)
    )
    tables = (TOPICS, AGGREGATES)

    def apply(self, event: Recorded) -> Iterable[Op]:
        return (
            Increment(self.TOPICS.name, {"topic": event.topic}, {"events": 1, "id_sum": event.notification_id}),
            # Alternating shapes on one table: the writer must keep their order.
            Increment(self.AGGREGATES.name, {"aggregate_id": event.originator_id}, {"events": 1}),
            Update(self.AGGREGATES.name, {"aggregate_id": event.originator_id},
                   {"last_version": event.originator_version}),
        )


class MembersProjection(Projection):
    """Current members of every unit, from three parties topics (the topic filter goes into SQL)."""

    name = "members"
    version = 1
    topics = frozenset({
        "domain.parties:ApplicationUnit.Registered",
        "domain.parties:ApplicationUnit.MemberAdded",
        "domain.parties:ApplicationUnit.MemberRemoved",
    })
    MEMBERS = Table(
        "rm_members_members", {"unit_id": TEXT, "user_id": TEXT, "role": TEXT, "since_id": INT},
        key=("unit_id", "user_id"), indexes=(("user_id",),),
    )
    tables = (MEMBERS,)

    def apply(self, event: Recorded) -> Iterable[Op]:
        data = event.data
        unit = event.originator_id
        if event.event_name == "Registered":
            row = {"unit_id": unit, "user_id": data["admin_user_id"], "role": "unit_admin",
                   "since_id": event.notification_id}
            return (Upsert(self.MEMBERS.name, row),)
        if event.event_name == "MemberAdded":
            row = {"unit_id": unit, "user_id": data["user_id"], "role": data["role"], "since_id": event.notification_id}
            return (Upsert(self.MEMBERS.name, row),)
        return (Delete(self.MEMBERS.name, {"unit_id": unit, "user_id": data["user_id"]}),)


class UnitsProjection(Projection):
    """Units and their status, read through typed domain events (the mapper path)."""

    name = "units"
    version = 1
    topics = frozenset({
        "domain.parties:ApplicationUnit.Registered",
        "domain.parties:ApplicationUnit.QualificationDecided",
        "domain.parties:ApplicationUnit.Suspended",
        "domain.parties:ApplicationUnit.Reinstated",
        "domain.parties:ApplicationUnit.Terminated",
    })
    UNITS = Table("rm_units_units", {"unit_id": TEXT, "name": TEXT, "kind": TEXT, "status": TEXT}, key=("unit_id",))
    tables = (UNITS,)

    def apply(self, event: Recorded) -> Iterable[Op]:
        domain_event: Any = event.domain_event
        unit = event.originator_id
        name = event.event_name
        if name == "Registered":
            row = {"unit_id": unit, "name": domain_event.name, "kind": domain_event.kind.value,
                   "status": "pending_qualification"}
            return (Upsert(self.UNITS.name, row),)
        status = {
            "QualificationDecided": "qualified" if getattr(domain_event, "approved", False) else "rejected",
            "Suspended": "suspended", "Reinstated": "qualified", "Terminated": "terminated",
        }[name]
        return (Update(self.UNITS.name, {"unit_id": unit}, {"status": status}),)


ALL = [AuditProjection(), CountingProjection(), MembersProjection(), UnitsProjection()]


class Exploding(Projection):
    """Fails on the third event it sees: a bug in one read model."""

    name = "exploding"
    tables = (Table("rm_exploding_rows", {"id": INT, "topic": TEXT}, key=("id",)),)

    def apply(self, event: Recorded) -> Iterable[Op]:
        if event.notification_id == 3:
            raise KeyError("no such attribute")
        return (Insert("rm_exploding_rows", (event.notification_id, event.topic)),)


class Slow(Projection):
    """Takes a millisecond an event: a heavy read model, to keep a helper runner busy."""

    name = "slow"
    tables = (Table("rm_slow_rows", {"id": INT, "topic": TEXT}, key=("id",), indexes=(("topic",),)),)

    def apply(self, event: Recorded) -> Iterable[Op]:
        time.sleep(0.001)
        return (Insert("rm_slow_rows", (event.notification_id, event.topic)),)


def fresh() -> list[Projection]:
    return [type(p)() for p in ALL]


def credit_code(i: int) -> str:
    first17 = f"91150200MA{i:07d}"
    return first17 + credit_code_check_char(first17)


def unit_admin(i: int) -> Actor:
    return Actor(f"admin-{i}", Role.UNIT_ADMIN, unit_id=ApplicationUnit.create_id(credit_code(i)))


def populate(parties: Any, start: int, count: int) -> int:
    """Real commands through the parties service; returns the last notification id."""
    last = 0
    for i in range(start, start + count):
        actor = unit_admin(i)
        unit_id = parties.register_unit(
            actor, name=f"Unit {i}", credit_code=credit_code(i), kind="company", contact_email=f"u{i}@example.cn"
        )
        last = parties.add_member(actor, unit_id, user_id=f"analyst-{i}", role="unit_analyst")
        if i % 3 == 0:
            last = parties.remove_member(actor, unit_id, user_id=f"analyst-{i}")
        if i % 2 == 0:
            last = parties.qualify_unit(OPERATOR, unit_id, approved=i % 4 == 0, reason="checked")
    return last


def bulk_units(start: int, count: int) -> list[ApplicationUnit]:
    """Units with a handful of events each, built in memory for one big ``app.save``."""
    units = []
    for i in range(start, start + count):
        actor = unit_admin(i)
        unit = ApplicationUnit.register(
            name=f"Unit {i}", credit_code=credit_code(i), kind=UnitKind.RESEARCH_INSTITUTE,
            contact_email=f"u{i}@example.cn", admin_user_id=actor.user_id, by=actor,
        )
        for j in range(3):
            unit.add_member(user_id=f"analyst-{i}-{j}", role=Role.UNIT_ANALYST, by=actor)
        unit.remove_member(user_id=f"analyst-{i}-0", by=actor)
        unit.qualify(approved=i % 5 != 0, reason="bulk", by=OPERATOR)
        units.append(unit)
    return units


def bulk_save(app: Any, start: int, count: int, chunk: int = 300) -> int:
    """Save ``count`` units (7 events each) in big saves; returns the last notification id."""
    for offset in range(0, count, chunk):
        app.save(*bulk_units(start + offset, min(chunk, count - offset)))
    return int(app.recorder.max_notification_id() or 0)


def log_totals(app: Any, upto: int | None = None) -> tuple[int, int]:
    """(events, sum of notification ids) straight from the log: what ``counting`` must show."""
    count = total = 0
    position = 0
    while True:
        batch = app.recorder.select_notifications(position, 5000, stop=upto, inclusive_of_start=False)
        if not batch:
            return count, total
        count += len(batch)
        total += sum(n.id for n in batch)
        position = batch[-1].id


def counting_totals(frame: pl.DataFrame) -> tuple[int, int]:
    return int(frame["events"].sum() or 0), int(frame["id_sum"].sum() or 0)


def assert_same_tables(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> None:
    assert sorted(left) == sorted(right)
    for name in left:
        assert_frame_equal(left[name], right[name], check_row_order=True)


def subprocess_env(config: Config) -> dict[str, str]:
    """Environment for a child process on the same store, able to import these projections."""
    env = dict(os.environ)
    env["SHUYUN_DATA_DIR"] = str(config.data_dir)
    if config.database_url:
        env["SHUYUN_DATABASE_URL"] = config.database_url
    else:
        env.pop("SHUYUN_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_python(config: Config, script: str) -> str:
    """Run ``script`` in another Python process on ``config``'s store; its output (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(config), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
