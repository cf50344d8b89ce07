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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import orjson

from projections.base import (
    INT,
    TEXT,
    TIMESTAMP,
    Insert,
    Op,
    Projection,
    Recorded,
    Table,
    canonical_uuid,
    parse_json,
    topic_parts,
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


def _scalar(value: Any) -> str | None:
    """A string attribute, looking through one transcoder wrapper (an enum, a datetime)."""
    if type(value) is dict:
        value = value.get("_data_")
    return value if type(value) is str else None


def _actor(by: Any) -> tuple[str | None, str | None]:
    """``(user_id, role)`` of a stored ``by`` attribute, wrapped or plain; ``(None, None)`` if it names none."""
    if type(by) is dict:
        actor = by.get("_data_", by) if "_type_" in by else by
        if type(actor) is dict:
            return _scalar(actor.get("user_id")), _scalar(actor.get("role"))
    return None, None


#: How domain events write their ``timestamp`` (first) and their ``by`` actor (last): the quick read's landmarks.
_TIMESTAMP_HEAD = '{"timestamp":{"_type_":"datetime_iso","_data_":"'
_ACTOR_HEAD = ',"by":{"_type_":"value:domain.identity.Actor","_data_":{"user_id":"'
_ROLE_HEAD = '","role":{"_type_":"enum:domain.identity.Role","_data_":"'
_ACTOR_TAIL = re.compile(r'"\},"unit_id":(?:null|\{"_type_":"uuid_hex","_data_":"[0-9a-f]{32}"\}),'
                         r'"provider_id":(?:null|\{"_type_":"uuid_hex","_data_":"[0-9a-f]{32}"\})\}\}\}')


#: The actors read so far, by their text as an event ends with it (``,"by":...}}}``): who acts
#: repeats, so most events find theirs here. Bounded: emptied when full.
_ACTORS: dict[str, tuple[str, str]] = {}
ACTORS_KEPT = 4096


def _read_quickly(text: str) -> tuple[str, str, str] | None:
    """``(timestamp, user_id, role)`` from a domain event's JSON as the store writes it, or None if unsure.

    Parsing a whole event costs more than the rest of its audit row, and the three
    values sit at its two ends in a fixed shape. The timestamp is read where the JSON
    starts, so it is the top-level one. The actor is read from the last ``,"by":`` and
    taken only if what follows it is exactly an actor and the closing brace of the whole
    document, so that ``by`` is the top-level one too. A value holding a backslash (an
    escape) or any other shape sends the event to the full parse. That text, from the
    last ``,"by":`` to the end, is the same for every event of one actor: once read, its
    actor is looked up (``_ACTORS``), which about halves the cost of the quick read.
    """
    if not text.startswith(_TIMESTAMP_HEAD):
        return None
    start = len(_TIMESTAMP_HEAD)
    end = text.find('"', start)
    timestamp = text[start:end]
    if end < 0 or text[end + 1] != "}" or "\\" in timestamp:
        return None
    at = text.rfind(_ACTOR_HEAD)
    if at < 0:
        return None
    tail = text[at:]
    actor = _ACTORS.get(tail)
    if actor is None:
        actor = _read_actor(tail)
        if actor is None:
            return None
        if len(_ACTORS) >= ACTORS_KEPT:
            _ACTORS.clear()
        _ACTORS[tail] = actor
    return timestamp, actor[0], actor[1]


def _read_actor(tail: str) -> tuple[str, str] | None:
    """``(user_id, role)`` of an event's end that starts with ``_ACTOR_HEAD``, if it is exactly an actor
    and the end of the document."""
    start = len(_ACTOR_HEAD)
    end = tail.find('"', start)
    user_id = tail[start:end]
    if "\\" in user_id or not tail.startswith(_ROLE_HEAD, end):
        return None
    start = end + len(_ROLE_HEAD)
    end = tail.find('"', start)
    role = tail[start:end]
    if "\\" in role or _ACTOR_TAIL.fullmatch(tail, end) is None:
        return None
    return user_id, role


class AuditProjection(Projection):
    name = "audit"
    version = 7
    topics = None
    tables = (EVENTS,)
    decodes_last = True

    def apply(self, event: Recorded) -> Iterable[Op]:
        quick = None if event.decoded else _read_quickly(event.text)
        if quick is None:
            raw = event.raw
            timestamp = raw.get("timestamp")
            if type(timestamp) is dict:
                timestamp = timestamp.get("_data_")
            user_id, role = _actor(raw.get("by"))
        else:
            timestamp, user_id, role = quick
        aggregate_type, event_name = topic_parts(event.topic)
        return (
            Insert(TABLE_NAME, (
                event.notification_id,
                timestamp,
                event.topic,
                aggregate_type,
                event.originator_id,
                event.originator_version,
                event_name,
                user_id,
                role,
            )),
        )
