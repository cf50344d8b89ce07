"""Time travel: read models as of a past notification id or time equal what the live tables
showed then, and are built without touching the live tables."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from projection_helpers import (
    CountingProjection,
    MembersProjection,
    OpenRunner,
    assert_same_tables,
    counting_totals,
    fresh,
    log_totals,
    populate,
)

from marketplace.bootstrap import Marketplace
from marketplace.config import Config
from projections.asof import asof_frame, build_asof, notification_id_at, parse_time
from projections.base import ProjectionError
from projections.cli import main
from projections.db import read_frame
from projections.log import EventLog


def live_tables(runner: object) -> dict[str, pl.DataFrame]:
    return {t.name: read_frame(runner.db, t) for p in runner.projections.values() for t in p.tables}  # type: ignore[attr-defined]


def test_asof_a_notification_id_equals_the_live_tables_at_that_id(
    marketplace: Marketplace, open_runner: OpenRunner, config: Config
) -> None:
    runner = open_runner(fresh(), app=marketplace.app, batch_size=9)
    then = populate(marketplace.parties, 0, 6)
    runner.catch_up()
    tables_then = live_tables(runner)
    populate(marketplace.parties, 6, 6)
    runner.catch_up()

    past = build_asof(config, upto=then, app=marketplace.app, projections=fresh(), batch_size=4)

    assert past.notification_id == then
    assert_same_tables(past.frames, tables_then)
    now = live_tables(runner)  # the live tables moved on and were not touched
    assert now["rm_audit_events"].height > tables_then["rm_audit_events"].height
    assert counting_totals(past["rm_counting_topics"]) == counting_totals(tables_then["rm_counting_topics"])


def test_asof_a_time_stops_at_the_last_event_stamped_by_then(
    marketplace: Marketplace, config: Config
) -> None:
    before_anything = datetime.now(UTC)
    time.sleep(0.01)
    then = populate(marketplace.parties, 0, 3)
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    later = populate(marketplace.parties, 3, 3)

    log = EventLog.open(marketplace.app, config)
    try:
        assert notification_id_at(log, moment) == then
        assert notification_id_at(log, before_anything) == 0
        assert notification_id_at(log, datetime.now(UTC)) == later
        assert notification_id_at(log, moment.isoformat()) == then
        assert notification_id_at(log, moment.replace(tzinfo=None)) == then  # naive means UTC
    finally:
        log.close()

    past = build_asof(config, "counting", at=moment, app=marketplace.app, projections=[CountingProjection()])
    assert past.notification_id == then and past.at == moment
    assert counting_totals(past["rm_counting_topics"]) == (then, then * (then + 1) // 2)
    empty = build_asof(config, "counting", at=before_anything, app=marketplace.app,
                       projections=[CountingProjection()])
    assert empty.notification_id == 0 and empty["rm_counting_topics"].height == 0


def test_asof_frame_reads_one_registered_table(marketplace: Marketplace, config: Config) -> None:
    then = populate(marketplace.parties, 0, 2)
    populate(marketplace.parties, 2, 2)
    audit = asof_frame(config, "rm_audit_events", upto=then, app=marketplace.app)
    assert audit["notification_id"].to_list() == list(range(1, then + 1))
    beyond = build_asof(config, "audit", upto=10**9, app=marketplace.app)
    assert beyond.notification_id == log_totals(marketplace.app)[0]


def test_asof_needs_exactly_one_point_in_the_past(marketplace: Marketplace, config: Config) -> None:
    with pytest.raises(ProjectionError, match="exactly one of upto"):
        build_asof(config, app=marketplace.app)
    with pytest.raises(ProjectionError, match="exactly one of upto"):
        build_asof(config, upto=1, at=datetime.now(UTC), app=marketplace.app)
    with pytest.raises(ProjectionError, match="not negative"):
        build_asof(config, upto=-1, app=marketplace.app)
    with pytest.raises(ProjectionError, match="not an ISO 8601 time"):
        parse_time("yesterday")
    with pytest.raises(ProjectionError, match="no projection named nope"):
        build_asof(config, "nope", upto=1, app=marketplace.app)
    with pytest.raises(ProjectionError, match="no registered projection has a table"):
        asof_frame(config, "rm_nope_rows", upto=1, app=marketplace.app)
    with pytest.raises(ProjectionError, match="no table 'rm_x'"):
        build_asof(config, "audit", upto=0, app=marketplace.app)["rm_x"]


def test_cli_asof_prints_or_writes_parquet(
    marketplace: Marketplace, config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    then = populate(marketplace.parties, 0, 2)
    assert main(["asof", "--id", str(then), "audit"], config) == 0
    assert f"as of notification {then}" in capsys.readouterr().out
    out = tmp_path / "asof"
    assert main(["--projection", "projection_helpers:MembersProjection", "asof", "--at",
                 datetime.now(UTC).isoformat(), "--parquet", str(out)], config) == 0
    members = pl.read_parquet(out / "rm_members_members.parquet")
    assert members.height == 3  # two admins and one analyst (unit 0 removed its analyst)
    assert MembersProjection.MEMBERS.name == "rm_members_members"
