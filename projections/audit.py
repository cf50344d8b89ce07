"""The audit trail: every event of the marketplace, who did it, in what role, and what changed.

Generic over all events (art. 8, 18: operation records answer "who did what, when"):
one row per notification with its position, time, aggregate, event name, and the acting
user and role from the ``by`` actor every domain command records (system events that
name no actor leave those empty). What changed is not copied: the event log holds it
already, and a copy of every event's JSON was half of all the bytes a full rebuild wrote
(434 of 836 MB at a million events) and set its pace. ``views.audit`` reads the events of the
rows it returns from the log and shows their attributes, less any secret hash, with a
short human-readable summary. The trail reads each payload as plain data, never
building domain objects, because it maps every event of the log, while a reader looks
at a page of rows.

Beside the rows, the trail counts events per topic and per acting user
(``rm_audit_topics``, ``rm_audit_actors``): the filters of an audit page list what there
is to filter by from those few rows, where a ``SELECT DISTINCT`` over the trail reads
every event of the city's history (0.25–0.47 s at a million events, for every page shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from projections.base import (
    INT,
    TEXT,
    TIMESTAMP,
    Increment,
    Insert,
    Op,
    Projection,
    Recorded,
    Table,
    actor_of,
    canonical_uuid,
    parse_json,
    topic_parts,
    trailing_actor,
    unwrap,
)

EVENTS = Table(
    "rm_audit_events",
    {
        "notification_id": INT,
        "timestamp": TIMESTAMP,
        "topic": TEXT,
        "aggregate_type": TEXT,
        "aggregate_id": TEXT,
        "version": INT,
        "event_name": TEXT,
        "actor_user_id": TEXT,
        "actor_role": TEXT,
    },
    key=("notification_id",),
    # No index on ``aggregate_id``: the log's own primary key finds an aggregate's events
    # (``views.audit``), and building that index cost a million-event rebuild about 0.9 s at its end.
    indexes=(("actor_user_id",),),
)

#: Events per topic: what an audit page offers to filter by (aggregate type, event name), and how many there are.
TOPICS = Table("rm_audit_topics", {"topic": TEXT, "events": INT}, key=("topic",))
#: Events per acting user (system events, which name none, are not counted here).
ACTORS = Table("rm_audit_actors", {"user_id": TEXT, "events": INT}, key=("user_id",))

TABLE_NAME = EVENTS.name
#: Attributes the trail never shows: an API client's secret hash (``ApiClient.Issued``).
NEVER_SHOWN = frozenset({"secret_hash"})
#: Those attributes' keys as they read in an event's JSON (a quick test on the text).
_NEVER_SHOWN_KEYS = tuple(f'"{name}":' for name in sorted(NEVER_SHOWN))
#: Attributes shown in their own columns (or bookkeeping), left out of the summary.
_NOT_SUMMARISED = frozenset({"timestamp", "originator_topic", "originator_id", "originator_version", "by",
                             *NEVER_SHOWN})
SUMMARY_LENGTH = 240
VALUE_LENGTH = 80


def _long(value: Any) -> str:
    """Text of a value that is not a plain or simply wrapped string (numbers, lists, value objects)."""
    value = unwrap(value)
    if type(value) is str:
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def summarise(data: dict[str, Any]) -> str:
    """``name=Acme, kind=company`` for the attributes a reader of the trail needs to see.

    Takes the attributes as plain data or still wrapped (``Recorded.raw``): same text.
    Written for speed (it runs once per event of a rebuild): the common cases, a string
    or a string in one transcoder wrapper (enums, datetimes, ids), skip the general path.
    """
    parts = []
    for key, value in data.items():
        if key in _NOT_SUMMARISED:
            continue
        kind = type(value)
        if kind is str:
            text = value
        elif kind is dict and len(value) == 2 and type(value.get("_data_")) is str and "_type_" in value:
            text = canonical_uuid(value["_data_"]) if value["_type_"] == "uuid_hex" else value["_data_"]
        else:
            text = _long(value)
        if len(text) > VALUE_LENGTH:
            text = text[: VALUE_LENGTH - 1] + "…"
        parts.append(f"{key}={text}")
    summary = ", ".join(parts)
    return summary if len(summary) <= SUMMARY_LENGTH else summary[: SUMMARY_LENGTH - 1] + "…"


def summary_of(attributes: str) -> str:
    """The summary of an event's ``attributes`` (``shown``)."""
    return summarise(parse_json(attributes))


def shown(text: str) -> str:
    """An event's JSON as the trail shows it: as stored, less any attribute in ``NEVER_SHOWN``."""
    for key in _NEVER_SHOWN_KEYS:
        if key in text:
            return orjson.dumps({k: v for k, v in parse_json(text).items() if k not in NEVER_SHOWN}).decode("utf8")
    return text


#: How domain events write their ``timestamp``, first: the quick read's other landmark.
_TIMESTAMP_HEAD = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'
_STAMP = len(_TIMESTAMP_HEAD)
#: Looked for as a byte's value: ``b"\\" in text`` first tries the text as an int, at the price of an exception.
_BACKSLASH = ord("\\")


def _read_quickly(plaintext: bytes) -> tuple[str, str | None, str | None] | None:
    """``(timestamp, user_id, role)`` from a domain event's JSON as the store writes it, or None if unsure.

    Parsing a whole event costs more than the rest of its audit row, and the three
    values sit at its two ends. The timestamp is read where the JSON starts, so it is
    the top-level one; a value holding a backslash (an escape) or any other shape sends
    the event to the full parse. The actor is the top-level one that
    ``base.trailing_actor`` finds at the end, read once per actor.
    """
    if not plaintext.startswith(_TIMESTAMP_HEAD):
        return None
    end = plaintext.find(b'"', _STAMP)
    timestamp = plaintext[_STAMP:end]
    if end < 0 or plaintext[end + 1:end + 2] != b"}" or _BACKSLASH in timestamp:
        return None
    found = trailing_actor(plaintext)
    if found is None:
        return None
    actor = found[1]
    return timestamp.decode(), actor.user_id, actor.role


#: One event more: the same mapping for every count, shared by the operations below (read-only).
_ONE = {"events": 1}
#: The count operation of each topic and of each user seen, made once (bounded like ``base._ACTORS``):
#: every event gets the same objects, which the planner counts at C speed (``OpPlanner._summed``).
_TOPIC_COUNTS: dict[str, Increment] = {}
_ACTOR_COUNTS: dict[str, Increment] = {}
COUNTS_KEPT = 4096


def _counted(counts: dict[str, Increment], table: Table, value: str) -> Increment:
    """The operation adding one event to ``value``'s row of ``table`` (a topic's, a user's), kept in ``counts``."""
    if len(counts) >= COUNTS_KEPT:
        counts.clear()
    op = counts[value] = Increment(table.name, {table.key[0]: value}, _ONE)
    return op


class AuditProjection(Projection):
    name = "audit"
    version = 8
    topics = None
    tables = (EVENTS, TOPICS, ACTORS)
    decodes_last = True

    def apply(self, event: Recorded) -> Iterable[Op]:
        quick = None if event.decoded else _read_quickly(event.plaintext)
        if quick is None:
            raw = event.raw
            timestamp = raw.get("timestamp")
            if type(timestamp) is dict:
                timestamp = timestamp.get("_data_")
            user_id, role = actor_of(raw.get("by"))
        else:
            timestamp, user_id, role = quick
        topic = event.topic
        aggregate_type, event_name = topic_parts(topic)
        row = Insert(TABLE_NAME, (
            event.notification_id,
            timestamp,
            topic,
            aggregate_type,
            event.originator_id,
            event.originator_version,
            event_name,
            user_id,
            role,
        ))
        by_topic = _TOPIC_COUNTS.get(topic) or _counted(_TOPIC_COUNTS, TOPICS, topic)
        if user_id is None:
            return row, by_topic
        return row, by_topic, _ACTOR_COUNTS.get(user_id) or _counted(_ACTOR_COUNTS, ACTORS, user_id)
