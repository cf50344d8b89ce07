"""Subscription use cases on a real SQLite file and a real PostgreSQL server (art. 22, 23, 34)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.demand import ApplicationNotApproved, DemandApplication, ProductNotInScope
from domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound, PermissionDenied
from domain.identity import Actor, Role
from domain.licensing import (
    AgreementAlreadySigned,
    AgreementKind,
    Entitlements,
    ProductNotListed,
    Subscription,
    SubscriptionNotActive,
    SubscriptionStatus,
    UnknownPlan,
    business_date,
)
from domain.parties import ApplicationUnit, UnitNotQualified
from domain.pricing import PurposeClass
from marketplace.bootstrap import Marketplace
from marketplace.services.licensing import LicensingService
from tests.scenario import (
    DEFAULT_ENTITLEMENTS,
    Staff,
    Unit,
    active_subscription,
    approved_application,
    listed_product,
    qualified_unit,
    refused,
    staff,
)


@pytest.fixture
def world(marketplace: Marketplace) -> tuple[Marketplace, Staff, Unit, UUID, UUID]:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    product_id = listed_product(marketplace, people)
    return marketplace, people, unit, product_id, approved_application(marketplace, people, unit, product_id)


def create(mp: Marketplace, people: Staff, application_id: UUID, product_id: UUID, /, **overrides: Any) -> UUID:
    args: dict[str, Any] = dict(
        application_id=application_id, product_id=product_id, plan_id="basic", entitlements=DEFAULT_ENTITLEMENTS
    )
    args.update(overrides)
    return mp.licensing.create_subscription(people.admin, **args)


def later(mp: Marketplace, days: int) -> LicensingService:
    """The same service, ``days`` from now."""
    now = mp.licensing.clock()
    return LicensingService(mp.app, clock=lambda: now + timedelta(days=days))


# -- creation (art. 22) --------------------------------------------------------------------------
def test_art22_subscription_is_created_and_linked_to_its_unit_in_one_save(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    before = mp.app.recorder.max_notification_id()
    subscription_id = create(mp, people, application_id, product_id)
    assert subscription_id == Subscription.create_id(application_id, product_id)
    assert mp.app.recorder.max_notification_id() == before + 2  # Created + SubscriptionLinked together
    sub = mp.licensing.get(Subscription, subscription_id)
    application = mp.demand.get(DemandApplication, application_id)
    assert sub.status is SubscriptionStatus.PENDING
    assert (sub.unit_id, sub.product_id, sub.plan_id) == (unit.id, product_id, "basic")
    assert sub.purpose_class is PurposeClass.INDUSTRY
    assert (sub.term_start, sub.term_end) == (application.period_start, application.period_end)
    assert sub.entitlements == Entitlements(**DEFAULT_ENTITLEMENTS)
    assert subscription_id in mp.parties.get(ApplicationUnit, unit.id).subscription_ids
    for kind in AgreementKind:
        agreement = sub.agreement(kind)
        assert agreement.purpose == "maintenance planning"
        assert set(agreement.scope) == set(application.scope[0].fields)
        assert "sandbox" in agreement.method
        assert not agreement.is_signed


def test_art22_one_subscription_per_application_and_product(world: Any) -> None:
    mp, people, _, product_id, application_id = world
    create(mp, people, application_id, product_id)
    with refused(mp, AlreadyExists):
        create(mp, people, application_id, product_id)


def test_art22_subscription_needs_an_approved_application(world: Any) -> None:
    mp, people, unit, product_id, _ = world
    pending_id = mp.demand.file_application(
        unit.analyst, unit_id=unit.id, scenario="Another long enough scenario text for filing",
        purpose="p", purpose_class="industry", scope=[{"product_id": product_id, "fields": ["district"]}],
        period_start=business_date(mp.demand.clock()), period_end=business_date(mp.demand.clock()) + timedelta(days=30),
        security_controls=["sandbox"],
    )
    with refused(mp, ApplicationNotApproved):
        create(mp, people, pending_id, product_id)


def test_art22_product_must_be_in_the_application_scope(world: Any) -> None:
    mp, people, _, _, application_id = world
    other_product = listed_product(mp, people, name="Bus trips by stop")
    with refused(mp, ProductNotInScope):
        create(mp, people, application_id, other_product)


def test_art22_product_must_still_be_listed(world: Any) -> None:
    mp, people, _, product_id, application_id = world
    mp.products.unlist_product(people.product_manager, product_id, reason="source under correction")
    with refused(mp, ProductNotListed):
        create(mp, people, application_id, product_id)


def test_art22_unit_must_still_be_qualified(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    mp.parties.suspend_unit(people.admin, unit.id, reason="investigation")
    with refused(mp, UnitNotQualified):
        create(mp, people, application_id, product_id)


@pytest.mark.parametrize(
    "overrides, error, field",
    [
        ({"plan_id": "gold"}, UnknownPlan, "plan_id"),
        ({"entitlements": {"queries_per_period": -1, "rows_per_period": 1, "privacy_budget": 1}}, InvalidInput,
         "entitlements.queries_per_period"),
        ({"entitlements": {"queries_per_period": 1}}, InvalidInput, "entitlements.rows_per_period"),
        ({"application_id": "x"}, InvalidInput, "application_id"),
        ({"product_id": 7}, InvalidInput, "product_id"),
    ],
)
def test_art22_bad_input_names_the_field_and_changes_nothing(
    world: Any, overrides: dict[str, Any], error: type[InvalidInput], field: str
) -> None:
    mp, people, _, product_id, application_id = world
    with refused(mp, error) as caught:
        create(mp, people, application_id, product_id, **overrides)
    assert caught.value.field == field


def test_art22_unknown_application_or_product_and_wrong_role_are_refused(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    with refused(mp, NotFound):
        create(mp, people, uuid4(), product_id)
    with refused(mp, NotFound):
        create(mp, people, application_id, uuid4())
    with refused(mp, PermissionDenied):
        mp.licensing.create_subscription(
            unit.admin, application_id=application_id, product_id=product_id, plan_id="basic",
            entitlements=DEFAULT_ENTITLEMENTS,
        )


# -- agreements (art. 22) -------------------------------------------------------------------------
def test_art22_subscription_needs_both_agreements_signed(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = create(mp, people, application_id, product_id)
    signatures = [(unit.admin, k) for k in AgreementKind] + [(people.admin, k) for k in AgreementKind]
    for actor, kind in signatures[:-1]:
        mp.licensing.sign_agreement(actor, subscription_id, kind=kind)
        assert mp.licensing.get(Subscription, subscription_id).status is SubscriptionStatus.PENDING
    actor, kind = signatures[-1]
    mp.licensing.sign_agreement(actor, subscription_id, kind=kind.value)
    sub = mp.licensing.get(Subscription, subscription_id)
    assert sub.is_active
    assert all(a.signed_by_unit == unit.admin.user_id for a in sub.agreements.values())
    assert all(a.signed_by_operator == people.admin.user_id for a in sub.agreements.values())


def test_art22_only_the_right_people_sign(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = create(mp, people, application_id, product_id)
    other = qualified_unit(mp, people, name="别的公司", code_body="91150200MA0N7X2C2", admin_user="o-admin")
    for actor in (unit.analyst, people.product_manager, people.reviewer, other.admin):
        with refused(mp, PermissionDenied):
            mp.licensing.sign_agreement(actor, subscription_id, kind="service")
    mp.licensing.sign_agreement(unit.admin, subscription_id, kind="service")
    with refused(mp, AgreementAlreadySigned):
        mp.licensing.sign_agreement(unit.admin, subscription_id, kind="service")
    with refused(mp, InvalidInput) as error:
        mp.licensing.sign_agreement(people.admin, subscription_id, kind="nda")
    assert error.value.field == "kind"
    with refused(mp, NotFound):
        mp.licensing.sign_agreement(people.admin, uuid4(), kind="service")


def test_art22_a_demoted_unit_admin_cannot_sign(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = create(mp, people, application_id, product_id)
    mp.parties.add_member(unit.admin, unit.id, user_id="second-admin", role="unit_admin")
    second_admin = Actor("second-admin", Role.UNIT_ADMIN, unit_id=unit.id)
    mp.parties.remove_member(second_admin, unit.id, user_id=unit.admin.user_id)
    with refused(mp, PermissionDenied):
        mp.licensing.sign_agreement(unit.admin, subscription_id, kind="service")


# -- supervision (art. 34) ------------------------------------------------------------------------
def test_art34_unit_suspension_suspends_subscriptions(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = active_subscription(mp, people, unit=unit, product_id=product_id, application_id=application_id)
    mp.parties.suspend_unit(people.admin, unit.id, reason="suspected resale of results")
    sub = mp.licensing.get(Subscription, subscription_id)
    assert sub.status is SubscriptionStatus.SUSPENDED
    assert "suspected resale" in sub.status_reason
    with pytest.raises(SubscriptionNotActive):
        sub.check_usable(mp.licensing.clock())
    # reinstating the subscription waits for the unit
    with refused(mp, UnitNotQualified):
        mp.licensing.reinstate_subscription(people.admin, subscription_id, reason="cleared")
    mp.parties.reinstate_unit(people.admin, unit.id, reason="cleared")
    assert mp.licensing.get(Subscription, subscription_id).status is SubscriptionStatus.SUSPENDED
    mp.licensing.reinstate_subscription(people.admin, subscription_id, reason="cleared")
    assert mp.licensing.get(Subscription, subscription_id).is_active


def test_art34_unit_termination_terminates_every_subscription_even_pending(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    active_id = active_subscription(mp, people, unit=unit, product_id=product_id, application_id=application_id)
    other_product = listed_product(mp, people, name="Bus trips by stop")
    pending_id = active_subscription(mp, people, unit=unit, product_id=other_product, sign=False)
    mp.parties.terminate_unit(people.admin, unit.id, reason="data leaked")
    for subscription_id in (active_id, pending_id):
        assert mp.licensing.get(Subscription, subscription_id).status is SubscriptionStatus.TERMINATED


def test_art34_suspend_reinstate_terminate_a_subscription(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = active_subscription(mp, people, unit=unit, product_id=product_id, application_id=application_id)
    with refused(mp, PermissionDenied):
        mp.licensing.suspend_subscription(people.product_manager, subscription_id, reason="x")
    with refused(mp, InvalidInput):
        mp.licensing.suspend_subscription(people.admin, subscription_id, reason="")
    with refused(mp, InvalidState):
        mp.licensing.reinstate_subscription(people.admin, subscription_id, reason="not suspended")
    mp.licensing.suspend_subscription(people.admin, subscription_id, reason="watermark found on a forum")
    assert mp.licensing.get(Subscription, subscription_id).status is SubscriptionStatus.SUSPENDED
    with refused(mp, PermissionDenied):
        mp.licensing.terminate_subscription(unit.admin, subscription_id, reason="x")
    mp.licensing.terminate_subscription(people.admin, subscription_id, reason="confirmed leak")
    assert mp.licensing.get(Subscription, subscription_id).has_ended
    with refused(mp, InvalidState):
        mp.licensing.terminate_subscription(people.admin, subscription_id, reason="again")
    assert mp.licensing.get(Subscription, subscription_id).is_active is False


def test_art22_signing_needs_a_qualified_unit(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = create(mp, people, application_id, product_id)
    mp.parties.suspend_unit(people.admin, unit.id, reason="investigation")
    with refused(mp, UnitNotQualified):
        mp.licensing.sign_agreement(people.admin, subscription_id, kind="service")


# -- expiry (art. 22) -------------------------------------------------------------------------------
def test_art22_expire_due_expires_only_subscriptions_past_their_term(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    long_id = active_subscription(mp, people, unit=unit, product_id=product_id, application_id=application_id)
    short_product = listed_product(mp, people, name="Bus trips by stop")
    short_app = approved_application(mp, people, unit, short_product, days=30)
    short_id = active_subscription(mp, people, unit=unit, product_id=short_product, application_id=short_app)
    assert mp.licensing.expire_due(people.admin, [long_id, short_id]) == []
    with refused(mp, PermissionDenied):
        later(mp, 32).expire_due(people.product_manager, [short_id])
    with refused(mp, NotFound):
        later(mp, 32).expire_due(people.admin, [short_id, uuid4()])
    with refused(mp, InvalidInput):
        later(mp, 32).expire_due(people.admin, ["nope"])
    assert later(mp, 32).expire_due(people.admin, [long_id, str(short_id)]) == [short_id]
    assert mp.licensing.get(Subscription, short_id).status is SubscriptionStatus.EXPIRED
    assert mp.licensing.get(Subscription, long_id).is_active
    # already ended: skipped, nothing saved
    before = mp.app.recorder.max_notification_id()
    assert later(mp, 40).expire_due(people.admin, [short_id]) == []
    assert mp.app.recorder.max_notification_id() == before


def test_art23_entitlements_change_with_a_reason(world: Any) -> None:
    mp, people, unit, product_id, application_id = world
    subscription_id = active_subscription(mp, people, unit=unit, product_id=product_id, application_id=application_id)
    bigger = {"queries_per_period": 500, "rows_per_period": 50_000, "privacy_budget": 2}
    with refused(mp, InvalidInput) as error:
        mp.licensing.change_entitlements(people.admin, subscription_id, entitlements=bigger, reason="")
    assert error.value.field == "reason"
    with refused(mp, InvalidInput):
        mp.licensing.change_entitlements(
            people.admin, subscription_id, entitlements=DEFAULT_ENTITLEMENTS, reason="same"
        )
    with refused(mp, PermissionDenied):
        mp.licensing.change_entitlements(unit.admin, subscription_id, entitlements=bigger, reason="more please")
    mp.licensing.change_entitlements(people.admin, subscription_id, entitlements=bigger, reason="upgraded plan")
    assert mp.licensing.get(Subscription, subscription_id).entitlements == Entitlements(500, 50_000, 2.0)
