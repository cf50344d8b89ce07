"""A state machine over the runner's life: writes, partial catch-ups by two runners, stale
batches, crashes inside the write transaction, abandoned batches and rebuilds, in any order.
After every step each read model holds exactly the events up to its tracked position; at the
end, after a catch-up, every table equals a fresh build from the log (SQLite file store)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from projection_helpers import ALL, assert_same_tables, bulk_save, counting_totals, fresh, log_totals

from marketplace.config import Config
from marketplace.store import open_store
from projections.asof import build_asof
from projections.db import read_frame
from projections.runner import Runner


class RunnerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="shuyun-runner-machine-"))
        self.config = Config(data_dir=self.dir)
        self.app = open_store(self.config)
        self.runners = [
            Runner.open(self.config, fresh(), app=self.app, batch_size=5),
            Runner.open(self.config, fresh(), app=self.app, batch_size=13),
        ]
        self.next_unit = 0

    def teardown(self) -> None:
        try:
            self.runners[0].catch_up()
            head = int(self.app.recorder.max_notification_id() or 0)
            live = {t.name: read_frame(self.runners[0].db, t) for p in ALL for t in p.tables}
            rebuilt = build_asof(self.config, upto=head, app=self.app, projections=fresh(), batch_size=7)
            assert_same_tables(live, rebuilt.frames)
        finally:
            for runner in self.runners:
                runner.close()
            self.app.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    @rule(units=st.integers(1, 4))
    def write(self, units: int) -> None:
        bulk_save(self.app, self.next_unit, units)
        self.next_unit += units

    @rule(which=st.integers(0, 1), limit=st.one_of(st.none(), st.integers(1, 40)))
    def catch_up(self, which: int, limit: int | None) -> None:
        self.runners[which].catch_up(limit=limit)

    @precondition(lambda self: self.head > 0)
    @rule(steal=st.integers(1, 30))
    def stale_batch_is_lost(self, steal: int) -> None:
        first, second = self.runners
        first.ensure()
        plan = first.prepare(list(first.projections.values()), first.batch_size)
        moved = second.catch_up(limit=steal)
        if plan is not None:
            report = first.commit(plan)
            if moved:
                assert report.applied == (), report  # every position moved under it
            else:
                assert set(report.applied) == {p.name for p, _, _ in plan.planned}

    @precondition(lambda self: self.head > 0)
    @rule(which=st.integers(0, 1))
    def crash_inside_the_write_transaction(self, which: int) -> None:
        runner = self.runners[which]
        runner.ensure()
        before = runner.db.positions()

        def power_cut(*_: Any, **__: Any) -> None:
            raise RuntimeError("power cut")

        runner.db.set_position = power_cut  # type: ignore[method-assign]
        try:
            runner.catch_up(limit=runner.batch_size)
        except RuntimeError:
            pass
        finally:
            del runner.db.set_position
        assert runner.db.positions() == before

    @rule(which=st.integers(0, 1))
    def abandon_a_mapped_batch(self, which: int) -> None:
        runner = self.runners[which]
        runner.ensure()
        runner.prepare(list(runner.projections.values()), runner.batch_size)

    @rule(which=st.integers(0, 1), name=st.sampled_from([p.name for p in ALL]))
    def rebuild(self, which: int, name: str) -> None:
        self.runners[which].rebuild(name)

    @invariant()
    def read_models_hold_exactly_the_events_up_to_their_position(self) -> None:
        runner = self.runners[0]
        runner.db.ensure_tracking()
        positions = runner.db.positions()
        if "counting" in positions and runner.db.table_exists("rm_counting_topics"):
            upto = positions["counting"][1]
            assert counting_totals(runner.frame("rm_counting_topics")) == log_totals(self.app, upto)
        if "audit" in positions and runner.db.table_exists("rm_audit_events"):
            upto = positions["audit"][1]
            assert runner.frame("rm_audit_events").height == log_totals(self.app, upto)[0]


RunnerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=12, deadline=None)
test_runner_state_machine = RunnerMachine.TestCase
