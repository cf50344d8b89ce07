"""The projection runner on a real SQLite file and a real PostgreSQL: exactly once, rebuilds,
versions, lag, waiting for a command's notification, failures kept apart, other processes."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from projection_helpers import (
    CountingProjection,
    Exploding,
    MembersProjection,
    OpenRunner,
    UnitsProjection,
    assert_same_tables,
    bulk_save,
    counting_totals,
    credit_code,
    fresh,
    log_totals,
    populate,
    run_python,
    unit_admin,
)

from domain.identity import Actor, Role
from domain.parties import ApplicationUnit, UnitKind
from marketplace.bootstrap import Marketplace
from marketplace.config import Config
from projections import views
from projections.audit import AuditProjection
from projections.base import INT, Insert, Op, Projection, ProjectionError, Recorded, Table
from projections.db import read_frame, scan_frame
from projections.log import IDS_PER_READ, RecorderEventLog, SQLEventLog
from projections.runner import Runner, wait_for_position


def head_of(marketplace: Marketplace) -> int:
    return int(marketplace.app.recorder.max_notification_id() or 0)


def tables_of(runner: Runner) -> dict[str, pl.DataFrame]:
    return {t.name: read_frame(runner.db, t) for p in runner.projections.values() for t in p.tables}


def test_rebuild_from_zero_gives_the_tables_built_incrementally(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    runner = open_runner(fresh(), app=marketplace.app, batch_size=7)  # odd batches cut commands apart
    for round_ in range(4):
        populate(marketplace.parties, round_ * 10, 10)
        runner.catch_up()
    incremental = tables_of(runner)
    assert runner.lag() == dict.fromkeys(runner.projections, 0)

    read = runner.rebuild()

    assert read == marketplace.app.recorder.max_notification_id()
    assert_same_tables(incremental, tables_of(runner))


def test_every_event_is_counted_exactly_once(marketplace: Marketplace, open_runner: OpenRunner) -> None:
    populate(marketplace.parties, 0, 12)
    runner = open_runner([CountingProjection()], app=marketplace.app, batch_size=5)
    runner.catch_up(limit=23)  # a partial catch-up stops mid-log ...
    assert runner.lag()["counting"] == head_of(marketplace) - 23
    runner.catch_up()  # ... and the rest continues from its tracked position
    runner.catch_up()  # a second call finds nothing to do

    totals = counting_totals(runner.frame("rm_counting_topics"))
    assert totals == log_totals(marketplace.app)


def test_audit_rows_name_the_actor_role_and_attributes(marketplace: Marketplace, open_runner: OpenRunner) -> None:
    actor = unit_admin(7)
    unit_id = marketplace.parties.register_unit(
        actor, name="Acme Data", credit_code=credit_code(7), kind="ngo", contact_email="acme@example.cn"
    )
    nid = marketplace.parties.add_member(actor, unit_id, user_id="bob", role="unit_analyst")
    runner = open_runner([AuditProjection()], app=marketplace.app)
    runner.catch_up()

    audit = views.audit(runner).reverse()  # the view renders each row's summary from its attributes
    assert audit["notification_id"].to_list() == [nid - 1, nid]
    first, second = audit.to_dicts()
    assert json.loads(second["attributes"])["user_id"] == "bob"
    assert first["aggregate_type"] == "ApplicationUnit" and first["event_name"] == "Registered"
    assert first["aggregate_id"] == str(unit_id) and first["version"] == 1
    assert (first["actor_user_id"], first["actor_role"]) == ("admin-7", "unit_admin")
    assert "name=Acme Data" in first["summary"] and "kind=ngo" in first["summary"]
    assert "by=" not in first["summary"] and "timestamp=" not in first["summary"]
    assert second["summary"] == "user_id=bob, role=unit_analyst"
    assert audit.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert first["timestamp"] <= second["timestamp"]


def test_audit_trail_reads_what_changed_from_the_log_not_a_copy(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    """The read model indexes the log: the view reads each event's attributes from the store, whichever
    source it is given, and a bare database without the log is refused with what to pass."""
    populate(marketplace.parties, 0, 3)
    runner = open_runner([AuditProjection()], app=marketplace.app)
    runner.catch_up()
    assert "attributes" not in runner.frame("rm_audit_events").columns

    trail = views.audit(runner)
    assert trail.height == marketplace.app.recorder.max_notification_id()
    assert trail["attributes"].null_count() == 0 and trail["summary"].null_count() == 0
    stored = {n.id: n.state.decode("utf8") for n in marketplace.app.recorder.select_notifications(1, 1000)}
    assert dict(zip(trail["notification_id"], trail["attributes"], strict=True)) == stored
    assert_frame_equal(views.audit(config), trail)
    assert_frame_equal(views.audit(runner.db, log=runner.log), trail)
    some = views.audit(runner, user_id="admin-1")
    assert some.height > 0 and set(some["notification_id"]) < set(trail["notification_id"])
    assert_frame_equal(some, trail.filter(pl.col("actor_user_id") == "admin-1"))
    with pytest.raises(ProjectionError, match="log="):
        views.audit(runner.db)
    # Asked for more ids than one statement takes, most of them not in the log: the ones it holds, each once.
    asked = [*range(1, 3 * IDS_PER_READ), 2, 1]
    assert {nid: state.decode("utf8") for nid, state in runner.log.states(asked).items()} == stored


def test_the_audit_trail_counts_its_events_by_kind_and_by_user(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    """What an audit page offers to filter by comes from the trail's counts, a row per topic and per user:
    the same as grouping every row of the trail, however the batches fell, and after a rebuild."""
    populate(marketplace.parties, 0, 4)
    runner = open_runner([AuditProjection()], app=marketplace.app, batch_size=7)
    runner.catch_up(limit=10)  # counts carried across batches and catch-ups
    populate(marketplace.parties, 4, 3)
    runner.catch_up()

    def grouped(column: str) -> pl.DataFrame:
        rows = runner.frame("rm_audit_events").filter(pl.col(column).is_not_null())
        return rows.group_by(column).agg(events=pl.len().cast(pl.Int64)).sort(column)

    topics = views.audit_topics(runner)
    assert topics.columns == ["topic", "aggregate_type", "event_name", "events"]
    assert_frame_equal(topics.select("topic", "events").sort("topic"), grouped("topic"))
    assert topics["events"].sum() == head_of(marketplace)
    assert ("ApplicationUnit", "MemberAdded") in set(zip(topics["aggregate_type"], topics["event_name"], strict=True))
    actors = views.audit_actors(runner)
    assert_frame_equal(actors, grouped("actor_user_id").rename({"actor_user_id": "user_id"}))
    assert actors["user_id"].to_list() == sorted([*(f"admin-{i}" for i in range(7)), "ops-admin"])

    runner.rebuild()
    assert_frame_equal(views.audit_topics(runner), topics)
    assert_frame_equal(views.audit_actors(runner), actors)


def test_an_aggregates_trail_is_found_through_the_logs_own_index(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    """The trail keeps no index on ``aggregate_id``: the log's primary key finds an aggregate's events.
    Same rows as reading the column, with the other filters and the limit applied alike."""
    populate(marketplace.parties, 0, 6)
    runner = open_runner([AuditProjection()], app=marketplace.app)
    runner.catch_up()
    assert AuditProjection.tables[0].indexes == (("actor_user_id",),)
    trail = views.audit(runner)
    units = trail.filter(pl.col("event_name") == "Registered")["aggregate_id"].to_list()
    assert len(units) == 6
    for unit_id in units:
        mine = trail.filter(pl.col("aggregate_id") == unit_id)
        ids = runner.log.notification_ids(unit_id)
        assert ids == sorted(mine["notification_id"].to_list()) and len(ids) >= 2
        assert_frame_equal(views.audit(runner, aggregate_id=unit_id), mine)
        assert_frame_equal(views.audit(config, aggregate_id=unit_id), mine)
        assert_frame_equal(views.audit(runner, aggregate_id=unit_id, limit=1), mine.head(1))
        by_admin = mine.filter(pl.col("actor_user_id") == mine["actor_user_id"][-1])
        assert_frame_equal(views.audit(runner, unit_id, mine["actor_user_id"][-1]), by_admin)
        # A log that cannot look an aggregate up (a store read through its recorder): the column, same rows.
        recorder_log = RecorderEventLog(marketplace.app.recorder, runner.log.codec)
        assert recorder_log.notification_ids(unit_id) is None
        assert_frame_equal(views.audit(runner.db, log=recorder_log, aggregate_id=unit_id), mine)
    nobody = views.audit(runner, aggregate_id="00000000-0000-0000-0000-000000000000")
    assert nobody.height == 0 and nobody.schema == trail.schema


def test_a_long_aggregates_trail_is_read_a_slice_at_a_time_newest_first(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    """An aggregate with more events than one statement asks for: the view reads its ids in slices
    and still returns exactly the newest ``limit`` rows that pass the other filters."""
    admin = unit_admin(1)
    deputy = Actor("deputy-1", Role.UNIT_ADMIN, unit_id=admin.unit_id)
    unit = ApplicationUnit.register(name="Long History", credit_code=credit_code(1), kind=UnitKind.COMPANY,
                                    contact_email="long@example.cn", admin_user_id=admin.user_id, by=admin)
    for i in range(views.AUDIT_IDS_PER_READ):  # two events each: three slices in all
        unit.add_member(user_id=f"analyst-{i}", role=Role.UNIT_ANALYST, by=admin)
        unit.remove_member(user_id=f"analyst-{i}", by=deputy if i % 7 == 0 else admin)
    marketplace.app.save(unit)
    populate(marketplace.parties, 2, 2)  # other aggregates' events after it
    runner = open_runner([AuditProjection()], app=marketplace.app)
    runner.catch_up()
    trail = views.audit(runner, limit=100_000)
    mine = trail.filter(pl.col("aggregate_id") == str(unit.id))
    assert mine.height == 2 * views.AUDIT_IDS_PER_READ + 1
    for limit in (1, views.AUDIT_IDS_PER_READ - 1, views.AUDIT_IDS_PER_READ + 1, 2 * views.AUDIT_IDS_PER_READ + 1,
                  100_000):
        assert_frame_equal(views.audit(runner, unit.id, limit=limit), mine.head(limit))
    deputys = mine.filter(pl.col("actor_user_id") == deputy.user_id)  # a few in every slice
    assert 0 < deputys.height < mine.height
    for limit in (3, deputys.height, 100_000):
        assert_frame_equal(views.audit(runner, unit.id, deputy.user_id, limit=limit), deputys.head(limit))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10**9), unique=True, max_size=3 * views.AUDIT_IDS_PER_READ + 7).map(sorted))
def test_an_aggregates_ids_are_read_newest_first_in_bounded_slices(ids: list[int]) -> None:
    slices = list(views._slices_newest_first(ids))
    assert all(0 < len(part) <= views.AUDIT_IDS_PER_READ for part in slices)
    assert [nid for part in reversed(slices) for nid in part] == ids
    assert all(a[0] > b[-1] for a, b in itertools.pairwise(slices))  # each slice newer than the next


def test_topic_filtered_projection_tracks_the_whole_log(marketplace: Marketplace, open_runner: OpenRunner) -> None:
    populate(marketplace.parties, 0, 9)
    runner = open_runner([MembersProjection(), UnitsProjection()], app=marketplace.app, batch_size=4)
    runner.catch_up()
    head = marketplace.app.recorder.max_notification_id()
    assert runner.lag() == {"members": 0, "units": 0}
    assert all(s.position == head for s in runner.status())

    members = runner.frame("rm_members_members")
    expected = sorted(
        [(str(ApplicationUnit.create_id(credit_code(i))), f"admin-{i}") for i in range(9)]
        + [(str(ApplicationUnit.create_id(credit_code(i))), f"analyst-{i}") for i in range(9) if i % 3 != 0]
    )
    assert sorted(zip(members["unit_id"], members["user_id"], strict=True)) == expected
    units = runner.frame("rm_units_units").sort("name")
    statuses = dict(zip(units["name"], units["status"], strict=True))
    assert statuses["Unit 0"] == "qualified" and statuses["Unit 2"] == "rejected"
    assert statuses["Unit 1"] == "pending_qualification"


def test_bumped_version_rebuilds_and_an_older_runner_refuses(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    populate(marketplace.parties, 0, 3)
    old = open_runner([CountingProjection()], app=marketplace.app)
    old.catch_up()

    class CountingV2(CountingProjection):
        version = 2

    new = open_runner([CountingV2()], app=marketplace.app)
    assert new.ensure() == ["counting"]  # reset to zero ...
    assert new.lag()["counting"] == marketplace.app.recorder.max_notification_id()
    new.catch_up()  # ... and rebuilt
    assert counting_totals(new.frame("rm_counting_topics")) == log_totals(marketplace.app)

    populate(marketplace.parties, 3, 1)
    stale = open_runner([CountingProjection()], app=marketplace.app)
    with pytest.raises(ProjectionError, match="version 2 of counting"):
        stale.catch_up()
    assert counting_totals(new.frame("rm_counting_topics"))[0] < log_totals(marketplace.app)[0]


def test_a_dropped_table_is_rebuilt_on_start(marketplace: Marketplace, open_runner: OpenRunner) -> None:
    populate(marketplace.parties, 0, 3)
    runner = open_runner([CountingProjection()], app=marketplace.app)
    runner.catch_up()
    with runner.db.transaction() as cur:
        cur.execute("DROP TABLE rm_counting_aggregates")
    again = open_runner([CountingProjection()], app=marketplace.app)
    assert again.ensure() == ["counting"]
    again.catch_up()
    assert again.frame("rm_counting_aggregates")["events"].sum() == log_totals(marketplace.app)[0]


def test_art18_second_runner_loses_a_batch_the_first_committed(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    populate(marketplace.parties, 0, 10)
    first = open_runner([CountingProjection()], app=marketplace.app, batch_size=6)
    second = open_runner([CountingProjection()], app=marketplace.app, batch_size=6)
    first.ensure()
    second.ensure()
    # Both map the same batch from the same position; whoever commits second loses it.
    plan_first = first.prepare(list(first.projections.values()), 6)
    plan_second = second.prepare(list(second.projections.values()), 6)
    assert plan_first is not None and plan_second is not None
    assert first.commit(plan_first).applied == ("counting",)
    report = second.commit(plan_second)
    assert report.lost == ("counting",) and report.applied == ()
    assert counting_totals(first.frame("rm_counting_topics"))[0] == 6

    for _ in range(50):  # taking turns batch by batch, they finish the log between them
        first.catch_up(limit=6)
        second.catch_up(limit=6)
    assert counting_totals(first.frame("rm_counting_topics")) == log_totals(marketplace.app)


def test_wait_for_returns_when_the_runner_has_applied_the_commands_notification(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    runner = open_runner([AuditProjection(), MembersProjection()], app=marketplace.app, batch_size=50)
    runner.ensure()
    nid = populate(marketplace.parties, 0, 2)
    assert runner.wait_for(nid, timeout=0.2) is False  # nobody is running the projections
    assert wait_for_position(config, nid, ["audit"], timeout=0.1) is False

    stop = threading.Event()
    worker = open_runner([AuditProjection(), MembersProjection()], app=marketplace.app, batch_size=50)
    thread = threading.Thread(target=worker.run_forever, args=(0.02, stop), daemon=True)
    thread.start()
    try:
        assert runner.wait_for(nid, timeout=20)
        nid = populate(marketplace.parties, 2, 1)  # a command while the runner follows the log
        assert wait_for_position(config, nid, ["audit", "members"], timeout=20)
        audit = read_frame(config, "rm_audit_events")
        assert audit["notification_id"].max() == nid
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_wait_for_can_drive_the_catch_up_itself(marketplace: Marketplace, open_runner: OpenRunner) -> None:
    runner = open_runner([MembersProjection()], app=marketplace.app)
    nid = populate(marketplace.parties, 0, 2)
    assert runner.wait_for(nid, timeout=10, drive=True)
    assert runner.lag() == {"members": 0}


class Duplicating(Projection):
    """Writes a duplicate primary key on the fourth event: a failure at write time."""

    name = "duplicating"
    tables = (Table("rm_duplicating_rows", {"id": INT}, key=("id",)),)

    def apply(self, event: Recorded) -> Iterable[Op]:
        key = 1 if event.notification_id == 4 else event.notification_id
        return (Insert("rm_duplicating_rows", (key,)),)


def test_a_failing_projection_stops_alone_and_names_the_notification(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    populate(marketplace.parties, 0, 3)
    runner = open_runner([Exploding(), Duplicating(), CountingProjection()], app=marketplace.app, batch_size=2)
    with pytest.raises(ProjectionError, match="exploding failed mapping notification 3"):
        runner.catch_up()

    runner.failed.clear()
    runner.catch_up(raise_errors=False)
    assert set(runner.failed) == {"exploding", "duplicating"}
    assert "writing notifications 3..4" in runner.failed["duplicating"][1]
    lag = runner.lag()
    head = head_of(marketplace)
    assert lag == {"exploding": head - 2, "duplicating": head - 2, "counting": 0}
    assert runner.frame("rm_duplicating_rows")["id"].to_list() == [1, 2]  # its failed batch rolled back
    assert counting_totals(runner.frame("rm_counting_topics")) == log_totals(marketplace.app)


def test_misdeclared_projections_are_refused(open_runner: OpenRunner) -> None:
    class BadPrefix(Projection):
        name = "bad"
        tables = (Table("rm_other_rows", {"id": INT}, key=("id",)),)

    with pytest.raises(ProjectionError, match="must be named rm_bad_"):
        open_runner([BadPrefix()])
    with pytest.raises(ProjectionError, match="share a name"):
        open_runner([CountingProjection(), CountingProjection()])
    runner = open_runner([CountingProjection()])
    with pytest.raises(ProjectionError, match="no projection named nope"):
        runner.rebuild("nope")


def test_events_written_by_another_process_appear_in_the_read_models(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    runner = open_runner([AuditProjection(), MembersProjection()], app=marketplace.app)
    runner.catch_up()
    script = (
        "from marketplace.bootstrap import build\n"
        "from projection_helpers import populate\n"
        "mp = build()\n"
        "print(populate(mp.parties, 500, 3))\n"
        "mp.close()\n"
    )
    nid = int(run_python(config, script).strip().splitlines()[-1])

    assert runner.wait_for(nid, timeout=20, drive=True)
    audit = runner.frame("rm_audit_events")
    assert audit["notification_id"].max() == nid
    assert set(audit["actor_user_id"].drop_nulls()) >= {"admin-500", "admin-501", "admin-502"}
    members = runner.frame("rm_members_members")
    assert "analyst-500" in members["user_id"].to_list() and "analyst-501" not in members["user_id"].to_list()


def test_a_runner_reads_the_log_on_its_own_connection_and_on_sqlite_never_loads_the_postgresql_driver(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    """Both stores are read with plain SQL (not the recorder's per-row objects); a runner process on
    SQLite, a rebuild's helper among them, starts without importing psycopg."""
    assert isinstance(open_runner(fresh(), app=marketplace.app).log, SQLEventLog)
    script = (
        "import sys\n"
        "from marketplace.config import Config\n"
        "from projections.runner import Runner\n"
        "with Runner.open(Config.from_env()) as runner:\n"
        "    print(type(runner.log).__name__, sorted(m for m in sys.modules if m.startswith(('psycopg', "
        "'eventsourcing.postgres'))))\n"
    )
    said = run_python(config, script)
    if config.database_url:
        assert said.startswith("SQLEventLog ['eventsourcing.postgres', 'psycopg")
    else:
        assert said.strip() == "SQLEventLog []"


def test_the_log_reader_reads_what_the_recorder_selects_whatever_the_range_limit_and_topics(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    """The runner's SQL reader (on PostgreSQL, in windows of ids that double while a topic filter
    leaves them sparse) returns exactly what eventsourcing's own ``select_notifications`` does."""
    head = bulk_save(marketplace.app, 0, 40)
    log = open_runner(fresh(), app=marketplace.app).log
    reference = RecorderEventLog(marketplace.app.recorder, log.codec)
    in_log = sorted({row[3] for row in reference.read(0, head, head)})
    rare = [topic for topic in in_log if topic.endswith((".Registered", ".QualificationDecided"))]

    @settings(max_examples=80, deadline=None)
    @given(after=st.integers(0, head), span=st.integers(0, head), limit=st.integers(1, 70),
           topics=st.one_of(st.none(), st.just(rare), st.lists(st.sampled_from(in_log), unique=True)))
    def reads_alike(after: int, span: int, limit: int, topics: list[str] | None) -> None:
        stop = min(after + span, head + 3)
        mine = log.read(after, stop, limit, topics)
        theirs = reference.read(after, stop, limit, topics)
        assert [(r[0], r[2], r[3], bytes(r[4])) for r in mine] == [(r[0], r[2], r[3], bytes(r[4])) for r in theirs]

    reads_alike()
    # a sparse filter over the whole log, in one call: the windows add up to every match, in order
    every = log.read(0, head, head, rare)
    assert [r[0] for r in every] == [r[0] for r in reference.read(0, head, head, rare)]
    assert len(every) >= 2 * 40  # each bulk unit's registration and qualification decision, at least


def test_read_frame_takes_a_table_or_a_query_and_scan_frame_is_lazy(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    populate(marketplace.parties, 0, 4)
    runner = open_runner([AuditProjection()], app=marketplace.app)
    runner.catch_up()
    mark = "%s" if config.uses_postgres else "?"
    by_query = read_frame(config, f"SELECT event_name, COUNT(*) AS n FROM rm_audit_events "
                                  f"WHERE aggregate_type = {mark} GROUP BY event_name ORDER BY event_name",
                          ["ApplicationUnit"])
    assert by_query.columns == ["event_name", "n"]
    assert dict(zip(by_query["event_name"], by_query["n"], strict=True))["Registered"] == 4
    lazy = scan_frame(config, "rm_audit_events")
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.filter(pl.col("event_name") == "Registered").collect().height == 4
    with pytest.raises(ProjectionError, match="rm_nothing_here does not exist"):
        read_frame(config, "rm_nothing_here")


def test_bulk_rebuild_defers_secondary_indexes_until_caught_up(
    marketplace: Marketplace, open_runner: OpenRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import projections.runner as runner_module

    monkeypatch.setattr(runner_module, "DEFER_INDEXES_LAG", 100)
    bulk_save(marketplace.app, 0, 60)  # 420 events
    runner = open_runner([MembersProjection()], app=marketplace.app, batch_size=50)
    created: list[int] = []
    original = runner.db.index_statements

    def spy(tables: object) -> list[str]:
        created.append(runner.db.positions()["members"][1])
        return original(tables)  # type: ignore[arg-type]

    runner.db.index_statements = spy  # type: ignore[method-assign]
    runner.rebuild()
    assert len(created) == 1 and created[0] >= head_of(marketplace) - 100
    index = "rm_members_members__user_id"
    if runner.db.dialect == "sqlite":
        _, rows = runner.db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?", (index,))
    else:
        _, rows = runner.db.query("SELECT indexname FROM pg_indexes WHERE indexname = %s", (index,))
    assert rows == [(index,)]


def test_run_forever_keeps_following_and_stops_on_request(
    marketplace: Marketplace, open_runner: OpenRunner
) -> None:
    runner = open_runner(fresh(), app=marketplace.app, batch_size=20)
    stop = threading.Event()
    batches: list[int] = []
    thread = threading.Thread(
        target=runner.run_forever, kwargs={"poll_interval": 0.02, "stop": stop,
                                           "on_batch": lambda b: batches.append(b.end)},
        daemon=True,
    )
    thread.start()
    try:
        for start in (0, 5, 10):
            populate(marketplace.parties, start, 5)
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while any(runner.lag().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert batches == sorted(batches) and batches[-1] == marketplace.app.recorder.max_notification_id()
    assert counting_totals(runner.frame("rm_counting_topics")) == log_totals(marketplace.app)


def test_run_forever_reconnects_after_the_database_drops_its_connections(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    if not config.uses_postgres:
        pytest.skip("SQLite has no server to drop a connection")
    import psycopg

    from projections.db import PostgresDatabase

    runner = open_runner([CountingProjection()], app=marketplace.app, batch_size=10)
    populate(marketplace.parties, 0, 2)
    runner.catch_up()
    assert isinstance(runner.db, PostgresDatabase)
    pids = [runner.db.conn.info.backend_pid, runner.log.db.conn.info.backend_pid]  # type: ignore[attr-defined]
    with psycopg.connect(runner.db._conninfo, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    nid = populate(marketplace.parties, 2, 2)

    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(0.05, stop), daemon=True)
    thread.start()
    try:
        assert wait_for_position(config, nid, ["counting"], timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert counting_totals(runner.frame("rm_counting_topics")) == log_totals(marketplace.app)


# -- waiting for SQLite's write lock ---------------------------------------------------------------------


def _holding_the_write_lock(config: Config, seconds: float) -> threading.Thread:
    """Another writer holding SQLite's write lock for ``seconds`` (from now)."""
    import sqlite3

    other = sqlite3.connect(str(config.sqlite_path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=release)
    holder.start()
    return holder


@pytest.mark.parametrize("ahead_batches", [10, 1])
def test_the_next_batches_are_prepared_while_a_commit_waits_for_sqlites_write_lock(
    marketplace: Marketplace, config: Config, open_runner: OpenRunner, monkeypatch: pytest.MonkeyPatch,
    ahead_batches: int,
) -> None:
    """While another writer holds the lock (a second runner committing or building an index), the
    runner maps and plans the batches after the waiting one, in order, up to ``AHEAD_BATCHES``."""
    import projections.runner as runner_module

    if config.database_url:
        pytest.skip("PostgreSQL has no database-wide write lock to wait for")
    monkeypatch.setattr(runner_module, "AHEAD_BATCHES", ahead_batches)
    bulk_save(marketplace.app, 0, 50)  # 300 events
    head = head_of(marketplace)
    runner = open_runner(fresh(), app=marketplace.app, batch_size=100)
    runner.ensure()
    ahead_of: list[tuple[int, int | None]] = []  # (the waiting batch's end, each prepared batch's start)
    original = runner._prepare_ahead

    def spy(ahead: deque[Any], plan: Any, *args: Any) -> bool:
        prepared = original(ahead, plan, *args)
        assert prepared
        ahead_of.append((plan.end, ahead[-1].start if ahead[-1] is not None else None))
        return prepared

    runner._prepare_ahead = spy  # type: ignore[method-assign]
    holder = _holding_the_write_lock(config, 0.5)
    assert runner.catch_up() == head
    holder.join()
    # every batch after the first was mapped and planned while the first waited (then the
    # log's end, None), or as many as allowed
    everything = [(100, start) for start in range(100, head, 100)] + [(100, None)]
    assert 3 <= len(everything) <= 10
    assert ahead_of == everything[:ahead_batches]
    assert not any(runner.lag().values())
    caught_up = tables_of(runner)
    runner.rebuild()  # nobody else writing: no waits
    assert_same_tables(caught_up, tables_of(runner))


def test_a_failure_found_while_waiting_for_the_lock_is_raised_after_the_batch_before_it_commits(
    marketplace: Marketplace, config: Config, open_runner: OpenRunner
) -> None:
    if config.database_url:
        pytest.skip("PostgreSQL has no database-wide write lock to wait for")
    bulk_save(marketplace.app, 0, 5)
    runner = open_runner([AuditProjection(), Exploding()], app=marketplace.app, batch_size=2)
    runner.ensure()
    holder = _holding_the_write_lock(config, 0.5)  # batch 1 (notifications 1-2) waits; batch 2 fails at 3
    with pytest.raises(ProjectionError, match="exploding failed mapping notification 3"):
        runner.catch_up()
    holder.join()
    assert {name: position for name, (_, position) in runner.db.positions().items()} == {"audit": 2, "exploding": 2}
