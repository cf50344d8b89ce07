"""Pure tests of the projection model: decoding events into plain data, the audit mapping,
table and projection declarations. No store: events are encoded by an in-memory application."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.identity import Actor, Role
from domain.parties import ApplicationUnit, UnitKind
from marketplace.store import INTEGER_RANGE, MarketplaceApplication
from projections import views
from projections.audit import SUMMARY_LENGTH, AuditProjection, shown, summarise, summary_of
from projections.audit import _read_quickly as audit_read_quickly
from projections.base import _ACTORS as known_actors
from projections.base import (
    ACTORS_KEPT,
    INT,
    TEXT,
    Codec,
    HandlerProjection,
    Increment,
    Insert,
    Op,
    Projection,
    ProjectionError,
    Recorded,
    Table,
    canonical_uuid,
    parse_event,
    plain_state,
    topic_parts,
    trailing_actor,
    unwrap,
)
from projections.db import memory
from projections.log import EventLog, RecorderEventLog
from projections.mapping import BatchMapper
from projections.runner import Runner

APP = MarketplaceApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
TRANSCODER = APP.mapper.transcoder


def to_plain(value: Any) -> Any:
    """The plain form the projections promise, computed independently of the decoder."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


actors = st.builds(
    lambda user, role, unit: Actor(user, role, unit_id=unit if role in (Role.UNIT_ADMIN, Role.UNIT_ANALYST) else None),
    st.text(min_size=1, max_size=10),
    st.sampled_from([r for r in Role if r is not Role.PROVIDER_STAFF]),
    st.uuids(),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(*INTEGER_RANGE), st.text(max_size=30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.uuids(), st.sampled_from(list(Role)), st.sampled_from(list(UnitKind)),
    st.datetimes(timezones=st.just(UTC)), st.dates(), st.decimals(allow_nan=False, allow_infinity=False, places=3),
    actors,
)
# eventsourcing's own JSON format reserves these two keys for its type wrappers.
keys = st.text(max_size=10).filter(lambda k: k not in ("_type_", "_data_"))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
attributes = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(attributes)
def test_plain_decoding_gives_json_native_values_of_the_stored_attributes(attrs: dict[str, Any]) -> None:
    stored = TRANSCODER.encode(attrs)
    expected = to_plain(attrs)
    assert plain_state(stored) == expected
    assert unwrap(json.loads(stored)) == expected  # the cheap raw path ends in the same place
    assert Codec(APP.mapper).plain(stored) == expected
    shared = Recorded(1, uuid4(), 1, "domain.x:Y.Happened", stored, Codec(APP.mapper))
    assert shared.raw == json.loads(stored)
    assert shared.data == expected  # derived from the parse another projection already made


@settings(max_examples=200, deadline=None)
@given(attributes)
def test_art18_audit_summary_is_the_same_from_raw_or_plain_and_stays_short(attrs: dict[str, Any]) -> None:
    stored = TRANSCODER.encode(attrs)
    summary = summarise(json.loads(stored))
    assert summary == summarise(plain_state(stored))
    assert len(summary) <= SUMMARY_LENGTH


@given(st.one_of(st.integers(max_value=INTEGER_RANGE[0] - 1), st.integers(min_value=INTEGER_RANGE[1] + 1)))
def test_the_log_refuses_integers_its_readers_would_round(value: int) -> None:
    with pytest.raises(InvalidInput, match="outside the 64-bit range"):
        TRANSCODER.encode({"nested": [{"n": value}]})


@given(st.sampled_from(INTEGER_RANGE), st.text(alphabet="0123456789", min_size=20, max_size=30))
def test_integers_at_the_edges_and_long_digit_strings_read_back_exactly(value: int, digits: str) -> None:
    stored = TRANSCODER.encode({"n": value, "code": digits})
    assert plain_state(stored) == {"n": value, "code": digits} == json.loads(stored)


def test_art18_audit_summary_leaves_out_what_has_its_own_columns() -> None:
    attrs = {"timestamp": datetime(2026, 1, 1, tzinfo=UTC), "originator_topic": "domain.x:Y", "name": "Acme",
             "by": Actor("hidden-user", Role.OPERATOR_ADMIN), "amount": Decimal("1.50"), "tags": ["a", "b"]}
    assert summarise(json.loads(TRANSCODER.encode(attrs))) == 'name=Acme, amount=1.50, tags=["a","b"]'
    long = summarise({"text": "x" * 500, "more": "y" * 500, "most": "z" * 500})
    assert len(long) == SUMMARY_LENGTH and long.endswith("…") and long.startswith("text=" + "x" * 79 + "…")


@given(st.uuids())
def test_ids_read_the_same_from_either_store(value: UUID) -> None:
    assert canonical_uuid(value) == canonical_uuid(value.hex) == canonical_uuid(str(value)) == str(value)


def test_topic_names_the_aggregate_and_the_event() -> None:
    assert topic_parts("domain.parties:ApplicationUnit.Registered") == ("ApplicationUnit", "Registered")
    assert topic_parts("domain.licensing:Subscription.Terms.Changed") == ("Subscription.Terms", "Changed")


def unit_events() -> list[Recorded]:
    actor = Actor("alice", Role.UNIT_ADMIN, unit_id=uuid4())
    unit = ApplicationUnit.register(
        name="Acme", credit_code="91150200MA0000000C", kind=UnitKind.COMPANY, contact_email="a@b.cn",
        admin_user_id="alice", by=actor,
    )
    unit.add_member(user_id="bob", role=Role.UNIT_ANALYST, by=actor)
    stored = [APP.mapper.to_stored_event(e) for e in unit.collect_events()]
    return [
        Recorded(i + 1, s.originator_id.hex, s.originator_version, s.topic, s.state, Codec(APP.mapper))  # type: ignore[union-attr]
        for i, s in enumerate(stored)
    ]


def test_recorded_decodes_lazily_to_plain_data_or_the_typed_domain_event() -> None:
    registered, added = unit_events()
    assert registered.aggregate_type == "ApplicationUnit" and registered.event_name == "Registered"
    assert registered._data is None  # nothing decoded until asked
    assert registered.data["kind"] == "company"
    assert registered.actor is not None
    assert (registered.actor["user_id"], registered.actor["role"], registered.actor["provider_id"]) == (
        "alice", "unit_admin", None)
    assert UUID(registered.actor["unit_id"])  # ids come out in their dashed text form
    event = added.domain_event
    assert event.user_id == "bob" and event.role is Role.UNIT_ANALYST and event.by.user_id == "alice"
    assert str(event.originator_id) == added.originator_id
    assert datetime.fromisoformat(added.timestamp or "") == event.timestamp


def test_codec_decodes_compressed_and_encrypted_stores() -> None:
    from eventsourcing.cipher import AESCipher

    key = AESCipher.create_key(16)
    app = MarketplaceApplication(env={
        "PERSISTENCE_MODULE": "eventsourcing.popo", "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "CIPHER_KEY": key,
    })
    actor = Actor("alice", Role.UNIT_ADMIN, unit_id=uuid4())
    unit = ApplicationUnit.register(
        name="Acme", credit_code="91150200MA0000000C", kind=UnitKind.NGO, contact_email="a@b.cn",
        admin_user_id="alice", by=actor,
    )
    stored = app.mapper.to_stored_event(unit.collect_events()[0])
    with pytest.raises(ValueError):
        json.loads(stored.state)  # really not plain JSON
    recorded = Recorded(1, stored.originator_id, 1, stored.topic, stored.state, Codec(app.mapper))
    assert recorded.data["name"] == "Acme" and recorded.raw["kind"]["_data_"] == "ngo"
    assert recorded.domain_event.kind is UnitKind.NGO


def test_art18_audit_trail_shows_what_an_encrypted_store_recorded() -> None:
    """The trail reads each event's attributes from the log through the store's own cipher and compressor
    (here an in-memory store, read through its recorder)."""
    from eventsourcing.cipher import AESCipher

    app = MarketplaceApplication(env={
        "PERSISTENCE_MODULE": "eventsourcing.popo", "COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor",
        "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "CIPHER_KEY": AESCipher.create_key(16),
    })
    actor = Actor("alice", Role.UNIT_ADMIN, unit_id=uuid4())
    unit = ApplicationUnit.register(
        name="Acme", credit_code="91150200MA0000000C", kind=UnitKind.NGO, contact_email="a@b.cn",
        admin_user_id="alice", by=actor,
    )
    unit.add_member(user_id="bob", role=Role.UNIT_ANALYST, by=actor)
    app.save(unit)
    log = EventLog.open(app)
    assert isinstance(log, RecorderEventLog)
    with Runner(log, memory(), [AuditProjection()]) as runner:
        runner.catch_up()
        trail = views.audit(runner)
    assert trail["event_name"].to_list() == ["MemberAdded", "Registered"]
    assert trail["summary"].to_list()[0] == "user_id=bob, role=unit_analyst"
    assert json.loads(trail["attributes"][1])["name"] == "Acme"


def test_art18_audit_row_holds_position_and_actor_and_no_copy_of_the_event() -> None:
    _, added = unit_events()
    op, *counts = AuditProjection().apply(added)
    assert isinstance(op, Insert) and op.table == "rm_audit_events"
    # One event more of its kind and by its actor: what the audit page's filters list.
    assert counts == [
        Increment("rm_audit_topics", {"topic": "domain.parties:ApplicationUnit.MemberAdded"}, {"events": 1}),
        Increment("rm_audit_actors", {"user_id": "alice"}, {"events": 1}),
    ]
    row = dict(zip(AuditProjection.tables[0].column_names, op.row, strict=True))
    assert row == {
        "notification_id": 2, "timestamp": added.timestamp, "topic": "domain.parties:ApplicationUnit.MemberAdded",
        "aggregate_type": "ApplicationUnit", "aggregate_id": added.originator_id, "version": 2,
        "event_name": "MemberAdded", "actor_user_id": "alice", "actor_role": "unit_admin",
    }
    # What the trail shows of the event, read from the log: its JSON as stored, and a summary that leaves
    # out what has a column of its own (time, actor) and bookkeeping.
    assert shown(added.text) == added.state.decode("utf8")
    assert summary_of(shown(added.text)) == "user_id=bob, role=unit_analyst"


def test_the_audit_trail_never_shows_a_client_secret_hash() -> None:
    state = TRANSCODER.encode({"timestamp": datetime(2026, 1, 1, tzinfo=UTC), "label": "nb", "secret_hash": "abc"})
    event = Recorded(5, uuid4(), 1, "domain.credentials:ApiClient.Issued", state, Codec(APP.mapper))
    op, *_ = AuditProjection().apply(event)
    assert isinstance(op, Insert) and not any("abc" in str(value) for value in op.row)
    assert "secret_hash" not in shown(event.text) and "abc" not in shown(event.text)
    assert json.loads(shown(event.text))["label"] == "nb"
    assert summary_of(shown(event.text)) == "label=nb"


def test_audit_leaves_the_actor_empty_for_events_that_name_none() -> None:
    state = TRANSCODER.encode({"timestamp": datetime(2026, 1, 1, tzinfo=UTC), "subscription_id": uuid4()})
    event = Recorded(9, uuid4(), 3, "domain.parties:ApplicationUnit.SubscriptionLinked", state, Codec(APP.mapper))
    op, *counts = AuditProjection().apply(event)
    assert isinstance(op, Insert)
    # Counted by its kind, and by no user.
    assert counts == [Increment("rm_audit_topics", {"topic": event.topic}, {"events": 1})]
    assert op.row[1] == "2026-01-01T00:00:00+00:00" and op.row[7:9] == (None, None)
    assert summary_of(shown(event.text)).startswith("subscription_id=")


def audit_row_by_full_parse(state: bytes) -> tuple[Any, Any, Any]:
    """(timestamp, user, role) of an audit row, worked out from the whole parsed JSON."""
    raw = json.loads(state)
    timestamp = raw.get("timestamp")
    by = raw.get("by")
    actor = by.get("_data_") if isinstance(by, dict) and "_type_" in by else by
    actor = actor if isinstance(actor, dict) else {}

    def text(value: Any) -> Any:
        value = value.get("_data_") if isinstance(value, dict) else value
        return value if isinstance(value, str) else None

    return (timestamp.get("_data_") if isinstance(timestamp, dict) else timestamp), text(actor.get("user_id")), \
        text(actor.get("role"))


provider_staff = st.builds(lambda user, provider: Actor(user, Role.PROVIDER_STAFF, provider_id=provider),
                           st.text(min_size=1, max_size=10), st.uuids())


@settings(max_examples=300, deadline=None)
@given(attributes, st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)), st.text(max_size=12)),
       st.one_of(st.none(), actors, provider_staff), st.booleans(), st.booleans())
def test_art18_audit_reads_time_and_actor_the_same_way_whatever_the_event_holds(
    attrs: dict[str, Any], timestamp: Any, actor: Actor | None, actor_last: bool, decoded_before: bool,
) -> None:
    """The quick read of an event's ends (``audit._read_quickly``) never disagrees with parsing it whole:
    keys and strings that look like its landmarks, escapes, a nested ``by``, a ``by`` not last; nor does
    reading what another projection decoded already."""
    event: dict[str, Any] = {"timestamp": timestamp}
    if actor is not None and not actor_last:
        event["by"] = actor
    event.update({k: v for k, v in attrs.items() if k not in ("timestamp", "by")})
    if actor is not None and actor_last:
        event["by"] = actor
    state = TRANSCODER.encode(event)
    recorded = Recorded(7, uuid4(), 1, "domain.x:Y.Happened", state, Codec(APP.mapper))
    if decoded_before:
        assert recorded.raw is not None and recorded.decoded
    op, *counts = AuditProjection().apply(recorded)
    assert isinstance(op, Insert)
    assert (op.row[1], op.row[7], op.row[8]) == audit_row_by_full_parse(state)
    by_user = [] if op.row[7] is None else [Increment("rm_audit_actors", {"user_id": op.row[7]}, {"events": 1})]
    assert counts == [Increment("rm_audit_topics", {"topic": "domain.x:Y.Happened"}, {"events": 1}), *by_user]
    # The same event again: its actor is now looked up, not read (``base._ACTORS``), with the same answer.
    again, *counted_again = AuditProjection().apply(
        Recorded(8, uuid4(), 1, "domain.x:Y.Happened", state, Codec(APP.mapper)))
    assert isinstance(again, Insert) and again.row[1:] == (*op.row[1:4], again.row[4], *op.row[5:])
    assert counted_again == counts


def test_art18_audit_knows_each_actor_it_read_and_forgets_them_all_when_full() -> None:
    """Actors read once are looked up by their text; past ``ACTORS_KEPT`` the lookup starts afresh, and
    every read still gives the event's own actor."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    states = [TRANSCODER.encode({"timestamp": at, "by": Actor(f"user-{i}", Role.OPERATOR_ADMIN)})
              for i in range(ACTORS_KEPT + 10)]
    for round_ in range(2):
        for i, state in enumerate(states):
            assert audit_read_quickly(state) == (at.isoformat(), f"user-{i}", "operator_admin"), (round_, i)
            assert parse_event(state) == json.loads(state), (round_, i)
            assert 0 < len(known_actors) <= ACTORS_KEPT


def test_art18_audit_reads_domain_events_without_parsing_them_whole() -> None:
    """Every event a unit's history writes takes the quick read (what sets the pace of a rebuild),
    and a ``by`` nested in an attribute is not taken for the event's actor."""
    for event in unit_events():
        quick = audit_read_quickly(event.plaintext)
        assert quick is not None and quick[1:] == ("alice", "unit_admin")
    nested = TRANSCODER.encode({"timestamp": datetime(2026, 1, 1, tzinfo=UTC),
                                "note": {"text": "approved", "by": Actor("mallory", Role.OPERATOR_ADMIN)}})
    assert ',"by":{"_type_":"value:domain.identity.Actor"' in nested.decode()
    assert nested.decode().endswith("}}}}")  # the actor's two braces, its attribute's, the event's
    assert audit_read_quickly(nested) is None and trailing_actor(nested) is None
    op, *counts = AuditProjection().apply(Recorded(3, uuid4(), 1, "domain.x:Y.Noted", nested, Codec(APP.mapper)))
    assert isinstance(op, Insert) and op.row[7:9] == (None, None)
    assert [count.table for count in counts] == ["rm_audit_topics"]  # mallory did not do it


@settings(max_examples=300, deadline=None)
@given(attributes, st.one_of(st.none(), actors, provider_staff), st.booleans(), st.booleans())
def test_an_event_parsed_around_its_known_actor_is_the_event_parsed_whole(
    attrs: dict[str, Any], actor: Actor | None, actor_last: bool, nested: bool,
) -> None:
    """``parse_event`` (the JSON parsed less its trailing actor, which is read once per actor) gives what
    parsing it whole gives: an actor last, first, absent, nested in an attribute, keys and strings that
    look like its landmarks; and again the second time, from the lookup."""
    event: dict[str, Any] = {}
    if actor is not None and not actor_last:
        event["by"] = actor
    event.update({k: v for k, v in attrs.items() if k != "by"})
    if nested:
        event["note"] = {"text": ',"by":{"_type_":', "by": Actor("mallory", Role.OPERATOR_ADMIN)}
    if actor is not None and actor_last:
        event["by"] = actor
    state = TRANSCODER.encode(event)
    whole = json.loads(state)
    assert parse_event(state) == whole
    assert parse_event(state) == whole
    assert plain_state(state) == unwrap(whole)
    found = trailing_actor(state)
    if actor is not None and actor_last and len(event) > 1:  # (the mark is a comma, then ``"by":``)
        assert found is not None and found[1].value == whole["by"]
        assert (found[1].user_id, found[1].role) == (actor.user_id, actor.role.value)
    else:
        assert found is None


@settings(max_examples=500, deadline=None)
@given(st.one_of(actors, provider_staff), attributes, st.sampled_from(["delete", "insert", "replace"]),
       st.sampled_from(list(b'{}[],:" \\0el')), st.data())
def test_a_damaged_event_fails_to_parse_exactly_when_parsing_it_whole_fails(
    actor: Actor, attrs: dict[str, Any], edit: str, byte: int, data: st.DataObject,
) -> None:
    """One byte deleted, inserted or replaced anywhere, in the attributes or in an actor already known:
    ``parse_event`` gives the whole parse's value, or fails as it does."""
    state = TRANSCODER.encode({**{k: v for k, v in attrs.items() if k != "by"}, "by": actor})
    parse_event(state)  # the actor is known from here on
    at = data.draw(st.integers(0, len(state) - 1))
    damaged = {"delete": state[:at] + state[at + 1:], "insert": state[:at] + bytes([byte]) + state[at:],
               "replace": state[:at] + bytes([byte]) + state[at + 1:]}[edit]
    try:
        whole = json.loads(damaged)
    except ValueError:
        with pytest.raises(ValueError):
            parse_event(damaged)
    else:
        assert parse_event(damaged) == whole


def test_an_event_whose_actor_is_its_only_member_after_a_stray_comma_is_refused() -> None:
    """The actor's text follows a comma; a comma with no member before it is bad JSON, not an empty head."""
    by = TRANSCODER.encode({"by": Actor("alice", Role.OPERATOR_ADMIN)})[len(b'{"by":'):-1]
    good = b'{"n":1,"by":' + by + b"}"
    assert parse_event(good) == json.loads(good)
    for bad in (b'{,"by":' + by + b"}", b'{ ,"by":' + by + b"}", b'{"n":1,"by":' + by + b"}}",
                b'{"n":1,"by":' + by, b'{"n":,"by":' + by + b"}"):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            parse_event(bad)


def unit_notifications() -> list[tuple[int, Any, int, str, bytes]]:
    """A unit's history as the log reader returns it: (id, originator id, version, topic, state)."""
    return [(e.notification_id, e.raw_originator_id, e.originator_version, e.topic, e.state) for e in unit_events()]


def _decode(event: Recorded) -> list[Op]:
    assert event.raw is not None
    return []


DECODED = {"domain.parties:ApplicationUnit.Registered": _decode, "domain.parties:ApplicationUnit.MemberAdded": _decode}


class Decoding(HandlerProjection):
    name = "decoding"
    tables = (Table("rm_decoding_seen", {"id": INT}, key=("id",)),)
    handlers = DECODED


class Late(Projection):
    """Records, for each event it is offered, whether another projection had decoded it already."""

    name = "late"
    tables = (Table("rm_late_seen", {"id": INT}, key=("id",)),)
    decodes_last = True

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def apply(self, event: Recorded) -> list[Op]:
        self.seen.append(event.decoded)
        return []


def test_a_projection_that_decodes_last_is_offered_events_after_those_that_decode_them() -> None:
    late, decoding = Late(), Decoding()
    mapper = BatchMapper([late, decoding], Codec(APP.mapper))
    rows = unit_notifications()
    mapper.map([(late, (1, 0)), (decoding, (1, 0))], rows, rows[-1][0], True)
    assert late.seen == [True, True]  # listed first, offered each event second
    alone = Late()
    BatchMapper([alone], Codec(APP.mapper)).map([(alone, (1, 0))], rows, rows[-1][0], True)
    assert alone.seen == [False, False]


def test_the_mapper_calls_handlers_directly_unless_a_projection_maps_its_own_way() -> None:
    assert Decoding().mapping_for("domain.parties:ApplicationUnit.Registered") is _decode

    class Counting(Decoding):
        name = "counting"
        calls = 0

        def apply(self, event: Recorded) -> Iterable[Op]:
            type(self).calls += 1
            return super().apply(event)

    counting = Counting()
    rows = unit_notifications()
    BatchMapper([counting], Codec(APP.mapper)).map([(counting, (1, 0))], rows, rows[-1][0], True)
    assert Counting.calls == 2


def test_tables_refuse_bad_names_keys_and_types() -> None:
    with pytest.raises(ProjectionError, match="lower-case"):
        Table("RM_x", {"id": INT}, key=("id",))
    with pytest.raises(ProjectionError, match="needs a primary key"):
        Table("rm_x_t", {"id": INT}, key=())
    with pytest.raises(ProjectionError, match="no column 'other'"):
        Table("rm_x_t", {"id": INT}, key=("id",), indexes=(("other",),))
    with pytest.raises(ProjectionError, match="not a ColumnType"):
        Table("rm_x_t", {"id": "int"}, key=("id",))  # type: ignore[dict-item]
    table = Table("rm_x_t", {"id": INT, "name": TEXT}, key=["id"], indexes=[["name"]])  # type: ignore[arg-type]
    assert table.key == ("id",) and table.indexes == (("name",),) and table.column_names == ("id", "name")


def test_projections_refuse_misdeclaration() -> None:
    class NoTables(Projection):
        name = "empty"

    class BadName(Projection):
        name = "Bad-Name"
        tables = (Table("rm_bad_t", {"id": INT}, key=("id",)),)

    class Twice(Projection):
        name = "twice"
        tables = (Table("rm_twice_t", {"id": INT}, key=("id",)), Table("rm_twice_t", {"id": INT}, key=("id",)))

    with pytest.raises(ProjectionError, match="declares no tables"):
        NoTables().check()
    with pytest.raises(ProjectionError, match="lower-case identifier"):
        BadName().check()
    with pytest.raises(ProjectionError, match="declares a table twice"):
        Twice().check()
    AuditProjection().check()
    assert AuditProjection().handles("anything:At.All")


def test_timestamps_keep_their_order_as_text() -> None:
    """The audit stores ISO text on SQLite; whole seconds drop their fraction, yet order holds."""
    base = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    stamps = [base + timedelta(microseconds=m) for m in (0, 1, 999_999, 1_000_000)]
    assert sorted(s.isoformat() for s in stamps) == [s.isoformat() for s in stamps]
