"""Runner processes killed mid-batch (SIGKILL, several times) and two runner processes at once:
the read models end exactly as a fresh build from the log, nothing counted twice or missed."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from projection_helpers import (
    ALL,
    CountingProjection,
    assert_same_tables,
    bulk_save,
    counting_totals,
    fresh,
    log_totals,
    subprocess_env,
)

from marketplace.bootstrap import Marketplace
from marketplace.config import Config
from projections.asof import build_asof
from projections.db import Database, connect, read_frame


def start_runner(
    config: Config, out: Path, *extra: str, batch: int = 25, split: bool = False,
) -> subprocess.Popen[bytes]:
    """A runner process; with ``split`` it shares every catch-up with a helper runner process."""
    command = [sys.executable, "-m", "projections", "--projection", "projection_helpers:ALL",
               "--second-process-after", "0" if split else "-1",
               "--batch-size", str(batch), "run", "--poll", "0.05", "--report-every", "0", *extra]
    with out.open("ab") as sink:
        return subprocess.Popen(command, env=subprocess_env(config), stdout=sink, stderr=sink)


def position(db: Database, name: str = "counting") -> int:
    try:
        return db.positions().get(name, (0, 0))[1]
    except Exception:  # the tracking table is created by the runner's first start
        return 0


def live_tables(db: Database) -> dict[str, pl.DataFrame]:
    return {t.name: read_frame(db, t) for p in ALL for t in p.tables}


def helpers_alive() -> list[int]:
    """Helper runner processes still running (``projections.worker``), by pid."""
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"projections.worker import serve" in (entry / "cmdline").read_bytes():
                alive.append(int(entry.name))
        except OSError:
            continue
    return alive


@pytest.mark.parametrize("split", [False, True], ids=["one_process", "with_helper"])
def test_art18_runner_killed_mid_batch_again_and_again_ends_exactly_once(
    marketplace: Marketplace, config: Config, tmp_path: Path, split: bool
) -> None:
    head = bulk_save(marketplace.app, 0, 3000)  # 21,000 events
    rng = random.Random(20231)
    out = tmp_path / "runner.log"
    killed_at: list[int] = []
    with connect(config) as db:
        for round_ in range(5):
            before = position(db)
            runner = start_runner(config, out, split=split)
            deadline = time.monotonic() + 60
            while position(db) <= before and time.monotonic() < deadline and runner.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
            runner.send_signal(signal.SIGKILL)
            assert runner.wait(10) == -signal.SIGKILL, out.read_text()[-2000:]
            deadline = time.monotonic() + 10
            while helpers_alive():  # a helper dies with its runner: it writes nothing after the kill
                assert time.monotonic() < deadline, f"helper runner processes outlived the runner: {helpers_alive()}"
                time.sleep(0.01)
            reached = position(db)
            killed_at.append(reached)
            # Whatever moment the kill hit, the tables hold exactly the events up to the position.
            assert counting_totals(read_frame(db, CountingProjection.TOPICS)) == log_totals(marketplace.app, reached)
            # (each projection at its own position: with a helper, two runners moved them)
            assert read_frame(db, "rm_audit_events").height == log_totals(marketplace.app, position(db, "audit"))[0]
            head = bulk_save(marketplace.app, 10_000 + 20 * round_, 20)  # the log grows meanwhile

        assert killed_at == sorted(killed_at) and len(set(killed_at)) == len(killed_at)
        assert sum(0 < k < head for k in killed_at) >= 3, f"kills did not land mid-log: {killed_at} of {head}"

        done = subprocess.run(
            [sys.executable, "-m", "projections", "--projection", "projection_helpers:ALL", "--batch-size", "500",
             "run", "--once"], env=subprocess_env(config), capture_output=True, text=True, timeout=240, check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert position(db) == head
        if split:
            assert "a second runner process catches up" in out.read_text()
        tables = live_tables(db)

    assert counting_totals(tables["rm_counting_topics"]) == log_totals(marketplace.app)
    fresh_build = build_asof(config, upto=head, app=marketplace.app, projections=fresh())
    assert_same_tables(tables, fresh_build.frames)


def test_two_runner_processes_at_once_never_double_apply(
    marketplace: Marketplace, config: Config, tmp_path: Path
) -> None:
    bulk_save(marketplace.app, 0, 1500)  # 10,500 events of backlog for both to fight over
    outputs = [tmp_path / "a.log", tmp_path / "b.log"]
    runners = [start_runner(config, out) for out in outputs]
    try:
        deadline = time.monotonic() + 60
        while not all("following the log" in o.read_text() for o in outputs if o.exists()):
            assert time.monotonic() < deadline, "runners did not start"
            assert all(r.poll() is None for r in runners), "".join(o.read_text() for o in outputs)[-3000:]
            time.sleep(0.05)
        for round_ in range(5):  # new events while both follow the log
            head = bulk_save(marketplace.app, 5000 + 40 * round_, 40)
            time.sleep(0.1)
        with connect(config) as db:
            deadline = time.monotonic() + 180
            while any(position(db, p.name) < head for p in ALL):
                assert time.monotonic() < deadline, "runners did not catch up"
                time.sleep(0.1)
            tables = live_tables(db)
    finally:
        for runner in runners:
            runner.send_signal(signal.SIGTERM)
        for runner in runners:
            runner.wait(30)
    logs = "".join(o.read_text() for o in outputs)
    assert [r.returncode for r in runners] == [0, 0], logs[-3000:]
    assert "lost to another runner" in logs  # they really competed for the same batches

    assert counting_totals(tables["rm_counting_topics"]) == log_totals(marketplace.app)
    assert_same_tables(tables, build_asof(config, upto=head, app=marketplace.app, projections=fresh()).frames)
