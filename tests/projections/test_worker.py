"""Long catch-ups shared with a second runner process (``projections.worker``).

The split must never change what the read models hold: a rebuild in two processes gives
the same tables as one in a single process, on SQLite and PostgreSQL; the helper really
takes part of the projections and progress follows the slower runner; the helper's
failures reach the runner that started it; projections another process cannot import
are caught up in one process; and the split balances the work.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from projection_helpers import ALL, HERE, ROOT, Exploding, Slow, bulk_save, fresh

from marketplace.bootstrap import Marketplace
from marketplace.config import Config
from projections.audit import AuditProjection
from projections.base import INT, Projection, ProjectionError, Table
from projections.db import connect, read_frame
from projections.registry import all_projections
from projections.runner import Runner
from projections.worker import partition, weights


class Named(Projection):
    """A projection that is only a name and topics (enough to weigh and split)."""

    tables = (Table("rm_named_t", {"k": INT}, key=("k",)),)

    def __init__(self, name: str, topics: frozenset[str] | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.topics = topics  # type: ignore[misc]


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12))
def test_partition_puts_each_projection_in_one_group_and_keeps_the_groups_within_one_projection(
    sizes: list[int],
) -> None:
    projections = [Named(f"p{i}") for i in range(len(sizes))]
    weight = {p.name: w for p, w in zip(projections, sizes, strict=True)}
    mine, theirs = partition(projections, lambda p: weight[p.name])
    assert sorted(p.name for p in mine + theirs) == sorted(weight)  # each exactly once
    light, heavy = sum(weight[p.name] for p in mine), sum(weight[p.name] for p in theirs)
    assert heavy >= light  # the helper takes the heavier share: the runner, done first, helps it finish
    assert heavy - light <= max(sizes)  # heaviest first, each to the lighter: off by at most one projection
    if len(sizes) == 2 and sizes[0] == sizes[1] > 0:  # a tie: the first stays, the second goes
        assert mine[0].name == "p0" and theirs[0].name == "p1"


def test_weights_count_the_sampled_notifications_each_projection_handles() -> None:
    every, some = Named("every"), Named("some", frozenset({"a:X.One", "a:X.Two"}))
    sample = ["a:X.One", "a:X.One", "a:X.Two", "b:Y.Three"]
    assert weights(sample, [every, some]) == {"every": 4, "some": 3}


def test_registered_read_models_can_go_to_a_helper_process() -> None:
    assert [p.name for p in pickle.loads(pickle.dumps(all_projections()))] == [p.name for p in all_projections()]


def tables_of(config: Config, projections: list[Projection]) -> dict[str, pl.DataFrame]:
    return {t.name: read_frame(config, t) for p in projections for t in p.tables}


def test_a_rebuild_shared_with_a_second_process_gives_the_tables_of_a_one_process_rebuild(
    marketplace: Marketplace, config: Config, caplog: pytest.LogCaptureFixture,
) -> None:
    head = bulk_save(marketplace.app, 0, 600)  # 3,600 events
    applied: set[str] = set()
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="projections"), \
            Runner.open(config, app=marketplace.app, batch_size=500, process_lag=0) as runner:
        everything = set(runner.projections)
        assert runner.rebuild(progress=lambda at, _: seen.append(at),
                              on_batch=lambda report: applied.update(report.applied)) == head
        assert not any(runner.lag().values())
        shared = tables_of(config, list(runner.projections.values()))
    assert "a second runner process catches up" in caplog.text
    assert applied and applied < everything  # this process applied its share only: the rest was the helper's
    assert seen == sorted(seen) and seen[-1] == head  # the slower runner's position, never going back

    with Runner.open(config, app=marketplace.app, batch_size=500, process_lag=None) as runner:
        runner.rebuild()
        alone = tables_of(config, list(runner.projections.values()))
    assert sorted(shared) == sorted(alone)
    for name in alone:
        assert shared[name].equals(alone[name]), name


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a helper process import the test projections, as a deployment's own would be."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(HERE)]))


def test_a_failure_in_the_helper_reaches_the_runner_that_started_it(
    marketplace: Marketplace, config: Config, importable: None, caplog: pytest.LogCaptureFixture,
) -> None:
    bulk_save(marketplace.app, 0, 100)
    # Two projections of equal weight: the first stays, the second goes to the helper.
    with caplog.at_level(logging.INFO, logger="projections"), \
            Runner.open(config, [AuditProjection(), Exploding()], app=marketplace.app, batch_size=200,
                        process_lag=0) as runner:
        with pytest.raises(ProjectionError, match="exploding failed mapping notification 3"):
            runner.rebuild()
        assert "second runner process catches up exploding" in caplog.text
        runner.catch_up(raise_errors=False)
        assert "failed mapping notification 3" in runner.failed["exploding"][1]
        lag = runner.lag()
        assert lag["exploding"] > 0 and lag["audit"] == 0


def test_the_runner_builds_its_deferred_indexes_while_the_helper_is_still_at_work(
    marketplace: Marketplace, config: Config, importable: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import projections.runner as runner_module

    monkeypatch.setattr(runner_module, "DEFER_INDEXES_LAG", 100)
    head = bulk_save(marketplace.app, 0, 300)  # 1,800 events: the slow helper takes about 2 s
    with Runner.open(config, [AuditProjection(), Slow()], app=marketplace.app, batch_size=200,
                     process_lag=0) as runner:
        helper_at: dict[str, int] = {}  # table -> the helper's position when its indexes were built
        original = runner.db.index_statements

        def spy(tables: Sequence[Table]) -> list[str]:
            helper_at.update((t.name, runner.db.positions()["slow"][1]) for t in tables)
            return original(tables)

        runner.db.index_statements = spy  # type: ignore[method-assign]
        assert runner.rebuild() == head
        assert not any(runner.lag().values())
    assert helper_at["rm_audit_events"] < head  # the audit trail's indexes went in meanwhile
    assert len(runner_index_names(config, "rm_audit")) == len(AuditProjection.tables[0].indexes)


def runner_index_names(config: Config, prefix: str) -> list[str]:
    """The secondary indexes (named ``table__columns``) of the tables whose names start with ``prefix``."""
    with connect(config) as db:
        _, rows = db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?",
                           (prefix + "%",)) if config.database_url is None else db.query(
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", (prefix + "%",))
    return sorted(name for (name,) in rows if "__" in name)


def test_the_runner_takes_on_the_helpers_last_steps_while_it_waits_for_it(
    marketplace: Marketplace, config: Config, importable: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner done with its share spends the wait on what would end the helper's catch-up: it copies
    the log the helper writes into the database (SQLite), again and again, and once the helper is near
    the head it builds the helper's deferred indexes, which the helper's last batches keep up to date."""
    import projections.runner as runner_module

    monkeypatch.setattr(runner_module, "DEFER_INDEXES_LAG", 600)
    head = bulk_save(marketplace.app, 0, 300)  # 1,800 events: the slow helper takes about 2 s
    with Runner.open(config, [AuditProjection(), Slow()], app=marketplace.app, batch_size=200,
                     process_lag=0) as runner:
        checkpoints: list[int] = []  # the helper's position at each checkpoint
        indexed: dict[str, int] = {}  # table -> the helper's position when its indexes were built here
        checkpoint, index_statements = runner.db.checkpoint, runner.db.index_statements

        def spy_checkpoint() -> None:
            checkpoints.append(runner.db.positions()["slow"][1])
            checkpoint()

        def spy_indexes(tables: Sequence[Table]) -> list[str]:
            indexed.update((t.name, runner.db.positions()["slow"][1]) for t in tables)
            return index_statements(tables)

        runner.db.checkpoint = spy_checkpoint  # type: ignore[method-assign]
        runner.db.index_statements = spy_indexes  # type: ignore[method-assign]
        assert runner.rebuild() == head
        assert not any(runner.lag().values())
        slow = read_frame(config, Slow.tables[0])
    assert len(checkpoints) >= 3 and min(checkpoints) < head  # again and again, while the helper was at work
    assert head - 600 <= indexed["rm_slow_rows"] < head  # near the head, and before the helper was done
    assert slow.height == head and slow["id"].n_unique() == head  # every row, once
    assert runner_index_names(config, "rm_slow") == ["rm_slow_rows__topic"]


def test_a_failure_while_waiting_for_the_helper_leaves_its_last_steps_to_it(
    marketplace: Marketplace, config: Config, importable: None, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the waiting runner does for the helper is help, not a duty: if it fails (here, once), it stops
    trying and the catch-up still ends with every row and every index."""
    import projections.runner as runner_module

    monkeypatch.setattr(runner_module, "DEFER_INDEXES_LAG", 600)
    head = bulk_save(marketplace.app, 0, 300)
    with caplog.at_level(logging.WARNING, logger="projections"), \
            Runner.open(config, [AuditProjection(), Slow()], app=marketplace.app, batch_size=200,
                        process_lag=0) as runner:
        original = runner.db.index_statements
        tries: list[int] = []

        def flaky(tables: Sequence[Table]) -> list[str]:
            if any(t.name == "rm_slow_rows" for t in tables):
                tries.append(runner.db.positions()["slow"][1])
                if len(tries) == 1:
                    raise RuntimeError("index disk full")
            return original(tables)

        runner.db.index_statements = flaky  # type: ignore[method-assign]
        assert runner.rebuild() == head
        assert not any(runner.lag().values())
        slow = read_frame(config, Slow.tables[0])
    assert "left to the helper runner, after failing while waiting for it" in caplog.text
    assert caplog.text.count("index disk full") == 1
    assert tries[0] < head and tries[1:] == [head]  # no more tries while waiting; once more after the join
    assert slow.height == head and slow["id"].n_unique() == head
    assert runner_index_names(config, "rm_slow") == ["rm_slow_rows__topic"]


def test_projections_no_other_process_can_import_are_caught_up_in_one_process(
    marketplace: Marketplace, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a helper could not import projection_helpers
    bulk_save(marketplace.app, 0, 200)
    applied: set[str] = set()
    with caplog.at_level(logging.INFO, logger="projections"), \
            Runner.open(config, fresh(), app=marketplace.app, batch_size=300, process_lag=0) as runner:
        runner.rebuild(on_batch=lambda report: applied.update(report.applied))
        assert not any(runner.lag().values())
    assert "no helper runner" in caplog.text and "ModuleNotFoundError" in caplog.text
    assert applied == {p.name for p in ALL}  # every one of them, here


def test_the_cli_can_turn_the_second_process_off() -> None:
    from projections.cli import _parser

    assert _parser().parse_args(["--second-process-after", "-1", "lag"]).second_process_after == -1
    assert _parser().parse_args(["lag"]).second_process_after == 50_000
