"""Group-commit metering: every query is on its ledger before its result leaves (art. 8, 23).

On PostgreSQL each ``save()`` is a table lock and a round trip (a few hundred a second
one at a time), so many concurrent queries must not each wait for a save of their own.
Requests hand their use (or refusal) to one writer thread and block; the writer takes
everything queued, applies it to the ledgers (several subscriptions, several uses per
ledger), stores them in ONE ``app.save(...)``, and only then releases each request with
its outcome. While one batch commits the next one queues, so batches grow with load and
cost nothing when idle. A request whose batch failed to commit gets an error, never its
result: no result is returned whose usage was not stored.

The writer keeps the ledgers it wrote in memory (they are the latest version as long as
only this process writes them); if another process wrote one meanwhile, the save raises
``IntegrityError``, the batch's ledgers are reloaded and the batch is re-decided, so a
quota is never overrun by stale counts. The rules are the domain's (``UsageLedger``),
exactly as ``UsageService.record_use`` applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrencyConflict, DomainError
from domain.identity import Actor
from domain.licensing import Subscription
from domain.usage import USE_REFUSALS, Remaining, UsageKind, UsageLedger, period_of
from marketplace.store import MarketplaceApplication

MAX_ATTEMPTS = 5
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Use:
    """One query to meter: counted if the ledger's rules allow it, else recorded as refused.

    ``refusal`` set means the request was already refused before running (token, scope,
    policy): it is recorded as refused and never counted.
    """

    subscription: Subscription
    actor: Actor
    use_id: str
    query: Mapping[str, Any]
    at: datetime
    kind: UsageKind = UsageKind.QUERY
    product_version: str = "0"
    fields: tuple[str, ...] = ()
    rows_out: int = 0
    budget_spent: float = 0.0
    refusal: DomainError | None = None
    recorded_as: str = ""  # user id to record; default the actor's


@dataclass(frozen=True)
class Metered:
    """The committed outcome of a counted use."""

    use_id: str
    ledger_id: UUID
    period: str
    counted: bool
    remaining: Remaining


#: Told a use's outcome on its event loop: ``Metered``, or the refusal or failure.
Callback = Callable[[Metered | BaseException], None]


@dataclass
class _Pending:
    """A queued use and who waits for it: a thread (``future``), or a ``callback`` to run on ``loop``."""

    use: Use
    future: Future[Metered] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    callback: Callback | None = None


def _settle(items: list[tuple[Callback, Metered | BaseException]]) -> None:
    """On the event loop: tell each waiting request its outcome (one failing callback stops no other)."""
    for callback, outcome in items:
        try:
            callback(outcome)
        except Exception:
            logger.exception("a metering callback failed")


def _resolve(waiter: asyncio.Future[Metered], outcome: Metered | BaseException) -> None:
    if waiter.done():  # the request gave up waiting
        return
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


class UsageMeter:
    """Collects uses from concurrent requests and commits them in batches."""

    def __init__(self, app: MarketplaceApplication, *, max_batch: int = 500, cache_size: int = 10_000) -> None:
        self.app = app
        self.max_batch = max_batch
        self.cache_size = cache_size
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._ledgers: OrderedDict[UUID, UsageLedger] = OrderedDict()
        self._snapshot_at: dict[UUID, int] = {}
        self._ledger_ids: dict[tuple[UUID, str], UUID] = {}
        self.batches = 0
        self.records = 0
        self.save_seconds = 0.0  # time spent storing: what group commit amortises
        #: Told the notification ids of each committed batch (the API's live cache skips its own writes).
        self.on_commit: Callable[[list[int]], None] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="usage-meter", daemon=True)
        self._thread.start()

    # -- the request side ----------------------------------------------------------------
    def record(self, use: Use, *, timeout: float = 30.0) -> Metered:
        """Block until ``use`` is stored; raise its refusal (after storing it) if refused."""
        return self.submit(use).result(timeout=timeout)

    def submit(self, use: Use) -> Future[Metered]:
        if self._closed:
            raise RuntimeError("the usage meter is closed")
        future: Future[Metered] = Future()
        self._queue.put(_Pending(use, future=future))
        return future

    def submit_to(self, use: Use, loop: asyncio.AbstractEventLoop, callback: Callback) -> None:
        """Queue ``use`` from any thread; ``callback(outcome)`` runs on ``loop`` once it is stored.

        The writer tells every request of a committed batch on the same loop with ONE call
        into that loop, rather than waking it once per request.
        """
        if self._closed:
            raise RuntimeError("the usage meter is closed")
        self._queue.put(_Pending(use, loop=loop, callback=callback))

    def submit_async(self, use: Use) -> asyncio.Future[Metered]:
        """Queue ``use`` from a coroutine; await the result (its outcome once stored)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Metered] = loop.create_future()
        self.submit_to(use, loop, functools.partial(_resolve, waiter))
        return waiter

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    # -- the writer --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: Sequence[_Pending]) -> None:
        for attempt in range(MAX_ATTEMPTS):
            ledgers: dict[UUID, UsageLedger] = {}
            outcomes: list[Metered | BaseException] = []
            try:
                for pending in batch:
                    outcomes.append(self._apply(pending.use, ledgers))
                started = time.perf_counter()
                version_before = self._store(ledgers)
                self.save_seconds += time.perf_counter() - started
            except IntegrityError:
                # Another process wrote one of these ledgers: re-decide the batch on fresh state.
                self._evict(ledgers)
                time.sleep(0.001 * 2**attempt)
                continue
            except BaseException as error:  # the store is down or broken: nobody gets a result
                self._evict(ledgers)
                self._release(batch, [error] * len(batch))
                return
            self.batches += 1
            self.records += len(batch)
            for ledger in ledgers.values():
                self._remember(ledger)
            self._release(batch, outcomes)
            self._snapshot(ledgers, version_before)
            return
        conflict = ConcurrencyConflict(f"usage could not be stored after {MAX_ATTEMPTS} attempts; try again")
        self._release(batch, [conflict] * len(batch))

    @staticmethod
    def _release(batch: Sequence[_Pending], outcomes: Sequence[Metered | BaseException]) -> None:
        """Hand each request its outcome: threads directly, coroutines in one call per event loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Callback, Metered | BaseException]]] = {}
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future is not None:
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
            elif pending.loop is not None and pending.callback is not None:
                by_loop.setdefault(pending.loop, []).append((pending.callback, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, items)

    def _store(self, ledgers: Mapping[UUID, UsageLedger]) -> dict[UUID, int]:
        """``Application.save`` for ledgers, without its snapshots (see ``_snapshot``).

        Returns each written ledger's version before the batch.
        """
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        processing.collect_events(*ledgers.values())
        recordings = self.app.events.put(processing.events)
        if self.on_commit is not None:
            self.on_commit([r.notification.id for r in recordings])
        version_before: dict[UUID, int] = {}
        for event in processing.events:
            version_before.setdefault(event.originator_id, event.originator_version - 1)
        return version_before

    def _snapshot(self, ledgers: Mapping[UUID, UsageLedger], version_before: Mapping[UUID, int]) -> None:
        """Snapshots of the ledgers just written, taken from memory, after their requests are released.

        ``save`` would reload each ledger that crossed a snapshot interval from the store
        (up to 50 events decoded) and write its snapshot in a transaction of its own; the
        ledgers in hand ARE the latest state, so their snapshots are taken from them, at
        most one per ledger per batch, in one write (a lost snapshot only makes the next
        load slower; the events are the record). Nobody waits for it: the batch's requests
        already have their answers, and the next batch is not decided before it is written.

        A ledger's snapshot holds every use id of its period (the ledger refuses to count
        one twice), so it grows with the ledger: at 4,000 uses one costs about 8 ms to
        encode, 150 us a use at one snapshot every 50 uses (600 us at 16,000 uses). Taking
        them less often was tried and rejected: every load of the ledger (the usage and
        entitlement readouts, a differentially private query's budget, ``UsageService``)
        then replays hundreds of events at about 0.5 ms each. The cure is a ledger that
        does not keep every use id in its state (a domain change), not fewer snapshots.
        """
        interval = self.app.snapshotting_intervals.get(UsageLedger) if self.app.snapshots else None
        if not interval or self.app.snapshots is None:
            return
        snapshots = []
        for ledger in ledgers.values():
            if ledger.id not in version_before:
                continue
            # Unknown: assume the store's own rhythm (a snapshot at each multiple of the interval).
            last = self._snapshot_at.get(ledger.id, version_before[ledger.id] // interval * interval)
            if ledger.version // interval > last // interval:
                snapshot_class = getattr(type(ledger), "Snapshot", None) or self.app.snapshot_class
                if snapshot_class is not None:
                    snapshots.append(snapshot_class.take(ledger))
                    self._snapshot_at[ledger.id] = ledger.version
        if snapshots:
            try:
                self.app.snapshots.put(snapshots)
            except Exception:  # the events are stored; a snapshot is only an optimisation
                for snapshot in snapshots:
                    self._snapshot_at.pop(snapshot.originator_id, None)

    def _apply(self, use: Use, ledgers: dict[UUID, UsageLedger]) -> Metered | DomainError:
        """Decide one use on its ledger (mutating it); the outcome is released only after the save."""
        period = period_of(use.at)
        ledger_id = self._ledger_id(use.subscription.id, period)
        already_in_batch = ledger_id in ledgers
        try:
            ledger = self._ledger(use, ledgers, ledger_id, period)
        except DomainError as error:
            return error
        user_id = use.recorded_as or use.actor.user_id
        if use.refusal is not None:
            self._refuse(ledger, use, user_id, use.refusal)
            return use.refusal
        try:
            counted = ledger.record_use(
                use_id=use.use_id, user_id=user_id, kind=use.kind, product_version=use.product_version,
                query=use.query, fields=use.fields, rows_out=use.rows_out, budget_spent=use.budget_spent,
                at=use.at, terms=use.subscription.terms, by=use.actor,
            )
        except USE_REFUSALS as error:
            self._refuse(ledger, use, user_id, error)
            return error
        except DomainError as error:  # malformed: not a use at all (as in UsageService), so store nothing
            if not already_in_batch:
                ledgers.pop(ledger_id, None)
            return error
        return Metered(
            use_id=use.use_id, ledger_id=ledger.id, period=ledger.period, counted=counted,
            remaining=ledger.remaining(use.subscription.entitlements),
        )

    @staticmethod
    def _refuse(ledger: UsageLedger, use: Use, user_id: str, error: DomainError) -> None:
        ledger.record_refusal(
            use_id=use.use_id, user_id=user_id, query=use.query, reason=error.code,
            message=error.message, at=use.at, by=use.actor,
        )

    def _ledger_id(self, subscription_id: UUID, period: str) -> UUID:
        """``UsageLedger.create_id`` (a uuid5), remembered: the writer asks for it once per use."""
        key = (subscription_id, period)
        ledger_id = self._ledger_ids.get(key)
        if ledger_id is None:
            if len(self._ledger_ids) >= self.cache_size:
                self._ledger_ids.clear()
            ledger_id = self._ledger_ids[key] = UsageLedger.create_id(subscription_id, period)
        return ledger_id

    def _ledger(self, use: Use, ledgers: dict[UUID, UsageLedger], ledger_id: UUID, period: str) -> UsageLedger:
        subscription = use.subscription
        ledger = ledgers.get(ledger_id) or self._ledgers.get(ledger_id)
        if ledger is None:
            try:
                ledger = self.app.repository.get(ledger_id)
            except AggregateNotFoundError:
                ledger = UsageLedger.open(
                    subscription_id=subscription.id, period=period, unit_id=subscription.unit_id,
                    product_id=subscription.product_id, entitlements=subscription.entitlements, by=use.actor,
                )
        assert isinstance(ledger, UsageLedger)
        if use.refusal is None and ledger.entitlements != subscription.entitlements:
            ledger.adopt_entitlements(entitlements=subscription.entitlements, by=use.actor)
        ledgers[ledger_id] = ledger
        return ledger

    def _remember(self, ledger: UsageLedger) -> None:
        self._ledgers[ledger.id] = ledger
        self._ledgers.move_to_end(ledger.id)
        while len(self._ledgers) > self.cache_size:
            self._ledgers.popitem(last=False)

    def _evict(self, ledgers: Mapping[UUID, UsageLedger]) -> None:
        for ledger_id in ledgers:
            self._ledgers.pop(ledger_id, None)
            self._snapshot_at.pop(ledger_id, None)

    def ledger(self, subscription_id: UUID, at: datetime) -> UsageLedger | None:
        """The period's ledger as stored (never the writer's in-flight copy), or ``None`` before first use."""
        ledger_id = UsageLedger.create_id(subscription_id, period_of(at))
        try:
            found: Any = self.app.repository.get(ledger_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, UsageLedger) else None


# -- errors ------------------------------------------------------------------------------


class MeteringUnavailable(DomainError):
    """The store did not take the usage record: the answer is withheld rather than left unmetered."""

    code = "metering_unavailable"
    status = 503
