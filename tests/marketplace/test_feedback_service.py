"""Feedback use cases on a real SQLite file and a real PostgreSQL server (art. 26)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.feedback import ApplicationStatus, Effect, Feedback, NotUnitMember
from domain.identity import Actor, Role
from domain.licensing import Subscription, SubscriptionNotActive
from marketplace.bootstrap import Marketplace, build
from tests.scenario import Staff, Unit, active_subscription, listed_product, qualified_unit, refused, staff

World = tuple[Marketplace, Staff, Unit, UUID]


@pytest.fixture
def world(marketplace: Marketplace) -> World:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    return marketplace, people, unit, active_subscription(marketplace, people, unit=unit)


def give(mp: Marketplace, actor: Actor, subscription_id: UUID | str, **overrides: Any) -> UUID:
    args: dict[str, Any] = {
        "quality_rating": 4, "application_status": "in_production", "effect": "significant",
        "effect_note": "maintenance crews planned a week ahead", "rating": 5, "text": "district totals are reliable",
    }
    args.update(overrides)
    return mp.feedback.give_feedback(actor, subscription_id=subscription_id, **args)


# -- give ---------------------------------------------------------------------------------------
def test_art26_unit_member_gives_feedback_on_the_product_of_its_subscription(world: World) -> None:
    mp, _, unit, sub_id = world
    fid = give(mp, unit.analyst, sub_id)
    reopened = build(mp.config)  # a fresh process reading the stored events
    try:
        fb = reopened.feedback.get(Feedback, fid)
    finally:
        reopened.close()
    assert fb.unit_id == unit.id and fb.subscription_id == sub_id
    assert fb.product_id == mp.licensing.get(Subscription, sub_id).product_id
    assert fb.content.application_status is ApplicationStatus.IN_PRODUCTION
    assert fb.content.effect is Effect.SIGNIFICANT
    assert (fb.quality_rating, fb.rating) == (4, 5)
    assert fb.given_by == unit.analyst.user_id
    assert fb.given_at.tzinfo is not None


def test_art8_the_stored_event_records_who_gave_feedback(world: World) -> None:
    mp, _, unit, sub_id = world
    fid = give(mp, unit.admin, sub_id)
    [stored] = list(mp.app.repository.event_store.get(fid))
    assert type(stored).__name__ == "Given"
    assert stored.by == unit.admin  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("quality_rating", {"quality_rating": 0}),
        ("quality_rating", {"quality_rating": "5"}),
        ("rating", {"rating": 6}),
        ("application_status", {"application_status": "abandoned"}),
        ("effect", {"effect": "enormous"}),
        ("effect_note", {"effect": "minor", "effect_note": ""}),
        ("text", {"text": "x" * 5000}),
    ],
)
def test_art26_bad_input_names_the_field_and_changes_nothing(
    world: World, field: str, overrides: dict[str, Any]
) -> None:
    mp, _, unit, sub_id = world
    with refused(mp, InvalidInput) as info:
        give(mp, unit.analyst, sub_id, **overrides)
    assert info.value.field == field


@pytest.mark.parametrize("sub", [uuid4(), "not-a-uuid"])
def test_unknown_subscription_is_not_found(world: World, sub: object) -> None:
    mp, _, unit, _ = world
    with refused(mp, NotFound):
        give(mp, unit.analyst, sub)  # type: ignore[arg-type]


def test_art26_operator_and_bureau_roles_cannot_give_unit_feedback(world: World) -> None:
    mp, people, _, sub_id = world
    for actor in (people.product_manager, people.admin, people.supervisor):
        with refused(mp, PermissionDenied):
            give(mp, actor, sub_id)


def test_art26_a_unit_without_the_subscription_cannot_give_feedback(world: World) -> None:
    mp, people, _, sub_id = world
    other = qualified_unit(mp, people, name="包头另一家公司", code_body="91150200MA0N7X2C1",
                           admin_user="other-admin", analyst_user="other-analyst")
    with refused(mp, PermissionDenied):
        give(mp, other.analyst, sub_id)


def test_art26_someone_no_longer_a_member_cannot_speak_for_the_unit(world: World) -> None:
    mp, _, unit, sub_id = world
    ghost = Actor("former-employee", Role.UNIT_ANALYST, unit_id=unit.id)
    with refused(mp, NotUnitMember):
        give(mp, ghost, sub_id)


def test_art26_only_an_active_subscription_gives_the_right_to_feedback(world: World) -> None:
    mp, people, unit, sub_id = world
    mp.licensing.suspend_subscription(people.admin, sub_id, reason="unusual download pattern")
    with refused(mp, SubscriptionNotActive):
        give(mp, unit.analyst, sub_id)
    pending = active_subscription(mp, people, unit=unit, product_id=listed_product(mp, people, name="Gas use"),
                                  sign=False)
    with refused(mp, SubscriptionNotActive):
        give(mp, unit.analyst, pending)


# -- amend ----------------------------------------------------------------------------------------
def test_art26_unit_amends_only_the_fields_it_names(world: World) -> None:
    mp, _, unit, sub_id = world
    fid = give(mp, unit.analyst, sub_id)
    mp.feedback.amend_feedback(unit.admin, fid, reason="project paused for budget", application_status="planned",
                               effect="none", effect_note="")
    fb = mp.feedback.get(Feedback, fid)
    assert fb.content.application_status is ApplicationStatus.PLANNED
    assert fb.content.effect is Effect.NONE
    assert fb.rating == 5 and fb.content.text == "district totals are reliable"
    assert fb.amendments == ["project paused for budget"]


def test_amend_refusals_change_nothing(world: World) -> None:
    mp, people, unit, sub_id = world
    fid = give(mp, unit.analyst, sub_id)
    with refused(mp, InvalidInput) as info:
        mp.feedback.amend_feedback(unit.analyst, fid, reason="", rating=2)
    assert info.value.field == "reason"
    with refused(mp, InvalidInput) as info:
        mp.feedback.amend_feedback(unit.analyst, fid, reason="same again", rating=5)
    assert info.value.field == "content"
    with refused(mp, InvalidInput) as info:
        mp.feedback.amend_feedback(unit.analyst, fid, reason="typo", rating=9)
    assert info.value.field == "rating"
    with refused(mp, NotFound):
        mp.feedback.amend_feedback(unit.analyst, uuid4(), reason="x", rating=2)
    with refused(mp, PermissionDenied):
        mp.feedback.amend_feedback(people.product_manager, fid, reason="operator edit", rating=1)
    other = qualified_unit(mp, people, name="包头另一家公司", code_body="91150200MA0N7X2C1",
                           admin_user="other-admin", analyst_user="other-analyst")
    with refused(mp, PermissionDenied):
        mp.feedback.amend_feedback(other.admin, fid, reason="competitor", rating=1)


# -- respond ---------------------------------------------------------------------------------------
def test_art26_operator_responds_to_feedback(world: World) -> None:
    mp, people, unit, sub_id = world
    fid = give(mp, unit.analyst, sub_id)
    mp.feedback.respond_to_feedback(people.product_manager, fid, reply="thanks, forwarded to the provider")
    mp.feedback.respond_to_feedback(people.reviewer, fid, reply="reviewed")
    fb = mp.feedback.get(Feedback, fid)
    assert [(r.user_id, r.text) for r in fb.replies] == [
        (people.product_manager.user_id, "thanks, forwarded to the provider"), (people.reviewer.user_id, "reviewed"),
    ]


def test_respond_refusals_change_nothing(world: World) -> None:
    mp, people, unit, sub_id = world
    fid = give(mp, unit.analyst, sub_id)
    with refused(mp, PermissionDenied):
        mp.feedback.respond_to_feedback(unit.admin, fid, reply="self-reply")
    with refused(mp, PermissionDenied):
        mp.feedback.respond_to_feedback(people.supervisor, fid, reply="bureau")
    with refused(mp, InvalidInput) as info:
        mp.feedback.respond_to_feedback(people.product_manager, fid, reply="  ")
    assert info.value.field == "reply"
    with refused(mp, NotFound):
        mp.feedback.respond_to_feedback(people.product_manager, uuid4(), reply="hello")
    with refused(mp, NotFound):
        mp.feedback.respond_to_feedback(people.product_manager, sub_id, reply="wrong kind of id")
