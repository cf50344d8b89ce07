"""The projection runner: follows the notification log and keeps read models exactly once.

Each batch goes: read the tracked positions, read the next slice of the log (outside any
lock), map it to row operations (pure, per projection), then in ONE write transaction
lock the projections' tracking rows, check they still hold the positions the batch was
computed from, write the rows and move the positions. A runner killed at any moment
leaves either the whole batch with its position or neither; a second runner that
computed the same batch finds the position moved and throws its work away. A batch is a
pure function of an immutable slice of the log, so whichever runner wins writes the same
rows.

``version`` bumps, ``rebuild`` and missing tables all reset a projection to position 0
(drop, create, track from zero) in one transaction; every runner then follows from there.

A long catch-up (a rebuild, a runner far behind) shares its projections with a second
runner process (``projections.worker``), each on its own core and its own tracking rows,
so exactly-once holds as for any two runners. A ``Runner`` may be shared by threads (a
page asking for ``lag`` while another thread runs ``run_forever``): its connections take
one transaction at a time.
"""

from __future__ import annotations

import gc
import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from projections.base import (
    BOOL,
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    Codec,
    ColumnType,
    Delete,
    Increment,
    Insert,
    Op,
    Projection,
    ProjectionError,
    Recorded,
    Table,
    Update,
    Upsert,
)
from projections.db import TRACKING_TABLE, Database, OpWriter, Plan, connect, read_frame
from projections.log import EventLog
from projections.mapping import BatchMapper
from projections.worker import SAMPLE, HelperRunner, Outcome, partition, weights

if TYPE_CHECKING:
    import polars as pl
    from eventsourcing.application import Application

    from marketplace.config import Config

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "TEXT",
    "TIMESTAMP",
    "BatchReport",
    "Codec",
    "ColumnType",
    "Delete",
    "Increment",
    "Insert",
    "Op",
    "Progress",
    "Projection",
    "ProjectionError",
    "ProjectionStatus",
    "Recorded",
    "Runner",
    "Table",
    "Update",
    "Upsert",
    "wait_for_position",
]

log = logging.getLogger("projections")

#: Notifications per batch: big enough to amortise a transaction, small enough that the
#: SQLite write lock is held for well under a second.
DEFAULT_BATCH_SIZE = 10_000
#: A projection whose mapping failed is retried after this many seconds by ``run_forever``.
RETRY_FAILED_AFTER = 30.0
#: A projection further behind than this loads into bare tables and gets its secondary
#: indexes once it has caught up: building an index once is far cheaper than keeping it
#: up to date through a million inserts.
DEFER_INDEXES_LAG = 50_000
#: A catch-up further behind than this shares its projections with a second runner process,
#: on a second core (see ``projections.worker``); a smaller one is not worth its start (about 0.5 s).
PROCESS_LAG = 50_000
#: Batches a runner prepares ahead while another writer holds SQLite's write lock. One
#: covers another runner's commit; a second runner building an index holds the lock for
#: a second or more, as long as ten batches take to prepare (and about 5 MB each to hold).
AHEAD_BATCHES = 10

Progress = Callable[[int, int], None]
"""Called as ``progress(position, head)`` after every committed batch."""


@dataclass(frozen=True)
class BatchReport:
    """What one committed batch did, for logs and progress displays."""

    applied: tuple[str, ...]
    lost: tuple[str, ...]
    start: int
    end: int
    head: int
    notifications: int
    seconds: float
    #: how many projections the batch was mapped for (applied + lost + failed)
    planned: int = 0


@dataclass(frozen=True)
class BatchPlan:
    """A mapped batch waiting to be committed: per projection, the position it assumed and its statements."""

    planned: list[tuple[Projection, tuple[int, int], Plan]]
    start: int
    end: int
    head: int
    notifications: int
    started: float


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    stored_version: int | None
    position: int
    head: int
    updated_at: str | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


class Runner:
    """Keeps a set of projections up to date with one store's notification log."""

    def __init__(
        self,
        log: EventLog,
        db: Database,
        projections: Sequence[Projection],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        closing: Sequence[Any] = (),
        process_lag: int | None = PROCESS_LAG,
    ) -> None:
        if batch_size < 1:
            raise ProjectionError("batch_size must be at least 1")
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ProjectionError(f"two projections share a name: {sorted(names)}")
        tables: dict[str, Table] = {}
        for projection in projections:
            projection.check()
            for table in projection.tables:
                if table.name in tables:
                    raise ProjectionError(f"table {table.name} is declared by two projections")
                tables[table.name] = table
        self.log = log
        self.db = db
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.writer = OpWriter(db, tables)
        self.failed: dict[str, tuple[float, str]] = {}
        self._closing = list(closing)
        self._ensured: set[str] = set()
        self._unindexed: set[str] = set()
        self.mapper = BatchMapper(projections, log.codec)
        #: catch-ups further behind than this share the work with a second runner process; None: never
        self.process_lag = process_lag
        #: the store's configuration, which a second runner process opens (only ``open`` knows it)
        self.config: Config | None = None
        self._last_positions: dict[str, int] = {}

    @classmethod
    def open(
        cls,
        config: Config | None = None,
        projections: Sequence[Projection] | None = None,
        *,
        app: Application[Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        process_lag: int | None = PROCESS_LAG,
    ) -> Runner:
        """A runner on the configured store, for the registered projections unless others are given."""
        from marketplace.config import Config
        from marketplace.store import open_store
        from projections.registry import all_projections

        config = config or Config.from_env()
        closing: list[Any] = []
        if app is None:
            app = open_store(config)
            closing.append(app)
        event_log = EventLog.open(app, config)
        db = connect(config)
        closing[:0] = [event_log, db]
        chosen = list(all_projections() if projections is None else projections)
        runner = cls(event_log, db, chosen, batch_size=batch_size, closing=closing, process_lag=process_lag)
        runner.config = config
        return runner

    def close(self) -> None:
        for resource in self._closing:
            resource.close()
        self._closing.clear()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- selection ---------------------------------------------------------------------
    def select(self, names: str | Sequence[str] | None = None) -> list[Projection]:
        if names is None:
            return list(self.projections.values())
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in self.projections]
        if unknown:
            raise ProjectionError(f"no projection named {', '.join(unknown)}; known: {', '.join(self.projections)}")
        return [self.projections[n] for n in wanted]

    # -- schema --------------------------------------------------------------------------
    def ensure(self, names: str | Sequence[str] | None = None) -> list[str]:
        """Create missing tables; reset projections whose version was bumped or tables vanished.

        Returns the names reset to position 0. A database that holds a *newer* version
        than this code is left alone (an older runner must not undo an upgrade).
        """
        chosen = self.select(names)
        self.db.ensure_tracking()
        head = self.log.max_id()
        reset: list[str] = []
        with self.db.transaction() as cur:
            self.db.lock_schema(cur)
            current = self.db.positions(cur, lock=[p.name for p in chosen])
            for projection in chosen:
                stored = current.get(projection.name)
                if stored is not None and stored[0] > projection.version:
                    self.failed[projection.name] = (
                        time.monotonic(),
                        f"the database holds version {stored[0]} of {projection.name}; "
                        f"this code has version {projection.version}",
                    )
                    continue
                missing = any(not self.db.table_exists(t.name) for t in projection.tables)
                if stored is None or stored[0] < projection.version or missing:
                    self._reset(cur, projection, head)
                    reset.append(projection.name)
                elif head - stored[1] > DEFER_INDEXES_LAG:
                    self._unindexed.add(projection.name)
                else:
                    self.db.create_indexes(cur, projection.tables)
        if reset:
            log.info("projections reset to build from zero: %s", ", ".join(reset))
        self._ensured.update(p.name for p in chosen)
        return reset

    def rebuild(
        self,
        names: str | Sequence[str] | None = None,
        progress: Progress | None = None,
        *,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> int:
        """Drop and rebuild read models from the first notification; returns notifications read."""
        chosen = self.select(names)
        self.db.ensure_tracking()
        head = self.log.max_id()
        with self.db.transaction() as cur:
            self.db.lock_schema(cur)
            self.db.positions(cur, lock=[p.name for p in chosen])
            for projection in chosen:
                self._reset(cur, projection, head)
        for projection in chosen:
            self.failed.pop(projection.name, None)
        self._ensured.update(p.name for p in chosen)
        return self.catch_up([p.name for p in chosen], progress=progress, on_batch=on_batch)

    def _reset(self, cur: Any, projection: Projection, head: int) -> None:
        defer = head > DEFER_INDEXES_LAG
        self.db.reset_tables(cur, projection.tables, drop=True, indexes=not defer)
        self.db.set_position(cur, projection.name, projection.version, 0)
        self._last_positions[projection.name] = 0
        if defer:
            self._unindexed.add(projection.name)

    def _finish_indexes(self, chosen: Sequence[Projection]) -> None:
        """Build the deferred secondary indexes of projections that have caught up."""
        pending = [p for p in chosen if p.name in self._unindexed]
        if not pending:
            return
        head = self.log.max_id()
        positions = self.db.positions()
        ready = [p for p in pending if head - positions.get(p.name, (0, 0))[1] <= DEFER_INDEXES_LAG]
        if not ready:
            return
        # One index a transaction: on SQLite each holds the write lock while it sorts the
        # table, and a second runner still catching up commits in between.
        for statement in self.db.index_statements([t for p in ready for t in p.tables]):
            with self.db.transaction() as cur:
                cur.execute(statement)
        for projection in ready:
            self._unindexed.discard(projection.name)

    # -- following the log -----------------------------------------------------------------
    def catch_up(
        self,
        names: str | Sequence[str] | None = None,
        *,
        limit: int | None = None,
        upto: int | None = None,
        progress: Progress | None = None,
        raise_errors: bool = True,
        stop: threading.Event | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> int:
        """Apply the log up to its head (or ``upto``), reading at most ``limit`` notifications.

        Returns how many notifications were read. With ``raise_errors`` false a projection
        whose mapping or writing fails is set aside (see ``failed``) and the others go on.
        A long catch-up (more than ``process_lag`` behind, no ``limit``) shares the
        projections with a second runner process (``projections.worker``): ``on_batch`` then
        sees this process's batches, ``progress`` the position of the slower of the two.
        """
        chosen = self.select(names)
        unensured = [p.name for p in chosen if p.name not in self._ensured]
        if unensured:
            self.ensure(unensured)
        head, start = self._backlog(chosen, upto)
        long = head - start > DEFER_INDEXES_LAG
        helper = self._helper(chosen, head, raise_errors) if limit is None else None
        mine = chosen if helper is None else [p for p in chosen if p not in helper.projections]
        track = progress
        if helper is not None and progress is not None:
            def track(position: int, head: int) -> None:  # the slower of the two runners
                progress(min(position, helper.position), head)
        try:
            with self.db.bulk(long):
                read = self._catch_up_here(mine, limit, upto, track, raise_errors, stop, on_batch)
                # Before the checkpoint that ends ``bulk``, which then copies the new indexes too;
                # and while the helper may still be at work.
                self._finish_indexes(mine)
        except BaseException:
            if helper is not None:
                helper.stop()
                helper.wait()
            raise
        if helper is not None:
            outcome = self._join(helper, progress, stop)
            if outcome.unavailable is None:
                read = max(read, outcome.read)
            else:  # it could not start: its share is done here, after this process's own
                log.info("no helper runner (%s): catching up %s here", outcome.unavailable,
                         ", ".join(p.name for p in helper.projections))
                read = max(read, self._catch_up_here(helper.projections, limit, upto, progress, raise_errors, stop,
                                                     on_batch))
        self._finish_indexes(chosen)
        return read

    def _catch_up_here(
        self,
        chosen: Sequence[Projection],
        limit: int | None,
        upto: int | None,
        progress: Progress | None,
        raise_errors: bool,
        stop: threading.Event | None,
        on_batch: Callable[[BatchReport], None] | None,
    ) -> int:
        """``catch_up`` in this process: read, map, plan and commit batch after batch."""
        read = planned = 0

        def next_size(pending: int = 0) -> int:
            """The size of the next batch, after ``pending`` notifications already prepared ahead."""
            return self.batch_size if limit is None else min(self.batch_size, limit - planned - pending)

        # Batches prepared while the one before them waited for SQLite's write lock (another
        # runner was committing or building an index), in log order, None last if that
        # reached the head: used if that commit applied everything it planned.
        ahead: deque[BatchPlan | None] = deque()

        def prepare_ahead(plan: BatchPlan) -> Callable[[], bool]:
            """What a commit of ``plan`` does while it waits for the lock: one more batch ahead, if allowed."""

            def work() -> bool:
                if len(ahead) >= AHEAD_BATCHES or (ahead and ahead[-1] is None):
                    return False
                size = next_size(sum(batch.notifications for batch in ahead if batch is not None))
                return size > 0 and self._prepare_ahead(ahead, plan, chosen, size, upto, raise_errors)

            return work

        # Batches allocate millions of objects that die by reference counting and form no
        # cycles; with the cycle collector on, full collections keep walking every live
        # row and operation of the batch in hand. Cycles made meanwhile wait until the end.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            while stop is None or not stop.is_set():
                size = next_size()
                if size <= 0:
                    break
                plan = ahead.popleft() if ahead else self.prepare(chosen, size, upto, raise_errors)
                if plan is None:
                    break
                planned += plan.notifications
                report = self.commit(plan, raise_errors, waiting=prepare_ahead(plan))
                read += report.notifications
                if progress is not None:
                    progress(report.end, report.head)
                if on_batch is not None:
                    on_batch(report)
                if report.lost or len(report.applied) != report.planned:
                    planned = read  # another runner moved a position: count again from what was read
                    ahead.clear()
        finally:
            if gc_was_enabled:
                gc.enable()
        return read

    def _helper(self, chosen: Sequence[Projection], head: int, raise_errors: bool) -> HelperRunner | None:
        """A second runner process for part of ``chosen``, when the catch-up to ``head`` is long enough to pay."""
        if self.process_lag is None or self.config is None or len(chosen) < 2:
            return None
        eligible = self._eligible(chosen, raise_errors)
        _, start = self._backlog(eligible, head)
        if head - start <= self.process_lag:
            return None
        sample = [row[3] for row in self.log.read(start, head, SAMPLE)]
        weight = weights(sample, eligible)
        busy = [p for p in eligible if weight[p.name] > 0]
        if len(busy) < 2:
            return None
        _, theirs = partition(busy, lambda p: weight[p.name])  # the heavier share
        try:
            helper = HelperRunner(self.config, theirs, batch_size=self.batch_size, upto=head,
                                  raise_errors=raise_errors)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:  # defined where no process imports it
            log.info("catching up in one process: no helper runner (%r)", exc)
            return None
        log.info("%d notifications behind: a second runner process catches up %s", head - start,
                 ", ".join(p.name for p in theirs))
        return helper

    def _backlog(self, chosen: Sequence[Projection], upto: int | None) -> tuple[int, int]:
        """``(head, start)``: where the log ends (or ``upto``) and the lowest position among ``chosen``."""
        head = self.log.max_id() if upto is None else min(upto, self.log.max_id())
        positions = self.db.positions()
        start = min((positions.get(p.name, (0, 0))[1] for p in chosen), default=head)
        return head, min(start, head)

    def _join(self, helper: HelperRunner, progress: Progress | None, stop: threading.Event | None) -> Outcome:
        """Wait for the helper runner; take over its failures; raise its error."""
        if stop is not None and stop.is_set():
            helper.stop()
        head = self.log.max_id()
        failed: list[Exception] = []

        def meanwhile() -> None:
            """This runner's core would stand idle: it takes on the last steps of the helper's catch-up.

            It copies the log the helper writes into the database file, which leaves little for
            the checkpoint that ends the helper's ``bulk``; and once the helper is close enough to
            the head, it builds the helper's deferred indexes, which the helper's last batches then
            keep up to date. Both would otherwise be the last things a rebuild waits for. Neither
            is needed here: after a failure this runner leaves them to the helper and to its own
            ``_finish_indexes`` after the join, which raises if the failure persists.
            """
            if failed:
                return
            try:
                self.db.checkpoint()
                self._finish_indexes(helper.projections)
            except Exception as exc:
                failed.append(exc)
                log.warning("left to the helper runner, after failing while waiting for it: %r", exc)

        outcome = helper.wait(None if progress is None else lambda at: progress(at, head), idle=meanwhile)
        now = time.monotonic()
        for name, why in outcome.failed.items():
            self.failed[name] = (now, why)
        if outcome.error is not None:
            if outcome.refused:
                raise ProjectionError(outcome.error)
            raise RuntimeError(f"the helper runner process failed: {outcome.error}")
        return outcome

    def _eligible(self, chosen: Sequence[Projection], raise_errors: bool) -> list[Projection]:
        eligible = []
        for projection in chosen:
            failure = self.failed.get(projection.name)
            if failure is None:
                eligible.append(projection)
            elif raise_errors:
                raise ProjectionError(failure[1])
            elif time.monotonic() - failure[0] >= RETRY_FAILED_AFTER:
                del self.failed[projection.name]
                eligible.append(projection)
        return eligible

    def _prepare_ahead(
        self, ahead: deque[BatchPlan | None], plan: BatchPlan, chosen: Sequence[Projection], size: int,
        upto: int | None, raise_errors: bool,
    ) -> bool:
        """Append to ``ahead`` the batch after ``plan`` and those already in it, prepared as if they were
        committed: the work of a wait for the write lock. Returns whether it did.

        A failure is not raised here but again by the ``prepare`` after the commits before
        it, in its turn: they commit first, as they would have without the wait.
        """
        positions = self.db.positions()
        for batch in (plan, *ahead):
            assert batch is not None  # nothing is prepared after the head
            for projection, stored, _ in batch.planned:
                if positions.get(projection.name) != stored:
                    return False  # another runner got there first: ``batch`` will be lost for it
                positions[projection.name] = (stored[0], batch.end)
        try:
            ahead.append(self.prepare(chosen, size, upto, raise_errors, positions=positions))
        except Exception:
            return False
        return True

    def prepare(
        self,
        chosen: Sequence[Projection],
        size: int,
        upto: int | None = None,
        raise_errors: bool = True,
        positions: Mapping[str, tuple[int, int]] | None = None,
    ) -> BatchPlan | None:
        """Read the next slice of the log, map and plan it, writing nothing; None when all are caught up.

        ``positions`` (each projection's version and position) stands in for the tracking
        table's when given.
        """
        started = time.perf_counter()
        eligible = self._eligible(chosen, raise_errors)
        if positions is None:
            positions = self.db.positions()
        head = self.log.max_id()
        if upto is not None:
            head = min(head, upto)
        active: list[tuple[Projection, tuple[int, int]]] = []
        for projection in eligible:
            stored = positions.get(projection.name)
            if stored is None or stored[0] != projection.version:
                message = (
                    f"projection {projection.name} is at version {stored[0] if stored else 'none'} in the "
                    f"database, this runner has version {projection.version}"
                )
                if raise_errors:
                    raise ProjectionError(message)
                self.failed[projection.name] = (time.monotonic(), message)
                continue
            if stored[1] < self._last_positions.get(projection.name, 0):
                self._unindexed.add(projection.name)  # reset by another process: indexes went too
            self._last_positions[projection.name] = stored[1]
            if stored[1] < head:
                active.append((projection, stored))
        if not active:
            return None
        start = min(stored[1] for _, stored in active)
        topics = self._topic_filter([p for p, _ in active])
        rows = self.log.read(start, head, size, topics)
        end = rows[-1][0] if len(rows) == size else head
        mapped, failures = self.mapper.map(active, rows, end, raise_errors)
        for name, message in failures:
            self.failed[name] = (time.monotonic(), message)
        planned: list[tuple[Projection, tuple[int, int], Plan]] = []
        for projection, stored, ops in mapped:
            try:
                statements = self.writer.plan(ops)
            except Exception as exc:  # operations no statement can carry out
                message = f"projection {projection.name} failed writing notifications {stored[1] + 1}..{end}: {exc!r}"
                if raise_errors:
                    raise ProjectionError(message) from exc
                log.error(message)
                self.failed[projection.name] = (time.monotonic(), message)
                continue
            planned.append((projection, stored, statements))
        return BatchPlan(planned, start, end, head, len(rows), started)

    def commit(
        self, plan: BatchPlan, raise_errors: bool = True, waiting: Callable[[], bool] | None = None,
    ) -> BatchReport:
        """Write a prepared batch, but only for projections still at the position it was mapped from.

        One transaction: lock the projections' tracking rows, check each still holds the
        position the batch was mapped from (another runner may have moved it: then that
        projection's part is lost, never applied twice), write its rows, move its
        position. A part that fails to write is rolled back to its savepoint: with
        ``raise_errors`` the whole transaction is abandoned with a ``ProjectionError``,
        otherwise the projection is set aside and the others commit.
        """
        applied: list[str] = []
        lost: list[str] = []
        end = plan.end
        with self.db.transaction(waiting) as cur:
            current = self.db.positions(cur, lock=[p.name for p, _, _ in plan.planned])
            for projection, stored, statements in plan.planned:
                if current.get(projection.name) != stored:
                    lost.append(projection.name)  # another runner got there first
                    continue
                cur.execute(f"SAVEPOINT sp_{projection.name}")
                try:
                    self.writer.run(cur, statements)
                except Exception as exc:
                    cur.execute(f"ROLLBACK TO SAVEPOINT sp_{projection.name}")
                    message = (
                        f"projection {projection.name} failed writing notifications "
                        f"{stored[1] + 1}..{end}: {exc!r}"
                    )
                    if raise_errors:
                        raise ProjectionError(message) from exc
                    log.error(message)
                    self.failed[projection.name] = (time.monotonic(), message)
                    continue
                cur.execute(f"RELEASE SAVEPOINT sp_{projection.name}")
                self.db.set_position(cur, projection.name, projection.version, end)
                applied.append(projection.name)
        return BatchReport(
            tuple(applied), tuple(lost), plan.start, end, plan.head, plan.notifications,
            time.perf_counter() - plan.started, len(plan.planned),
        )

    @staticmethod
    def _topic_filter(active: Sequence[Projection]) -> list[str] | None:
        """Push topic filtering into the query when every active projection lists its topics.

        A projection that overrides ``handles`` may want topics beyond its set, so it
        disables the push-down.
        """
        union: set[str] = set()
        for projection in active:
            if projection.topics is None or type(projection).handles is not Projection.handles:
                return None
            union |= projection.topics
        return sorted(union)

    # -- reading -------------------------------------------------------------------------
    def frame(self, table: str) -> pl.DataFrame:
        """One of this runner's tables as a Polars frame, typed by its declaration."""
        return read_frame(self.db, self.writer.table(table))

    # -- reporting -------------------------------------------------------------------------
    def status(self, names: str | Sequence[str] | None = None) -> list[ProjectionStatus]:
        chosen = self.select(names)
        head = self.log.max_id()
        rows: list[tuple[Any, ...]] = []
        if self.db.table_exists(TRACKING_TABLE):
            _, rows = self.db.query(f"SELECT name, version, position, updated_at FROM {TRACKING_TABLE}")
        stored = {r[0]: r for r in rows}
        result = []
        for projection in chosen:
            row = stored.get(projection.name)
            result.append(ProjectionStatus(
                name=projection.name,
                version=projection.version,
                stored_version=int(row[1]) if row else None,
                position=int(row[2]) if row else 0,
                head=head,
                updated_at=str(row[3]) if row else None,
            ))
        return result

    def lag(self, names: str | Sequence[str] | None = None) -> dict[str, int]:
        """Notifications each projection is behind the head of the log."""
        return {s.name: s.lag for s in self.status(names)}

    def wait_for(
        self,
        notification_id: int,
        timeout: float = 5.0,
        *,
        names: str | Sequence[str] | None = None,
        poll: float = 0.05,
        drive: bool = False,
    ) -> bool:
        """Wait until the projections have applied ``notification_id``; False on timeout.

        A page that just sent a command waits for the id the command returned. With
        ``drive`` the caller catches up itself instead of only waiting for a runner
        process (safe alongside one: the loser of each batch discards its work).
        """
        chosen = [p.name for p in self.select(names)]
        if drive:
            deadline = time.monotonic() + timeout
            while True:
                self.catch_up(chosen, upto=notification_id)
                if wait_for_position(self.db, notification_id, chosen, timeout=0):
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(poll)
        return wait_for_position(self.db, notification_id, chosen, timeout=timeout, poll=poll)

    def run_forever(
        self,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        *,
        on_batch: Callable[[BatchReport], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        """Catch up, then keep following the log until ``stop`` is set.

        Transient database errors (a lock held too long, a dropped connection) are logged
        and retried after ``poll_interval``; a failing projection is set aside and retried
        later while the others keep running.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                read = self.catch_up(raise_errors=False, stop=stop, on_batch=on_batch)
            except ProjectionError:
                raise
            except Exception as exc:  # the database, not the projection: retry
                log.warning("projection runner: %r; retrying in %.1fs", exc, poll_interval)
                stop.wait(poll_interval)
                self._reconnect()
                continue
            if read == 0:
                if on_idle is not None:
                    on_idle()
                stop.wait(poll_interval)

    def _reconnect(self) -> None:
        """After a database error: replace connections the server dropped (a restart, a failover)."""
        for db in (self.db, getattr(self.log, "db", None)):
            if isinstance(db, Database):
                try:
                    db.reconnect_if_broken()
                except Exception as exc:  # still down: the next round tries again
                    log.warning("projection runner: cannot reconnect yet: %r", exc)


def wait_for_position(
    source: Config | Database,
    notification_id: int,
    names: Sequence[str],
    *,
    timeout: float = 5.0,
    poll: float = 0.05,
) -> bool:
    """Poll the tracking table until every named projection has reached ``notification_id``.

    Needs only the read-model database, not the event store or the projections' code,
    so a UI or API process can wait for a runner that lives elsewhere.
    """
    with _opened(source) as db:
        deadline = time.monotonic() + timeout
        while True:
            try:
                positions = db.positions()
            except Exception:  # the tracking table does not exist before the first run
                positions = {}
            if all(positions.get(name, (0, -1))[1] >= notification_id for name in names):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)


@contextmanager
def _opened(source: Config | Database) -> Iterator[Database]:
    if isinstance(source, Database):
        yield source
        return
    db = connect(source)
    try:
        yield db
    finally:
        db.close()
