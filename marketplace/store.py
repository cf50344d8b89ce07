"""The event store: one place that builds the eventsourcing Application from config.

The whole marketplace is one Application, so there is one notification log for the
projections to follow and aggregates that must change together (a unit and its
subscriptions, a product and its sources' consents) go in one atomic ``save``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import pkgutil
from datetime import date
from enum import Enum
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)

import domain
from domain.errors import InvalidInput
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


#: The integers every JSON reader of the log reads exactly (orjson, which the projections use, keeps
#: 64 bits: a signed 64-bit integer or an unsigned one).
INTEGER_RANGE = (-(2**63), 2**64 - 1)
#: Every byte to "0" if it is a digit, else to " ": a run of 19 digits is then a plain substring,
#: found at memory speed (a regular expression tries each position, which for a large snapshot
#: costs milliseconds on every save).
_DIGITS_AS_ZEROS = bytes(48 if chr(b).isdigit() and b < 128 else 32 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19


def _out_of_range(obj: Any) -> int | None:
    """The first integer in decoded JSON outside ``INTEGER_RANGE``, if any."""
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj if not INTEGER_RANGE[0] <= obj <= INTEGER_RANGE[1] else None
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            found = _out_of_range(item)
            if found is not None:
                return found
    return None


class LogTranscoder(JSONTranscoder):
    """JSON that every reader of the log parses exactly: integers stay within 64 bits.

    The projections read the log with orjson, which turns an integer beyond 64 bits into
    a float; no quantity of the marketplace comes near that, so such an integer is bad
    input, refused before anything is written rather than silently rounded later.
    """

    def encode(self, obj: Any) -> bytes:
        data = super().encode(obj)
        if _NINETEEN_DIGITS in data.translate(_DIGITS_AS_ZEROS):  # only then can an integer be that large
            found = _out_of_range(json.loads(data))
            if found is not None:
                raise InvalidInput("integer", f"{found} is outside the 64-bit range the event log stores exactly")
        return data


class MarketplaceApplication(Application[UUID]):
    """Every fact of the marketplace, in one append-only store."""

    name = "Shuyun"
    is_snapshotting_enabled = True

    def construct_transcoder(self) -> Transcoder:
        return log_transcoder()


def log_transcoder() -> LogTranscoder:
    """How the log encodes events: eventsourcing's own transcodings, then the domain's enums,
    value objects and dates. Also what a process that only decodes the log (a projection
    mapping process) builds, without opening a store.
    """
    transcoder = LogTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DecimalAsStr())
    transcoder.register(DatetimeAsISO())
    transcoder.register(DateAsISO())
    enums, values, _ = domain_value_types()
    for enum_type in enums:
        transcoder.register(EnumAsValue(enum_type))
    for value_type in values:
        transcoder.register(ValueObjectAsDict(value_type))
    return transcoder


def _snapshotting() -> dict[type[Any], int]:
    _, _, aggregates = domain_value_types()
    return {cls: SNAPSHOT_INTERVAL for cls in aggregates if getattr(cls, "grows", False)}


MarketplaceApplication.snapshotting_intervals = cast(Any, _snapshotting())


def open_store(config: Config) -> MarketplaceApplication:
    """Open the configured store: SQLite under the data dir, or PostgreSQL."""
    return MarketplaceApplication(env=config.eventsourcing_env())
