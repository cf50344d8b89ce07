"""The event store: one place that builds the eventsourcing Application from config.

The whole marketplace is one Application, so there is one notification log for the
projections to follow and aggregates that must change together (a unit and its
subscriptions, a product and its sources' consents) go in one atomic ``save``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from datetime import date
from enum import Enum
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import JSONTranscoder, Transcoding

import domain
from marketplace.config import Config

#: Aggregates whose history can grow long enough to load slowly: snapshot every N events.
SNAPSHOT_INTERVAL = 50


class EnumAsValue(Transcoding):
    """Domain enums are stored by value, so renaming a member in code is visible in review."""

    def __init__(self, enum_type: type[Enum]) -> None:
        self.type = enum_type
        self.name = f"enum:{enum_type.__module__}.{enum_type.__qualname__}"

    def encode(self, obj: Enum) -> Any:
        return obj.value

    def decode(self, data: Any) -> Enum:
        member: Enum = self.type(data)
        return member


class ValueObjectAsDict(Transcoding):
    """Frozen dataclass value objects are stored as their fields."""

    def __init__(self, value_type: type[Any]) -> None:
        self.type = value_type
        self.name = f"value:{value_type.__module__}.{value_type.__qualname__}"

    def encode(self, obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@functools.cache
def domain_value_types() -> tuple[list[type[Enum]], list[type[Any]], list[type[Aggregate]]]:
    """Enums, value objects and aggregates defined in the ``domain`` package, found by scanning it."""
    enums: list[type[Enum]] = []
    values: list[type[Any]] = []
    aggregates: list[type[Aggregate]] = []
    for info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{info.name}")
        for obj in vars(module).values():
            if not isinstance(obj, type) or obj.__module__ != module.__name__:
                continue
            if issubclass(obj, Enum):
                enums.append(obj)
            elif issubclass(obj, Aggregate):
                aggregates.append(obj)
            elif dataclasses.is_dataclass(obj):
                values.append(obj)
    return enums, values, aggregates


class MarketplaceApplication(Application[UUID]):
    """Every fact of the marketplace, in one append-only store."""

    name = "Shuyun"
    is_snapshotting_enabled = True

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        enums, values, _ = domain_value_types()
        for enum_type in enums:
            transcoder.register(EnumAsValue(enum_type))
        for value_type in values:
            transcoder.register(ValueObjectAsDict(value_type))


def _snapshotting() -> dict[type[Any], int]:
    _, _, aggregates = domain_value_types()
    return {cls: SNAPSHOT_INTERVAL for cls in aggregates if getattr(cls, "grows", False)}


MarketplaceApplication.snapshotting_intervals = cast(Any, _snapshotting())


def open_store(config: Config) -> MarketplaceApplication:
    """Open the configured store: SQLite under the data dir, or PostgreSQL."""
    return MarketplaceApplication(env=config.eventsourcing_env())
