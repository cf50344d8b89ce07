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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
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
        self._refreshing = False
        self._fresh_as_of = time.monotonic()  # start of the last completed catch-up
        self._own: set[int] = set()  # notification ids written by this process's usage meter
        self.catch_ups = 0
        self.selects = 0

    def loader(self) -> Loader:
        """Catch up once (for this request), then load from the cache: ``loader()(cls, id)``."""
        self.fresh()
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

    def fresh(self) -> None:
        """Return once a catch-up that started after this call has completed."""
        arrived = time.monotonic()
        with self._cond:
            while self._fresh_as_of < arrived:
                if self._refreshing:
                    self._cond.wait()
                    continue
                self._refreshing = True
                started = time.monotonic()
                ok = False
                self._cond.release()
                try:
                    self._catch_up()
                    ok = True
                finally:
                    self._cond.acquire()
                    self._refreshing = False
                    if ok:
                        self._fresh_as_of = max(self._fresh_as_of, started)
                    self._cond.notify_all()

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
