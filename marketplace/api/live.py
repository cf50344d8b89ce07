"""Live checks without a store round trip per aggregate: a cache kept exact by the notification log.

Every API request checks the client, the unit, the subscription and the product as they
are NOW (a suspension or revocation must bite on the next request, not at token expiry).
Loading four aggregates per request costs eight SELECTs on PostgreSQL; instead, this
cache keeps the aggregates it loaded and, before serving a request, follows the
notification log past everything committed before the request arrived, evicting any
cached aggregate that has a newer event. PostgreSQL commits notification ids in order
(the recorder locks the table on insert), so "every id up to MAX(notification_id)" is a
complete picture of what was committed when MAX was read.

Requests that arrive while a catch-up is in flight wait for the NEXT catch-up (one that
started after they arrived) and share it, so under load one catch-up (two small
queries, filtered to the topics of the cached aggregates so the usage stream is skipped
by the database) serves many requests, and an idle API does one per request.

A catch-up is a *round*. Threads wait for a round with ``fresh()``; coroutines with
``await afresh(...)``, which holds no thread while it waits and is woken, with every
other coroutine of the round on the same event loop, by one call into that loop: under
load that is far cheaper than waking a crowd of worker threads that then queue for the
GIL. A coroutine that awaited ``afresh(since=t)`` hands ``t`` to ``loader(since=t)``,
which then needs no round of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.utils import get_topic

from marketplace.services.base import Service
from marketplace.services.credentials import Loader

A = TypeVar("A", bound=Aggregate)


def event_topics(classes: Iterable[type[Aggregate]]) -> list[str]:
    """The topics of every event class of ``classes`` (what the notification log records)."""
    topics: set[str] = set()
    for cls in classes:
        for name in dir(cls):
            value = getattr(cls, name, None)
            if isinstance(value, type) and issubclass(value, DomainEvent):
                topics.add(get_topic(value))
    return sorted(topics)


class _Round:
    """One catch-up: when it started, and who waits for it to end."""

    __slots__ = ("done", "error", "started", "waiters")

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


def _wake(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """On an event loop: release the coroutines that waited for a round."""
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class LiveCache:
    """Aggregates of the given classes, never older than the log at a request's arrival."""

    def __init__(self, service: Service, classes: Iterable[type[Aggregate]], *, max_items: int = 100_000) -> None:
        self.service = service
        self.classes = tuple(classes)
        self.topics = event_topics(self.classes)
        self.max_items = max_items
        recorder = service.app.recorder
        self.position: int = recorder.max_notification_id() or 0
        self._items: dict[UUID, Aggregate] = {}
        self._cond = threading.Condition()
        self._round: _Round | None = None  # the catch-up in flight
        self._fresh_as_of = time.monotonic()  # start of the last completed catch-up
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="live-catch-up")
        self._own: set[int] = set()  # notification ids written by this process's usage meter
        self.catch_ups = 0
        self.selects = 0

    def loader(self, *, since: float | None = None) -> Loader:
        """Catch up once (for this request), then load from the cache: ``loader()(cls, id)``.

        ``since``: the request's arrival (``time.monotonic()``) if it already awaited
        ``afresh(since=...)``; a round that started after it is then complete, and none is needed.
        """
        self.fresh(since)
        return self.get

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        """Like ``Service.get`` (``NotFound`` included), from the cache; call after ``fresh()`` (or use
        ``loader()``) so that what it returns is no older than the caller's arrival."""
        key = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
        cached = self._items.get(key)
        if isinstance(cached, cls):
            return cached
        position = self.position
        loaded = self.service.get(cls, key)
        with self._cond:
            # A catch-up that ran during the load may have evicted this id already:
            # caching the (possibly older) copy then would outlive that eviction.
            if self.position == position and isinstance(loaded, self.classes):
                if len(self._items) >= self.max_items:
                    self._items.clear()
                self._items[key] = loaded
        return loaded

    def close(self) -> None:
        self._runner.shutdown(wait=True)

    def fresh(self, since: float | None = None) -> None:
        """Return once a catch-up that started after this call (or after ``since``) has completed."""
        arrived = time.monotonic() if since is None else since
        while True:
            joined = self._join(arrived)
            if joined is None:
                return
            current, run = joined
            if run:
                self._run(current)
                if current.error is not None:
                    raise current.error
            else:
                # A round that started before we arrived may not show what we must see:
                # wait for it to end, then look again (and start or join the next one).
                current.done.wait()

    async def afresh(self, *, since: float | None = None) -> None:
        """Like ``fresh``, for a coroutine: wait without holding a thread.

        A round a coroutine starts runs on the cache's own thread, never in the API's
        worker pool: a worker blocked in ``fresh()`` on that round must not be what it
        queues behind.
        """
        loop = asyncio.get_running_loop()
        arrived = time.monotonic() if since is None else since
        while self._fresh_as_of < arrived:  # (only grows: a stale read just takes the locked path)
            waiter: asyncio.Future[None] = loop.create_future()
            joined = self._join(arrived, (loop, waiter))
            if joined is None:
                return
            current, run = joined
            if run:
                try:
                    self._runner.submit(self._run, current)
                except BaseException as error:  # the cache is closed: end the round here
                    current.error = error
                    self._end(current, ok=False)
            await waiter

    def _join(
        self, arrived: float, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
    ) -> tuple[_Round, bool] | None:
        """None if a catch-up that started after ``arrived`` has completed; else the round in flight
        (or a new one) and whether the caller must run it. ``waiter`` is registered on that round
        under the same lock, so its end cannot be missed."""
        with self._cond:
            if self._fresh_as_of >= arrived:
                return None
            current = self._round
            run = current is None
            if current is None:
                current = self._round = _Round(time.monotonic())
            if waiter is not None:
                current.waiters.append(waiter)
            return current, run

    def _run(self, current: _Round) -> None:
        """Do one catch-up round and release everyone waiting for it (its error, if it fails)."""
        ok = False
        try:
            self._catch_up()
            ok = True
        except BaseException as error:
            current.error = error
        finally:
            self._end(current, ok=ok)

    def _end(self, current: _Round, *, ok: bool) -> None:
        with self._cond:
            if ok:
                self._fresh_as_of = max(self._fresh_as_of, current.started)
            if self._round is current:
                self._round = None
            waiters, current.waiters = current.waiters, []
        current.done.set()
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, future in waiters:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
                loop.call_soon_threadsafe(_wake, futures, current.error)

    def note_own(self, notification_ids: Iterable[int]) -> None:
        """Ids of events this process wrote that concern no cached aggregate (usage records).

        When everything new in the log is ours, a catch-up needs no second query: under
        load the log grows only by the meter's own batches, so liveness then costs one
        ``MAX(notification_id)`` per catch-up.
        """
        with self._cond:
            self._own.update(notification_ids)

    def _catch_up(self) -> None:
        recorder = self.service.app.recorder
        top = recorder.max_notification_id() or 0
        if top <= self.position:
            return
        with self._cond:
            ours = sum(1 for i in self._own if self.position < i <= top)
            if ours == top - self.position:
                self._own = {i for i in self._own if i > top}
                self.position = top
                self.catch_ups += 1
                return
        self.selects += 1
        changed: list[Any] = []
        start = self.position + 1
        while start <= top:
            page = recorder.select_notifications(start, 1000, stop=top, topics=self.topics)
            changed.extend(n.originator_id for n in page)
            if len(page) < 1000:
                break
            start = page[-1].id + 1
        with self._cond:
            for originator_id in changed:
                self._items.pop(originator_id, None)
            self.position = top
            self._own = {i for i in self._own if i > top}
        self.catch_ups += 1
