"""Rules of subscriptions: creation facts, agreements, lifecycle (art. 22, 23, 34)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.demand import ApplicationNotApproved, DemandApplication, ProductNotInScope
from domain.errors import DomainError, InvalidInput, InvalidState, PermissionDenied
from domain.identity import Actor, Role
from domain.licensing import (
    AgreementAlreadySigned,
    AgreementKind,
    AgreementsNotSigned,
    Entitlements,
    OutsideTerm,
    ProductNotListed,
    SigningParty,
    Subscription,
    SubscriptionNotActive,
    SubscriptionStatus,
    TermNotOver,
    UnknownPlan,
    business_date,
    parse_entitlements,
)
from domain.parties import ApplicationUnit, UnitKind, UnitNotQualified, credit_code_check_char
from domain.pricing import PurposeClass

PRODUCT = UUID("00000000-0000-4000-8000-0000000000a1")
OTHER_PRODUCT = UUID("00000000-0000-4000-8000-0000000000a2")
OP_ADMIN = Actor("oscar", Role.OPERATOR_ADMIN)
REVIEWER = Actor("rita", Role.COMPLIANCE_REVIEWER)
MANAGER = Actor("pm", Role.PRODUCT_MANAGER)
ENTITLEMENTS = Entitlements(queries_per_period=100, rows_per_period=10_000, privacy_budget=1.0)
START, END = date(2025, 4, 1), date(2026, 3, 31)


def qualified_unit(body: str = "91150200MA0N7X2B1") -> ApplicationUnit:
    unit = ApplicationUnit.register(
        name="包头出行数据有限公司", credit_code=body + credit_code_check_char(body), kind=UnitKind.COMPANY,
        contact_email="ops@example.cn", admin_user_id="alice", by=Actor("alice", Role.APPLICANT),
    )
    unit.qualify(approved=True, reason="documents complete", by=OP_ADMIN)
    return unit


UNIT = qualified_unit()
UNIT_ADMIN = Actor("alice", Role.UNIT_ADMIN, unit_id=UNIT.id)
ANALYST = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT.id)


def application(*, approve: bool = True, unit: ApplicationUnit = UNIT) -> DemandApplication:
    app = DemandApplication.file(
        unit_id=unit.id, scenario="Plan bus routes from monthly trip counts per district",
        purpose="route planning", purpose_class="industry",
        scope=[{"product_id": PRODUCT, "fields": ["district", "trips"]}],
        period_start=START, period_end=END, security_controls=["sandbox only"],
        available={PRODUCT: ("district", "month", "trips")}, today=date(2025, 3, 1),
        by=Actor("ana", Role.UNIT_ANALYST, unit_id=unit.id),
    )
    app.assess_risk(level="low", notes="aggregates", by=REVIEWER)
    if approve:
        app.decide(approved=True, reason="ok", by=OP_ADMIN)
    return app


def create_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        application=application(), unit=UNIT, product_id=PRODUCT, product_listed=True,
        plan_ids=["standard", "welfare"], plan_id="standard", entitlements=ENTITLEMENTS,
        method="sandbox aggregate queries", by=OP_ADMIN,
    )
    args.update(overrides)
    return args


def subscription(**overrides: Any) -> Subscription:
    return Subscription.create(**create_args(**overrides))


def sign_all(sub: Subscription) -> None:
    for kind in AgreementKind:
        sub.sign(kind=kind, by=UNIT_ADMIN)
        sub.sign(kind=kind, by=OP_ADMIN)


def active() -> Subscription:
    sub = subscription()
    sign_all(sub)
    sub.activate(by=OP_ADMIN)
    return sub


def at(day: date, hour: int = 12) -> datetime:
    """An instant on ``day`` in Baotou (UTC+8)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


# -- creation (art. 22) ----------------------------------------------------------------
def test_art22_subscription_is_created_from_the_approved_application() -> None:
    app = application()
    sub = subscription(application=app)
    assert sub.id == Subscription.create_id(app.id, PRODUCT)
    assert (sub.unit_id, sub.product_id, sub.application_id) == (UNIT.id, PRODUCT, app.id)
    assert sub.purpose_class is PurposeClass.INDUSTRY
    assert sub.fields == ["district", "trips"]
    assert (sub.term_start, sub.term_end) == (START, END)
    assert sub.status is SubscriptionStatus.PENDING
    assert sub.entitlements == ENTITLEMENTS


def test_art22_both_agreements_are_drafted_with_purpose_scope_method_and_term() -> None:
    sub = subscription()
    for kind in AgreementKind:
        agreement = sub.agreement(kind)
        assert agreement.kind is kind
        assert agreement.purpose == "route planning"
        assert agreement.scope == ("district", "trips")
        assert agreement.method == "sandbox aggregate queries"
        assert (agreement.term_start, agreement.term_end) == (START, END)
        assert not agreement.is_signed


def test_art22_subscription_needs_an_approved_application() -> None:
    with pytest.raises(ApplicationNotApproved):
        subscription(application=application(approve=False))


def test_art22_subscription_needs_a_qualified_unit() -> None:
    unit = qualified_unit("91150200MA0N7X2C2")
    app = application(unit=unit)
    unit.suspend(reason="leak under investigation", by=OP_ADMIN)
    with pytest.raises(UnitNotQualified):
        subscription(application=app, unit=unit)


def test_art22_the_unit_must_be_the_applicant() -> None:
    with pytest.raises(InvalidInput) as error:
        subscription(unit=qualified_unit("91150200MA0N7X2C2"))
    assert error.value.field == "unit"


def test_art22_product_must_be_in_the_application_scope() -> None:
    with pytest.raises(ProductNotInScope):
        subscription(product_id=OTHER_PRODUCT)


def test_art22_product_must_be_listed() -> None:
    with pytest.raises(ProductNotListed):
        subscription(product_listed=False)


def test_art24_plan_must_be_one_of_the_product() -> None:
    with pytest.raises(UnknownPlan) as error:
        subscription(plan_id="gold")
    assert error.value.field == "plan_id"


def test_art22_a_unit_cannot_create_its_own_subscription() -> None:
    with pytest.raises(PermissionDenied):
        subscription(by=UNIT_ADMIN)


@pytest.mark.parametrize(
    "value, field",
    [
        ({"queries_per_period": -1, "rows_per_period": 1, "privacy_budget": 1}, "entitlements.queries_per_period"),
        ({"queries_per_period": 1, "rows_per_period": 1.5, "privacy_budget": 1}, "entitlements.rows_per_period"),
        ({"queries_per_period": True, "rows_per_period": 1, "privacy_budget": 1}, "entitlements.queries_per_period"),
        ({"queries_per_period": 1, "rows_per_period": 1, "privacy_budget": -0.1}, "entitlements.privacy_budget"),
        (
            {"queries_per_period": 1, "rows_per_period": 1, "privacy_budget": float("nan")},
            "entitlements.privacy_budget",
        ),
        ({"queries_per_period": 1, "rows_per_period": 1, "privacy_budget": 1, "period": "week"}, "entitlements.period"),
        ({"queries_per_period": 1, "rows_per_period": 1}, "entitlements.privacy_budget"),
        ({"queries_per_period": 1, "rows_per_period": 1, "privacy_budget": 1, "tokens": 3}, "entitlements"),
        ("lots", "entitlements"),
    ],
)
def test_art23_malformed_entitlements_name_the_field(value: object, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_entitlements(value)
    assert error.value.field == field


@given(st.integers(0, 10**9), st.integers(0, 10**12), st.floats(0, 1e6) | st.integers(0, 100))
def test_art23_valid_entitlements_round_trip_through_a_mapping(q: int, r: int, eps: float) -> None:
    ent = parse_entitlements({"queries_per_period": q, "rows_per_period": r, "privacy_budget": eps})
    assert ent == Entitlements(q, r, float(eps))
    assert isinstance(ent.privacy_budget, float)


# -- agreements and activation (art. 22) -------------------------------------------------
def test_art22_subscription_needs_both_agreements_signed() -> None:
    sub = subscription()
    with pytest.raises(AgreementsNotSigned) as error:
        sub.activate(by=OP_ADMIN)
    assert "service/unit" in error.value.message
    signatures = [(k, a) for k in AgreementKind for a in (UNIT_ADMIN, OP_ADMIN)]
    for kind, actor in signatures[:-1]:
        sub.sign(kind=kind, by=actor)
        with pytest.raises(AgreementsNotSigned):
            sub.activate(by=OP_ADMIN)
    assert sub.missing_signatures == ["confidentiality/operator"]
    kind, actor = signatures[-1]
    assert sub.sign(kind=kind, by=actor) is SigningParty.OPERATOR
    sub.activate(by=OP_ADMIN)
    assert sub.is_active
    assert sub.agreement("service").signed_by_unit == "alice"
    assert sub.agreement("confidentiality").signed_by_operator == "oscar"


def test_art22_only_the_unit_admin_and_an_operator_admin_sign() -> None:
    sub = subscription()
    other_admin = Actor("olga", Role.UNIT_ADMIN, unit_id=UUID(int=7))
    for actor in (ANALYST, MANAGER, REVIEWER, other_admin):
        with pytest.raises(PermissionDenied):
            sub.sign(kind="service", by=actor)
    assert sub.missing_signatures == [f"{k.value}/{p.value}" for k in AgreementKind for p in SigningParty]


def test_art22_an_agreement_is_signed_once_per_side() -> None:
    sub = subscription()
    sub.sign(kind="service", by=UNIT_ADMIN)
    with pytest.raises(AgreementAlreadySigned):
        sub.sign(kind="service", by=Actor("bob", Role.UNIT_ADMIN, unit_id=UNIT.id))
    with pytest.raises(InvalidInput) as error:
        sub.sign(kind="nda", by=OP_ADMIN)
    assert error.value.field == "kind"


def test_art22_signing_is_over_once_active() -> None:
    sub = active()
    with pytest.raises(InvalidState):
        sub.sign(kind="service", by=OP_ADMIN)
    with pytest.raises(InvalidState):
        sub.activate(by=OP_ADMIN)


# -- use checks (art. 23) -------------------------------------------------------------------
def test_art23_pending_subscription_is_not_usable() -> None:
    with pytest.raises(SubscriptionNotActive):
        subscription().check_usable(at(START))


def test_art23_use_only_within_the_term_in_baotou_time() -> None:
    sub = active()
    sub.check_usable(at(START, hour=0))
    sub.check_usable(at(END, hour=23))
    with pytest.raises(OutsideTerm):
        sub.check_usable(at(START - timedelta(days=1), hour=23))
    with pytest.raises(OutsideTerm):
        sub.check_usable(at(END + timedelta(days=1), hour=0))


def test_business_date_is_baotou_local_and_naive_means_utc() -> None:
    assert business_date(datetime(2025, 1, 31, 16, 0, tzinfo=UTC)) == date(2025, 2, 1)
    assert business_date(datetime(2025, 1, 31, 15, 59, tzinfo=UTC)) == date(2025, 1, 31)
    assert business_date(datetime(2025, 1, 31, 16, 0)) == date(2025, 2, 1)


# -- supervision and lifecycle (art. 34) -------------------------------------------------------
def test_art34_suspend_and_reinstate_with_reasons() -> None:
    sub = active()
    with pytest.raises(InvalidInput):
        sub.suspend(reason="", by=OP_ADMIN)
    sub.suspend(reason="suspected resale", by=OP_ADMIN)
    assert sub.status is SubscriptionStatus.SUSPENDED and not sub.is_active and not sub.has_ended
    with pytest.raises(SubscriptionNotActive):
        sub.check_usable(at(START))
    with pytest.raises(InvalidState):
        sub.suspend(reason="again", by=OP_ADMIN)
    sub.reinstate(reason="cleared", by=OP_ADMIN)
    assert sub.is_active and sub.status_reason == "cleared"


def test_art34_termination_is_final() -> None:
    sub = active()
    sub.terminate(reason="data leaked", by=OP_ADMIN)
    assert sub.has_ended
    commands: list[Callable[[], None]] = [
        lambda: sub.terminate(reason="again", by=OP_ADMIN),
        lambda: sub.reinstate(reason="oops", by=OP_ADMIN),
        lambda: sub.expire(at=at(END + timedelta(days=10)), by=OP_ADMIN),
    ]
    for command in commands:
        with pytest.raises(InvalidState):
            command()
    assert sub.status is SubscriptionStatus.TERMINATED


def test_art22_expires_only_after_the_last_day_of_the_term() -> None:
    sub = active()
    with pytest.raises(TermNotOver):
        sub.expire(at=at(END, hour=23), by=OP_ADMIN)
    assert not sub.is_due_to_expire(at(END, hour=23))
    sub.expire(at=at(END + timedelta(days=1), hour=0), by=OP_ADMIN)
    assert sub.status is SubscriptionStatus.EXPIRED and sub.has_ended


def test_art22_a_pending_or_suspended_subscription_also_expires() -> None:
    pending = subscription()
    pending.expire(at=at(END + timedelta(days=1)), by=OP_ADMIN)
    assert pending.status is SubscriptionStatus.EXPIRED
    suspended = active()
    suspended.suspend(reason="x", by=OP_ADMIN)
    suspended.expire(at=at(END + timedelta(days=1)), by=OP_ADMIN)
    assert suspended.status is SubscriptionStatus.EXPIRED


def test_art23_entitlement_change_is_an_event_with_a_reason() -> None:
    sub = active()
    bigger = Entitlements(200, 20_000, 2.0)
    with pytest.raises(InvalidInput) as error:
        sub.change_entitlements(entitlements=bigger, reason="", by=OP_ADMIN)
    assert error.value.field == "reason"
    with pytest.raises(InvalidInput) as error:
        sub.change_entitlements(entitlements=ENTITLEMENTS, reason="same", by=OP_ADMIN)
    assert error.value.field == "entitlements"
    version = sub.version
    sub.change_entitlements(entitlements=bigger, reason="upgraded plan", by=OP_ADMIN)
    assert sub.entitlements == bigger and sub.version == version + 1


# -- state machine ---------------------------------------------------------------------------
ACTORS = [UNIT_ADMIN, ANALYST, OP_ADMIN, MANAGER]


class SubscriptionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sub = subscription()
        self.was_active = False
        self.ended: SubscriptionStatus | None = None

    def attempt(self, command: Any) -> bool:
        before = (self.sub.status, self.sub.version)
        try:
            command()
        except DomainError:
            assert (self.sub.status, self.sub.version) == before
            return False
        return True

    @rule(kind=st.sampled_from(AgreementKind), actor=st.sampled_from(ACTORS))
    def sign(self, kind: AgreementKind, actor: Actor) -> None:
        self.attempt(lambda: self.sub.sign(kind=kind, by=actor))

    @rule()
    def activate(self) -> None:
        if self.attempt(lambda: self.sub.activate(by=OP_ADMIN)):
            self.was_active = True

    @rule()
    def suspend(self) -> None:
        self.attempt(lambda: self.sub.suspend(reason="r", by=OP_ADMIN))

    @rule()
    def reinstate(self) -> None:
        self.attempt(lambda: self.sub.reinstate(reason="r", by=OP_ADMIN))

    @rule()
    def terminate(self) -> None:
        self.attempt(lambda: self.sub.terminate(reason="r", by=OP_ADMIN))

    @rule(days=st.integers(-400, 400))
    def expire(self, days: int) -> None:
        day = END + timedelta(days=days)
        if self.attempt(lambda: self.sub.expire(at=at(day), by=OP_ADMIN)):
            assert day > END

    @rule(q=st.integers(0, 5))
    def change(self, q: int) -> None:
        new = Entitlements(q, 1, 1.0)
        self.attempt(lambda: self.sub.change_entitlements(entitlements=new, reason="r", by=OP_ADMIN))

    @invariant()
    def active_only_when_fully_signed(self) -> None:
        if self.sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED):
            assert self.sub.missing_signatures == []
            assert self.was_active

    @invariant()
    def flags_agree_with_status(self) -> None:
        assert self.sub.is_active == (self.sub.status is SubscriptionStatus.ACTIVE)
        assert self.sub.has_ended == (self.sub.status in (SubscriptionStatus.EXPIRED, SubscriptionStatus.TERMINATED))

    @invariant()
    def ended_is_final(self) -> None:
        if self.ended is not None:
            assert self.sub.status is self.ended
        elif self.sub.has_ended:
            self.ended = self.sub.status

    @invariant()
    def signatures_are_by_the_right_people(self) -> None:
        for agreement in self.sub.agreements.values():
            assert agreement.signed_by_unit in ("", "alice")
            assert agreement.signed_by_operator in ("", "oscar")


TestSubscriptionMachine = SubscriptionMachine.TestCase
