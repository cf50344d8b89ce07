"""Feedback of application units (art. 26): quality, application status, effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.errors import DomainError, InvalidInput, PermissionDenied
from domain.feedback import (
    EFFECT_NOTE_MAX,
    TEXT_MAX,
    ApplicationStatus,
    Effect,
    Feedback,
    FeedbackContent,
    NotUnitMember,
    parse_rating,
)
from domain.identity import Actor, Role

UNIT = UUID("00000000-0000-0000-0000-0000000000a1")
OTHER_UNIT = UUID("00000000-0000-0000-0000-0000000000a2")
PRODUCT = UUID("00000000-0000-0000-0000-0000000000b1")
SUBSCRIPTION = UUID("00000000-0000-0000-0000-0000000000c1")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

ANALYST = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT)
UNIT_ADMIN = Actor("uadmin", Role.UNIT_ADMIN, unit_id=UNIT)
OUTSIDER = Actor("eve", Role.UNIT_ADMIN, unit_id=OTHER_UNIT)
PM = Actor("pm", Role.PRODUCT_MANAGER)
SUPERVISOR = Actor("sup", Role.SUPERVISOR)


def content(**overrides: Any) -> FeedbackContent:
    args: dict[str, Any] = {
        "quality_rating": 4, "application_status": "in_production", "effect": "significant",
        "effect_note": "cut complaint handling time by a third", "rating": 5, "text": "good data",
    }
    args.update(overrides)
    return FeedbackContent.parse(**args)


def given_feedback(by: Actor = ANALYST, **overrides: Any) -> Feedback:
    return Feedback.give(unit_id=UNIT, product_id=PRODUCT, subscription_id=SUBSCRIPTION, content=content(**overrides),
                         by=by, at=T0)


def replay(aggregate: Feedback) -> Feedback:
    copy: Any = None
    for e in aggregate.collect_events():
        copy = e.mutate(copy)
    assert isinstance(copy, Feedback)
    return copy


# -- giving feedback ------------------------------------------------------------------------
def test_art26_unit_member_gives_feedback_on_quality_status_and_effect() -> None:
    fb = given_feedback()
    assert fb.unit_id == UNIT and fb.product_id == PRODUCT and fb.subscription_id == SUBSCRIPTION
    assert fb.content.application_status is ApplicationStatus.IN_PRODUCTION
    assert fb.content.effect is Effect.SIGNIFICANT
    assert fb.quality_rating == 4 and fb.rating == 5
    assert fb.given_by == "ana" and fb.given_at == T0
    events = fb.collect_events()
    assert [type(e).__name__ for e in events] == ["Given"]
    assert events[0].by == ANALYST  # type: ignore[attr-defined]


def test_art26_enum_members_and_their_values_are_both_accepted() -> None:
    a = content(application_status=ApplicationStatus.PLANNED, effect=Effect.NONE, effect_note="")
    b = content(application_status="planned", effect="none", effect_note="")
    assert a == b


@pytest.mark.parametrize("actor", [PM, SUPERVISOR, OUTSIDER, Actor("ps", Role.PROVIDER_STAFF, provider_id=uuid4())])
def test_art26_only_a_member_of_the_unit_gives_its_feedback(actor: Actor) -> None:
    with pytest.raises(NotUnitMember):
        given_feedback(by=actor)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quality_rating", 0), ("quality_rating", 6), ("quality_rating", "4"), ("quality_rating", 4.0),
        ("quality_rating", True), ("quality_rating", None), ("rating", -1), ("rating", 2.5),
        ("application_status", "live"), ("application_status", None), ("effect", "huge"), ("effect", ""),
        ("text", "x" * (TEXT_MAX + 1)), ("text", 42), ("effect_note", "x" * (EFFECT_NOTE_MAX + 1)),
    ],
)
def test_art26_every_field_is_validated_and_named(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as e:
        content(**{field: value})
    assert e.value.field == field


def test_art26_a_claimed_effect_must_be_described() -> None:
    for effect in ("minor", "significant", "transformative"):
        with pytest.raises(InvalidInput) as e:
            content(effect=effect, effect_note="  ")
        assert e.value.field == "effect_note"
    assert content(effect="none", effect_note=None).effect_note == ""


def test_art26_text_is_optional_but_bounded() -> None:
    assert content(text=None).text == ""
    assert content(text="  ").text == ""
    assert content(text="x" * TEXT_MAX).text == "x" * TEXT_MAX


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(InvalidInput) as e:
        Feedback.give(unit_id=UNIT, product_id=PRODUCT, subscription_id=SUBSCRIPTION, content=content(),
                      by=ANALYST, at=datetime(2025, 1, 1))
    assert e.value.field == "at"


def test_content_must_be_parsed() -> None:
    with pytest.raises(InvalidInput) as e:
        Feedback.give(unit_id=UNIT, product_id=PRODUCT, subscription_id=SUBSCRIPTION,
                      content={"rating": 5}, by=ANALYST, at=T0)  # type: ignore[arg-type]
    assert e.value.field == "content"


@given(st.integers())
def test_rating_accepts_exactly_one_to_five(value: int) -> None:
    if 1 <= value <= 5:
        assert parse_rating("rating", value) == value
    else:
        with pytest.raises(InvalidInput):
            parse_rating("rating", value)


# -- amending ---------------------------------------------------------------------------------
def test_art26_unit_amends_its_feedback_with_a_reason() -> None:
    fb = given_feedback()
    fb.amend(content=content(application_status="discontinued", effect="none", effect_note=""),
             reason="project stopped", by=UNIT_ADMIN, at=T0 + timedelta(days=30))
    assert fb.content.application_status is ApplicationStatus.DISCONTINUED
    assert fb.amendments == ["project stopped"]
    assert fb.updated_at == T0 + timedelta(days=30)
    assert [type(e).__name__ for e in fb.collect_events()] == ["Given", "Amended"]


def test_art26_another_unit_cannot_amend() -> None:
    fb = given_feedback()
    with pytest.raises(NotUnitMember):
        fb.amend(content=content(rating=1), reason="sabotage", by=OUTSIDER, at=T0)
    with pytest.raises(NotUnitMember):
        fb.amend(content=content(rating=1), reason="operator edit", by=PM, at=T0)
    assert fb.rating == 5 and fb.version == 1


def test_amendment_needs_a_reason_and_a_change() -> None:
    fb = given_feedback()
    with pytest.raises(InvalidInput) as e:
        fb.amend(content=content(rating=3), reason=" ", by=ANALYST, at=T0)
    assert e.value.field == "reason"
    with pytest.raises(InvalidInput) as e:
        fb.amend(content=content(), reason="again", by=ANALYST, at=T0)
    assert e.value.field == "content"
    assert fb.version == 1


# -- operator replies -------------------------------------------------------------------------
def test_art26_operator_replies_to_feedback() -> None:
    fb = given_feedback()
    fb.respond(reply="thank you, the schema fix ships next week", by=PM, at=T0 + timedelta(hours=2))
    fb.respond(reply="shipped", by=Actor("adm", Role.OPERATOR_ADMIN), at=T0 + timedelta(days=7))
    assert [r.text for r in fb.replies] == ["thank you, the schema fix ships next week", "shipped"]
    assert [r.user_id for r in fb.replies] == ["pm", "adm"]


@pytest.mark.parametrize("actor", [ANALYST, SUPERVISOR, Actor("ps", Role.PROVIDER_STAFF, provider_id=uuid4())])
def test_art26_only_operator_staff_reply(actor: Actor) -> None:
    fb = given_feedback()
    with pytest.raises(PermissionDenied):
        fb.respond(reply="hello", by=actor, at=T0)
    assert fb.replies == []


def test_reply_text_is_required() -> None:
    fb = given_feedback()
    with pytest.raises(InvalidInput) as e:
        fb.respond(reply="", by=PM, at=T0)
    assert e.value.field == "reply"


def test_art8_replay_of_events_rebuilds_the_same_feedback() -> None:
    fb = given_feedback()
    fb.amend(content=content(rating=2), reason="data went stale", by=ANALYST, at=T0 + timedelta(days=1))
    fb.respond(reply="looking into it", by=PM, at=T0 + timedelta(days=2))
    copy = replay(fb)
    assert copy.content == fb.content
    assert copy.amendments == fb.amendments
    assert copy.replies == fb.replies
    assert copy.version == fb.version == 3


# -- no command sequence reaches an invalid state -----------------------------------------------
ACTORS = [ANALYST, UNIT_ADMIN, OUTSIDER, PM, SUPERVISOR]
contents = st.builds(
    lambda q, s, e, r, t: FeedbackContent.parse(
        quality_rating=q, application_status=s, effect=e, effect_note="" if e == "none" else "a real effect",
        rating=r, text=t,
    ),
    st.integers(1, 5), st.sampled_from([m.value for m in ApplicationStatus]),
    st.sampled_from([m.value for m in Effect]), st.integers(1, 5), st.text(max_size=20),
)


class FeedbackMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fb = given_feedback()
        self.amends = 0
        self.replies = 0
        self.clock = T0

    def tick(self) -> datetime:
        self.clock += timedelta(hours=1)
        return self.clock

    @rule(actor=st.sampled_from(ACTORS), new=contents, reason=st.sampled_from(["", "correction"]))
    def amend(self, actor: Actor, new: FeedbackContent, reason: str) -> None:
        before = (self.fb.version, self.fb.content)
        allowed = actor.role.is_unit and actor.unit_id == UNIT and reason and new != self.fb.content
        try:
            self.fb.amend(content=new, reason=reason, by=actor, at=self.tick())
        except DomainError:
            assert not allowed
            assert (self.fb.version, self.fb.content) == before
        else:
            assert allowed
            self.amends += 1

    @rule(actor=st.sampled_from(ACTORS), reply=st.sampled_from(["", "noted"]))
    def respond(self, actor: Actor, reply: str) -> None:
        before = self.fb.version
        try:
            self.fb.respond(reply=reply, by=actor, at=self.tick())
        except DomainError:
            assert not (actor.role.is_operator and reply)
            assert self.fb.version == before
        else:
            self.replies += 1

    @invariant()
    def consistent(self) -> None:
        assert 1 <= self.fb.content.rating <= 5 and 1 <= self.fb.content.quality_rating <= 5
        assert self.fb.content.effect is Effect.NONE or self.fb.content.effect_note
        assert len(self.fb.amendments) == self.amends
        assert len(self.fb.replies) == self.replies
        assert self.fb.version == 1 + self.amends + self.replies
        assert self.fb.unit_id == UNIT


TestFeedbackMachine = FeedbackMachine.TestCase
TestFeedbackMachine.settings = settings(max_examples=60, stateful_step_count=15, deadline=None)
