"""Demand use cases on a real SQLite file and a real PostgreSQL server (art. 6, 19-22)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.demand import (
    AlreadySeconded,
    DemandApplication,
    DemandPost,
    DemandStatus,
    ExpertOpinionRequired,
    FieldNotInProduct,
    PostStatus,
    ProductNotAvailable,
    RiskLevel,
    RiskNotAssessed,
    ScopeItem,
)
from domain.errors import InvalidInput, InvalidState, NotFound, PermissionDenied, SeparationOfDuties
from domain.identity import Actor, Role
from domain.licensing import ProductNotListed, business_date
from domain.parties import ApplicationUnit, UnitNotQualified
from domain.pricing import PurposeClass
from marketplace.bootstrap import Marketplace
from tests.scenario import (
    Staff,
    Unit,
    approved_product,
    credit_code,
    listed_product,
    qualified_unit,
    refused,
    staff,
)


@pytest.fixture
def world(marketplace: Marketplace) -> tuple[Marketplace, Staff, Unit, UUID]:
    people = staff(marketplace)
    return marketplace, people, qualified_unit(marketplace, people), listed_product(marketplace, people)


def second_unit(mp: Marketplace, people: Staff) -> Unit:
    return qualified_unit(
        mp, people, name="包头城市研究院", code_body="91150200MA0N7X2C2", admin_user="u2-admin", analyst_user="u2-ana"
    )


def application_args(mp: Marketplace, unit: Unit, product_id: UUID, **overrides: Any) -> dict[str, Any]:
    today = business_date(mp.demand.clock())
    args: dict[str, Any] = dict(
        unit_id=unit.id,
        scenario="Forecast water demand per district to plan maintenance crews",
        purpose="maintenance planning",
        purpose_class="industry",
        scope=[{"product_id": str(product_id), "fields": ["district", "consumption_m3"]}],
        period_start=today,
        period_end=today + timedelta(days=180),
        security_controls=["results stay in the sandbox"],
    )
    args.update(overrides)
    return args


def filed(mp: Marketplace, unit: Unit, product_id: UUID, **overrides: Any) -> UUID:
    return mp.demand.file_application(unit.analyst, **application_args(mp, unit, product_id, **overrides))


# -- filing (art. 21-22) ---------------------------------------------------------------------
def test_art21_a_member_of_a_qualified_unit_files_and_it_is_stored(world: Any) -> None:
    mp, _, unit, product_id = world
    application_id = filed(mp, unit, product_id)
    application = mp.demand.get(DemandApplication, application_id)
    assert application.status is DemandStatus.SUBMITTED
    assert application.unit_id == unit.id and application.filed_by == unit.analyst.user_id
    assert application.scope == [ScopeItem(product_id, ("district", "consumption_m3"))]
    assert application.purpose_class is PurposeClass.INDUSTRY
    assert application.period_end - application.period_start == timedelta(days=180)


def test_art22_an_unqualified_unit_cannot_file(world: Any) -> None:
    mp, _, _, product_id = world
    pending_id = mp.parties.register_unit(
        Actor("newbie", Role.APPLICANT), name="待审公司", credit_code=credit_code("91150200MA0N7X2D3"),
        kind="company", contact_email="a@b.cn",
    )
    admin = Actor("newbie", Role.UNIT_ADMIN, unit_id=pending_id)
    pending = Unit(pending_id, admin, Actor("x", Role.UNIT_ANALYST, unit_id=pending_id))
    with refused(mp, UnitNotQualified):
        mp.demand.file_application(pending.admin, **application_args(mp, pending, product_id))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"scenario": "short"}, "scenario"),
        ({"purpose": ""}, "purpose"),
        ({"purpose_class": "piracy"}, "purpose_class"),
        ({"scope": []}, "scope"),
        ({"security_controls": []}, "security_controls"),
        ({"period_start": "not a date"}, "period_start"),
        ({"unit_id": "nope"}, "unit_id"),
    ],
)
def test_art21_bad_input_names_the_field_and_changes_nothing(world: Any, overrides: dict[str, Any], field: str) -> None:
    mp, _, unit, product_id = world
    with refused(mp, InvalidInput) as error:
        filed(mp, unit, product_id, **overrides)
    assert error.value.field == field


def test_art21_period_cannot_start_in_the_past(world: Any) -> None:
    mp, _, unit, product_id = world
    yesterday = business_date(mp.demand.clock()) - timedelta(days=1)
    with refused(mp, InvalidInput) as error:
        filed(mp, unit, product_id, period_start=yesterday)
    assert error.value.field == "period_start"


def test_art21_only_listed_products_can_be_asked_for(world: Any) -> None:
    mp, people, unit, _ = world
    unlisted = approved_product(mp, people, name="Unlisted meter data")
    for product_id in (unlisted, uuid4()):
        with refused(mp, ProductNotAvailable) as error:
            filed(mp, unit, product_id)
        assert error.value.field == "scope[0].product_id"


def test_art21_scope_fields_must_be_fields_of_the_product(world: Any) -> None:
    mp, _, unit, product_id = world
    with refused(mp, FieldNotInProduct) as error:
        filed(mp, unit, product_id, scope=[{"product_id": product_id, "fields": ["district", "meter_serial"]}])
    assert "meter_serial" in error.value.message


def test_art21_wrong_role_other_unit_and_unknown_unit_are_refused(world: Any) -> None:
    mp, people, unit, product_id = world
    other = second_unit(mp, people)
    with refused(mp, PermissionDenied):
        mp.demand.file_application(people.reviewer, **application_args(mp, unit, product_id))
    with refused(mp, PermissionDenied):
        mp.demand.file_application(other.analyst, **application_args(mp, unit, product_id))
    ghost = uuid4()
    with refused(mp, NotFound):
        mp.demand.file_application(
            Actor("g", Role.UNIT_ADMIN, unit_id=ghost), **application_args(mp, unit, product_id, unit_id=ghost)
        )


def test_art21_a_removed_member_can_no_longer_file(world: Any) -> None:
    mp, _, unit, product_id = world
    mp.parties.remove_member(unit.admin, unit.id, user_id=unit.analyst.user_id)
    with refused(mp, PermissionDenied):
        filed(mp, unit, product_id)


# -- assessment and decision (art. 6, 22) -----------------------------------------------------------
def test_art22_assess_then_decide_by_someone_other_than_the_filer(world: Any) -> None:
    mp, people, unit, product_id = world
    application_id = filed(mp, unit, product_id)
    with refused(mp, RiskNotAssessed):
        mp.demand.decide_application(people.admin, application_id, approved=True, reason="ok")
    with refused(mp, PermissionDenied):
        mp.demand.assess_risk(unit.admin, application_id, level="low", notes="mine is fine")
    with refused(mp, InvalidInput) as error:
        mp.demand.assess_risk(people.reviewer, application_id, level="none", notes="x")
    assert error.value.field == "level"
    mp.demand.assess_risk(people.reviewer, application_id, level="medium", notes="aggregates by district")
    filer_as_staff = Actor(unit.analyst.user_id, Role.OPERATOR_ADMIN)
    with refused(mp, SeparationOfDuties):
        mp.demand.decide_application(filer_as_staff, application_id, approved=True, reason="mine")
    with refused(mp, PermissionDenied):
        mp.demand.decide_application(people.product_manager, application_id, approved=True, reason="ok")
    mp.demand.decide_application(people.admin, application_id, approved=True, reason="adequate controls")
    application = mp.demand.get(DemandApplication, application_id)
    assert application.is_approved and application.risk_level is RiskLevel.MEDIUM
    assert application.decided_by == people.admin.user_id
    with refused(mp, InvalidState):
        mp.demand.decide_application(people.reviewer, application_id, approved=False, reason="again")


def test_art6_high_risk_application_needs_an_expert_opinion(world: Any) -> None:
    mp, people, unit, product_id = world
    application_id = filed(mp, unit, product_id)
    mp.demand.assess_risk(people.reviewer, application_id, level="high", notes="fine-grained districts")
    with refused(mp, ExpertOpinionRequired):
        mp.demand.decide_application(people.admin, application_id, approved=True, reason="ok")
    with refused(mp, PermissionDenied):
        mp.demand.add_expert_opinion(
            people.product_manager, application_id, expert="x", opinion="y", recommendation="approve"
        )
    mp.demand.add_expert_opinion(
        people.supervisor, application_id, expert="Prof. Zhao", opinion="minimum group size 10",
        recommendation="approve_with_conditions",
    )
    mp.demand.decide_application(people.admin, application_id, approved=True, reason="per the expert committee")
    application = mp.demand.get(DemandApplication, application_id)
    assert application.is_approved
    assert application.expert_opinions[0].expert == "Prof. Zhao"


def test_unknown_application_is_not_found(world: Any) -> None:
    mp, people, _, _ = world
    with refused(mp, NotFound):
        mp.demand.assess_risk(people.reviewer, uuid4(), level="low", notes="x")
    with refused(mp, NotFound):
        mp.demand.decide_application(people.admin, "not-an-id", approved=True, reason="x")


def test_art21_withdrawal_by_the_unit_before_decision(world: Any) -> None:
    mp, people, unit, product_id = world
    application_id = filed(mp, unit, product_id)
    other = second_unit(mp, people)
    with refused(mp, PermissionDenied):
        mp.demand.withdraw(other.admin, application_id, reason="not ours")
    with refused(mp, PermissionDenied):
        mp.demand.withdraw(people.admin, application_id, reason="operators do not withdraw")
    with refused(mp, InvalidInput):
        mp.demand.withdraw(unit.admin, application_id, reason="")
    mp.demand.withdraw(unit.admin, application_id, reason="need met elsewhere")
    assert mp.demand.get(DemandApplication, application_id).status is DemandStatus.WITHDRAWN
    with refused(mp, InvalidState):
        mp.demand.withdraw(unit.admin, application_id, reason="again")


# -- demand board (art. 19-20) ---------------------------------------------------------------------
def post(mp: Marketplace, unit: Unit, **overrides: Any) -> UUID:
    args: dict[str, Any] = dict(
        unit_id=unit.id, title="Bus punctuality by stop", description="To plan feeder shuttles",
        data_wanted="Arrival delay per stop and hour", purpose_class="public_welfare",
    )
    args.update(overrides)
    return mp.demand.post_demand(unit.analyst, **args)


def test_art19_a_unit_posts_a_need_and_the_operator_answers(world: Any) -> None:
    mp, people, unit, product_id = world
    post_id = post(mp, unit)
    assert mp.demand.get(DemandPost, post_id).status is PostStatus.OPEN
    unlisted = approved_product(mp, people, name="Unlisted bus data")
    with refused(mp, ProductNotListed):
        mp.demand.respond_to_post(people.product_manager, post_id, text="see this", product_id=unlisted)
    with refused(mp, PermissionDenied):
        mp.demand.respond_to_post(unit.admin, post_id, text="answering myself")
    mp.demand.respond_to_post(people.product_manager, post_id, text="a close match is listed", product_id=product_id)
    answered = mp.demand.get(DemandPost, post_id)
    assert answered.status is PostStatus.ANSWERED
    assert answered.responses[0].product_id == product_id


@pytest.mark.parametrize("field", ["title", "description", "data_wanted", "purpose_class"])
def test_art19_post_fields_are_required(world: Any, field: str) -> None:
    mp, _, unit, _ = world
    with refused(mp, InvalidInput) as error:
        post(mp, unit, **{field: ""})
    assert error.value.field == field


def test_art19_another_unit_seconds_once(world: Any) -> None:
    mp, people, unit, _ = world
    post_id = post(mp, unit)
    other = second_unit(mp, people)
    mp.demand.second_post(other.analyst, post_id)
    with refused(mp, AlreadySeconded):
        mp.demand.second_post(other.admin, post_id)
    with refused(mp, InvalidInput):
        mp.demand.second_post(unit.admin, post_id)
    with refused(mp, PermissionDenied):
        mp.demand.second_post(people.admin, post_id)
    with refused(mp, NotFound):
        mp.demand.second_post(other.admin, uuid4())
    assert mp.demand.get(DemandPost, post_id).interest == 2


def test_art20_the_poster_or_the_operator_closes(world: Any) -> None:
    mp, people, unit, _ = world
    other = second_unit(mp, people)
    first, second = post(mp, unit), post(mp, unit, title="Taxi demand by hour")
    with refused(mp, PermissionDenied):
        mp.demand.close_post(other.admin, first, reason="not mine to close")
    mp.demand.close_post(unit.analyst, first, reason="met")
    mp.demand.close_post(people.admin, second, reason="duplicate of an answered post")
    assert mp.demand.get(DemandPost, first).status is PostStatus.CLOSED
    with refused(mp, InvalidState):
        mp.demand.respond_to_post(people.product_manager, second, text="late")


def test_art19_a_suspended_unit_cannot_post(world: Any) -> None:
    mp, people, unit, _ = world
    mp.parties.suspend_unit(people.admin, unit.id, reason="investigation")
    assert mp.parties.get(ApplicationUnit, unit.id).status.value == "suspended"
    with refused(mp, InvalidState):
        post(mp, unit)
