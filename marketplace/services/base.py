"""The rhythm every use case follows: authorise, load, command, save, retry on conflict."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.errors import AlreadyExists, ConcurrencyConflict, InvalidInput, NotFound
from marketplace.store import MarketplaceApplication

A = TypeVar("A", bound=Aggregate)
Clock = Callable[[], datetime]

MAX_ATTEMPTS = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


class Service:
    """Base of the use-case services; all share one store and one clock."""

    def __init__(self, app: MarketplaceApplication, clock: Clock = utc_now) -> None:
        self.app = app
        self.clock = clock

    def get(self, cls: type[A], aggregate_id: UUID | str) -> A:
        """Load an aggregate of the expected type or raise ``NotFound`` naming it."""
        try:
            key = aggregate_id if isinstance(aggregate_id, UUID) else UUID(str(aggregate_id))
        except ValueError:
            raise NotFound(f"{cls.__name__} id {aggregate_id!r} is not a valid id") from None
        try:
            aggregate: Aggregate = self.app.repository.get(key)
        except AggregateNotFoundError:
            raise NotFound(f"no {cls.__name__} with id {key}", id=key) from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{key} is a {type(aggregate).__name__}, not a {cls.__name__}", id=key)
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self.app.repository

    def run(self, command: Callable[[], Iterable[Aggregate | None]]) -> int:
        """Run ``command`` (which loads and changes aggregates) and save what it returns.

        The command is re-run from a fresh load when another writer saved the same
        aggregate first; after ``MAX_ATTEMPTS`` the caller gets a clear conflict error.
        Returns the notification id of the last stored event so callers can wait for
        projections to catch up. A command that raises leaves the store unchanged.
        """
        for attempt in range(MAX_ATTEMPTS):
            aggregates = [a for a in command() if a is not None]
            try:
                return self.save(aggregates)
            except IntegrityError:
                if attempt == MAX_ATTEMPTS - 1:
                    break
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise ConcurrencyConflict(
            f"gave up after {MAX_ATTEMPTS} attempts: others keep changing the same records",
            ids=",".join(str(a.id) for a in aggregates),
        )

    def create(self, aggregate: A, already_exists: str) -> A:
        """Save a new aggregate; its deterministic id makes a duplicate fail at the store.

        Letting the store's uniqueness decide (rather than reading first) keeps creation
        to one round trip and is race-free when two requests register the same key.
        """
        try:
            self.app.save(aggregate)
        except IntegrityError:
            raise AlreadyExists(already_exists, id=aggregate.id) from None
        return aggregate

    def save(self, aggregates: Sequence[Aggregate]) -> int:
        recordings = self.app.save(*aggregates)
        ids = [r.notification.id for r in recordings]
        return max(ids) if ids else self.last_notification_id()

    def last_notification_id(self) -> int:
        return self.app.recorder.max_notification_id() or 0


def ensure_uuid(field: str, value: Any) -> UUID:
    """Parse an id argument, naming the field when it is malformed."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(field, f"is not a valid id: {value!r}") from None
