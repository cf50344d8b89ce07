"""What a read model is: tables, a pure ``event -> row operations`` mapping, and the event it reads.

A projection never touches a database. It declares its tables (portable column types,
rendered to SQLite or PostgreSQL DDL by ``projections.db``) and maps each recorded event
to row operations *as data* (``Insert``, ``Upsert``, ``Update``, ``Delete``,
``Increment``). The runner executes those operations together with the projection's
tracking position in one transaction, which is what makes a read model exactly-once:
the mapping has no side effects to repeat, so a batch either lands whole with its
position or not at all.

Events are handed over as ``Recorded``: the notification's position and topic are there
at once, and the payload is decoded only when a projection reads it (most projections
skip most topics, and decoding dominates the cost of a rebuild).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

import orjson

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class ProjectionError(Exception):
    """A projection is misdeclared or failed while mapping or writing a batch."""


# -- tables ----------------------------------------------------------------------------


class ColumnType(Enum):
    """Portable column types; ``projections.db`` renders them per dialect."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    #: ISO 8601 text on SQLite, ``timestamptz`` on PostgreSQL; a UTC ``Datetime`` in frames.
    TIMESTAMP = "timestamp"


TEXT = ColumnType.TEXT
INT = ColumnType.INT
FLOAT = ColumnType.FLOAT
BOOL = ColumnType.BOOL
TIMESTAMP = ColumnType.TIMESTAMP


@dataclass(frozen=True)
class Table:
    """A read-model table: ordered columns, a primary key and secondary indexes.

    Declared as data rather than DDL text so the same declaration renders to SQLite
    and PostgreSQL and gives Polars frames the same dtypes on both.
    """

    name: str
    columns: Mapping[str, ColumnType]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", dict(self.columns))
        object.__setattr__(self, "key", tuple(self.key))
        object.__setattr__(self, "indexes", tuple(tuple(i) for i in self.indexes))
        object.__setattr__(self, "column_names", tuple(self.columns))
        if not _IDENTIFIER.match(self.name):
            raise ProjectionError(f"table name {self.name!r} must be lower-case letters, digits and _")
        for column, kind in self.columns.items():
            if not _IDENTIFIER.match(column):
                raise ProjectionError(f"column {self.name}.{column} must be lower-case letters, digits and _")
            if not isinstance(kind, ColumnType):
                raise ProjectionError(f"column {self.name}.{column} has type {kind!r}, not a ColumnType")
        if not self.key:
            raise ProjectionError(f"table {self.name} needs a primary key")
        for column in (*self.key, *(c for index in self.indexes for c in index)):
            if column not in self.columns:
                raise ProjectionError(f"table {self.name} has no column {column!r} for its key or index")


# -- row operations (data, executed by the runner) ------------------------------------


class Insert(NamedTuple):
    """Append a new row: every column, in the table's declared order."""

    table: str
    row: tuple[Any, ...]


class Upsert(NamedTuple):
    """Insert the row or, when its key exists, overwrite the given columns."""

    table: str
    row: Mapping[str, Any]


class Update(NamedTuple):
    """Set columns of the row with this key, if there is one."""

    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]


class Delete(NamedTuple):
    table: str
    key: Mapping[str, Any]


class Increment(NamedTuple):
    """Add to numeric columns of the row with this key, creating it (from zero) if absent."""

    table: str
    key: Mapping[str, Any]
    deltas: Mapping[str, int | float]


Op = Insert | Upsert | Update | Delete | Increment


# -- the event as handed to a projection ------------------------------------------------


@lru_cache(maxsize=1 << 16)
def canonical_uuid(value: Any) -> str:
    """The dashed lower-case form, whether the store gave a UUID, a 32-hex string or text.

    Cached: an aggregate's id comes back with each of its events, and a rebuild asks for
    every event's.
    """
    if isinstance(value, UUID):
        return str(value)
    text = str(value)
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def unwrap(value: Any) -> Any:
    """Plain data from stored attributes: the transcoder's ``{"_type_", "_data_"}`` wrappers taken out.

    Enums become their values, value objects dicts of their fields, datetimes and dates
    ISO text, UUIDs dashed text: the JSON-native form a table row wants, without building
    domain objects only to take them apart again.
    """
    if type(value) is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            data = value["_data_"]
            return canonical_uuid(data) if value["_type_"] == "uuid_hex" else unwrap(data)
        return {k: unwrap(v) for k, v in value.items()}
    if type(value) is list:
        return [unwrap(v) for v in value]
    return value


def parse_json(state: bytes | str) -> Any:
    """Stored JSON to Python values, as ``json.loads`` gives them, at orjson's speed.

    Decoding sets the pace of a rebuild (every event of the log is decoded once), and
    orjson parses stored events about twice as fast as the standard library. It is exact
    here because the store writes no integer beyond 64 bits (``marketplace.store.LogTranscoder``).
    """
    try:
        return orjson.loads(state)
    except orjson.JSONDecodeError:
        return json.loads(state)  # NaN or Infinity, which json.dumps writes and orjson refuses


def plain_state(state: bytes) -> dict[str, Any]:
    """Decode a stored event's JSON state into plain JSON-native values."""
    decoded: dict[str, Any] = unwrap(parse_event(state))
    return decoded


#: How every domain command's event ends: its ``by`` actor, the last attribute the store
#: writes, then the document's closing brace. About half of a typical event's bytes.
ACTOR_MARK = b',"by":{"_type_":"value:domain.identity.Actor","_data_":{'
_BY = len(b'","by":')  # the byte before the mark, then the mark up to the actor
#: The last byte of a JSON value written without whitespace: what must precede the mark.
_VALUE_ENDS = frozenset(b'"}]0123456789el')


class TrailingActor(NamedTuple):
    """An event's ``by`` actor: as stored (transcoder wrappers in) and its user and role as text."""

    value: dict[str, Any]
    user_id: str | None
    role: str | None


#: The actors read so far, by their text as an event ends with it (from the byte before
#: ``ACTOR_MARK`` to the end): who acts repeats, so most events find theirs here. Bounded: emptied when full.
_ACTORS: dict[bytes, TrailingActor] = {}
ACTORS_KEPT = 4096
#: The text and actor found last: one actor's events tend to come in runs (a command's
#: events, a user at work), and for them a comparison replaces the search and the lookup.
_last: tuple[bytes, TrailingActor | None] = (b"", None)


def trailing_actor(plaintext: bytes) -> tuple[int, TrailingActor] | None:
    """Where an event's top-level ``by`` actor starts, and the actor; None if unsure.

    The actor is taken from the last ``ACTOR_MARK`` only if what follows it is exactly
    one JSON value and the closing brace of the whole document, after a member before it:
    then it is the top-level ``by`` (a mark cannot sit inside a string, whose quotes are
    escaped; one nested deeper is followed by more than one brace). That text is the same
    for every event of one actor, so it is parsed once and then looked up (``_ACTORS``).
    """
    global _last
    tail, actor = _last
    if actor is not None and plaintext.endswith(tail):  # ``tail`` holds no mark after its first
        return len(plaintext) - len(tail) + 1, actor
    at = plaintext.rfind(ACTOR_MARK)
    if at <= 0:
        return None
    tail = plaintext[at - 1:]  # with the byte before the mark, checked once with the rest
    actor = _ACTORS.get(tail)
    if actor is None:
        if tail[0] not in _VALUE_ENDS or not tail.endswith(b"}"):
            return None
        try:
            value = orjson.loads(tail[_BY:-1])
        except orjson.JSONDecodeError:
            return None
        actor = TrailingActor(value, *actor_of(value))
        if len(_ACTORS) >= ACTORS_KEPT:
            _ACTORS.clear()
        _ACTORS[tail] = actor
    _last = (tail, actor)
    return at, actor


def parse_event(plaintext: bytes) -> dict[str, Any]:
    """A stored event's JSON as ``parse_json`` gives it, parsing its trailing actor once per actor.

    The actor is half of a typical event's bytes and the same for all of one user's
    events: the rest of the document is parsed and the actor, as parsed the first time,
    put back as its last attribute (shared between events, so read-only, as ``Recorded.raw``
    says).
    """
    found = trailing_actor(plaintext)
    if found is None:
        decoded: dict[str, Any] = parse_json(plaintext)
        return decoded
    at, actor = found
    decoded = parse_json(plaintext[:at] + b"}")
    decoded["by"] = actor.value
    return decoded


def _scalar(value: Any) -> str | None:
    """A string attribute, looking through one transcoder wrapper (an enum, a datetime)."""
    if type(value) is dict:
        value = value.get("_data_")
    return value if type(value) is str else None


def actor_of(by: Any) -> tuple[str | None, str | None]:
    """``(user_id, role)`` of a stored ``by`` attribute, wrapped or plain; ``(None, None)`` if it names none."""
    if type(by) is dict:
        actor = by.get("_data_", by) if "_type_" in by else by
        if type(actor) is dict:
            return _scalar(actor.get("user_id")), _scalar(actor.get("role"))
    return None, None


@lru_cache(maxsize=4096)
def topic_parts(topic: str) -> tuple[str, str]:
    """``"domain.parties:ApplicationUnit.Registered"`` -> ``("ApplicationUnit", "Registered")``."""
    qualname = topic.partition(":")[2] or topic
    aggregate, _, name = qualname.rpartition(".")
    return aggregate, name


class Codec:
    """How a ``Recorded`` turns stored bytes into data: the store's cipher, compressor and mapper.

    Without a cipher or compressor the plain path parses the JSON once with a cheap hook;
    with them it has to go through the mapper's own steps first.
    """

    def __init__(self, mapper: Any | None = None) -> None:
        self.mapper = mapper
        self.cipher = getattr(mapper, "cipher", None)
        self.compressor = getattr(mapper, "compressor", None)

    def plaintext(self, state: bytes) -> bytes:
        """The stored event's JSON, decrypted and decompressed."""
        if self.cipher is not None:
            state = self.cipher.decrypt(state)
        if self.compressor is not None:
            state = self.compressor.decompress(state)
        return state

    def text(self, state: bytes) -> str:
        """The stored event's JSON as text."""
        return self.plaintext(state).decode("utf8")

    def plain(self, state: bytes) -> dict[str, Any]:
        return plain_state(self.plaintext(state))

    def raw(self, state: bytes) -> dict[str, Any]:
        return parse_event(self.plaintext(state))

    def domain_event(self, recorded: Recorded) -> Any:
        if self.mapper is None:
            raise ProjectionError("this event log has no mapper: typed domain events are unavailable")
        from eventsourcing.persistence import StoredEvent

        raw = recorded.raw_originator_id
        originator_id = raw if isinstance(raw, UUID) else UUID(str(raw))
        stored = StoredEvent(originator_id, recorded.originator_version, recorded.topic, recorded.state)
        return self.mapper.to_domain_event(stored)


class Recorded:
    """One notification of the log, decoded only as far as a projection asks.

    ``data`` holds the event's attributes as stored, in plain JSON-native form (the
    attributes as written, before any upcasting of old class versions: a projection of
    an upcast event reads ``domain_event`` instead).
    """

    __slots__ = ("_codec", "_data", "_event", "_id", "_raw", "notification_id", "originator_version",
                 "raw_originator_id", "state", "topic")

    def __init__(
        self, notification_id: int, raw_originator_id: Any, originator_version: int, topic: str, state: bytes,
        codec: Codec,
    ) -> None:
        self.notification_id = notification_id
        self.raw_originator_id = raw_originator_id
        self.originator_version = originator_version
        self.topic = topic
        self.state = state
        self._codec = codec
        self._data: dict[str, Any] | None = None
        self._raw: dict[str, Any] | None = None
        self._event: Any = None
        self._id: str | None = None

    @property
    def originator_id(self) -> str:
        """The aggregate's id in dashed form (the same on SQLite and PostgreSQL)."""
        if self._id is None:
            self._id = canonical_uuid(self.raw_originator_id)
        return self._id

    @property
    def aggregate_type(self) -> str:
        return topic_parts(self.topic)[0]

    @property
    def event_name(self) -> str:
        return topic_parts(self.topic)[1]

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            # Another projection may have parsed the JSON already: unwrapping that is cheaper.
            self._data = unwrap(self._raw) if self._raw is not None else self._codec.plain(self.state)
        return self._data

    @property
    def text(self) -> str:
        """The event's JSON as stored (decrypted and decompressed), for a projection that keeps it whole."""
        return self._codec.text(self.state)

    @property
    def plaintext(self) -> bytes:
        """The event's JSON as stored (decrypted and decompressed), as bytes: for reading a part of it."""
        return self._codec.plaintext(self.state)

    @property
    def decoded(self) -> bool:
        """Whether ``raw`` has been decoded already (by another projection): then reading it costs nothing."""
        return self._raw is not None

    @property
    def raw(self) -> dict[str, Any]:
        """The stored attributes with the transcoder's ``{"_type_", "_data_"}`` wrappers still in.

        The cheapest decoding there is, for projections that read a few attributes of
        every event: take what you need and pass it through ``unwrap``. Decoded once and
        shared by every projection that reads this event, so treat it as read-only.
        """
        if self._raw is None:
            self._raw = self._codec.raw(self.state)
        return self._raw

    @property
    def domain_event(self) -> Any:
        """The typed domain event, decoded by the store's mapper (slower than ``data``)."""
        if self._event is None:
            self._event = self._codec.domain_event(self)
        return self._event

    @property
    def timestamp(self) -> str | None:
        value = self.data.get("timestamp")
        return value if isinstance(value, str) else None

    @property
    def actor(self) -> dict[str, Any] | None:
        """The ``by`` actor as plain data (``user_id``, ``role``...), if the event names one."""
        by = self.data.get("by")
        return by if isinstance(by, dict) else None

    def __repr__(self) -> str:
        return f"Recorded({self.notification_id}, {self.topic!r}, {self.originator_id}, v{self.originator_version})"


# -- projections -------------------------------------------------------------------------


class Projection:
    """Base of every read model: subclass, set the class attributes, implement ``apply``.

    - ``name``: lower-case identifier; every table is named ``rm_<name>_...``.
    - ``version``: bump it whenever the tables or the mapping change; the runner then
      rebuilds the read model from zero (the log is the truth, the tables are a cache).
    - ``topics``: the event topics handled (``"domain.parties:ApplicationUnit.Registered"``),
      or ``None`` for every event. Others are skipped without decoding.
    - ``tables``: the ``Table`` declarations.
    - ``apply(event)``: pure; returns the row operations for one event. Everything about
      the event's context (its notification id, aggregate, version, time) is on the
      ``Recorded`` it receives.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    topics: ClassVar[frozenset[str] | None] = None
    tables: ClassVar[Sequence[Table]] = ()
    #: True for a projection that reads what it needs without decoding the payload when it can:
    #: it is offered each event after the projections that decode it, to use their decoding.
    decodes_last: ClassVar[bool] = False

    def handles(self, topic: str) -> bool:
        """Whether ``apply`` wants events of ``topic``; override for a predicate richer than a set."""
        return self.topics is None or topic in self.topics

    def apply(self, event: Recorded) -> Iterable[Op]:
        raise NotImplementedError

    def mapping_for(self, topic: str) -> ApplyFunction:
        """What maps events of ``topic`` (one it ``handles``): ``apply``, or a more direct function doing the same.

        The mapper asks once per topic and batch, and calls the answer for every event.
        """
        return self.apply

    @property
    def table_map(self) -> dict[str, Table]:
        return {t.name: t for t in self.tables}

    def check(self) -> None:
        """Refuse a misdeclared projection before it writes anything."""
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ProjectionError(f"{type(self).__name__}.name must be a lower-case identifier, got {name!r}")
        if not isinstance(self.version, int) or self.version < 1:
            raise ProjectionError(f"projection {name}: version must be a positive int")
        if not self.tables:
            raise ProjectionError(f"projection {name} declares no tables")
        prefix = f"rm_{name}_"
        for table in self.tables:
            if not table.name.startswith(prefix):
                raise ProjectionError(f"projection {name}: table {table.name} must be named {prefix}...")
        if len({t.name for t in self.tables}) != len(self.tables):
            raise ProjectionError(f"projection {name} declares a table twice")

    def __repr__(self) -> str:
        return f"<projection {getattr(self, 'name', '?')} v{self.version}>"


ApplyFunction = Callable[[Recorded], Iterable[Op]]


class HandlerProjection(Projection):
    """A projection that maps each topic it handles to one pure handler function.

    Subclasses declare ``handlers`` (topic -> function); ``topics`` follows from it, so
    the set of events skipped without decoding can never drift from what is handled.
    """

    handlers: ClassVar[Mapping[str, ApplyFunction]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "handlers" in cls.__dict__:
            cls.topics = frozenset(cls.handlers)

    def apply(self, event: Recorded) -> Iterable[Op]:
        return self.handlers[event.topic](event)

    def mapping_for(self, topic: str) -> ApplyFunction:
        # The handler itself, saving a call per event, unless a subclass maps otherwise.
        handler = self.handlers.get(topic)
        if handler is None or type(self).apply is not HandlerProjection.apply:
            return self.apply
        return handler


def acting_user(data: Mapping[str, Any]) -> str | None:
    """The user id of the ``by: Actor`` every domain event carries, from a decoded payload."""
    by = data.get("by")
    return by.get("user_id") if isinstance(by, dict) else None
