"""Rules of demand applications and the demand board (art. 6, 19-22)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.demand import (
    MAX_PERIOD_YEARS,
    AlreadySeconded,
    ApplicationNotApproved,
    DemandApplication,
    DemandPost,
    DemandStatus,
    ExpertOpinionRequired,
    FieldNotInProduct,
    PostStatus,
    ProductNotAvailable,
    ProductNotInScope,
    RiskLevel,
    RiskNotAssessed,
    ScopeItem,
    add_years,
    check_period,
    parse_date,
    parse_scope,
)
from domain.errors import DomainError, InvalidInput, InvalidState, PermissionDenied, SeparationOfDuties
from domain.identity import Actor, Role
from domain.pricing import PurposeClass
from domain.products import ExpertRecommendation

UNIT = UUID("00000000-0000-4000-8000-000000000001")
OTHER_UNIT = UUID("00000000-0000-4000-8000-000000000002")
PRODUCT = UUID("00000000-0000-4000-8000-0000000000a1")
UNLISTED = UUID("00000000-0000-4000-8000-0000000000a2")
FILER = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT)
UNIT_ADMIN = Actor("alice", Role.UNIT_ADMIN, unit_id=UNIT)
OTHER = Actor("olga", Role.UNIT_ADMIN, unit_id=OTHER_UNIT)
REVIEWER = Actor("rita", Role.COMPLIANCE_REVIEWER)
OP_ADMIN = Actor("oscar", Role.OPERATOR_ADMIN)
MANAGER = Actor("pm", Role.PRODUCT_MANAGER)
TODAY = date(2025, 3, 10)
AVAILABLE = {PRODUCT: ("district", "month", "trips")}
SCENARIO = "Plan bus routes in Kundulun district from monthly trip counts"


def file_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        unit_id=UNIT,
        scenario=SCENARIO,
        purpose="route planning",
        purpose_class="public_welfare",
        scope=[{"product_id": str(PRODUCT), "fields": ["district", "trips"]}],
        period_start=date(2025, 4, 1),
        period_end=date(2026, 3, 31),
        security_controls=["access only from the sandbox", "named analysts only"],
        available=AVAILABLE,
        today=TODAY,
        by=FILER,
    )
    args.update(overrides)
    return args


def filed(**overrides: Any) -> DemandApplication:
    return DemandApplication.file(**file_args(**overrides))


def assessed(level: RiskLevel = RiskLevel.LOW) -> DemandApplication:
    application = filed()
    application.assess_risk(level=level, notes="aggregates only", by=REVIEWER)
    return application


# -- art. 21: every field of the application is required --------------------------------
def test_art21_a_complete_application_is_filed() -> None:
    application = filed()
    assert application.status is DemandStatus.SUBMITTED
    assert application.purpose_class is PurposeClass.PUBLIC_WELFARE
    assert application.scope == [ScopeItem(PRODUCT, ("district", "trips"))]
    assert application.filed_by == "ana"
    assert application.security_controls == ["access only from the sandbox", "named analysts only"]
    assert application.filed_on == TODAY


@pytest.mark.parametrize(
    "field, value",
    [
        ("scenario", ""),
        ("scenario", None),
        ("purpose", "   "),
        ("purpose_class", "piracy"),
        ("purpose_class", None),
        ("scope", []),
        ("scope", None),
        ("period_start", None),
        ("period_end", None),
        ("security_controls", []),
        ("security_controls", None),
    ],
)
def test_art21_each_field_is_required_and_named(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as error:
        filed(**{field: value})
    assert error.value.field == field


def test_art21_scenario_is_required_to_describe_the_use() -> None:
    with pytest.raises(InvalidInput) as error:
        filed(scenario="bus routes")
    assert error.value.field == "scenario"
    assert "at least 20" in error.value.message


def test_art21_an_empty_security_control_is_named() -> None:
    with pytest.raises(InvalidInput) as error:
        filed(security_controls=["sandbox only", " "])
    assert error.value.field == "security_controls[1]"


def test_art21_scope_product_must_be_listed() -> None:
    with pytest.raises(ProductNotAvailable) as error:
        filed(scope=[{"product_id": UNLISTED, "fields": ["x"]}])
    assert error.value.field == "scope[0].product_id"
    assert error.value.code == "product_not_available"


def test_art21_scope_fields_must_exist_in_the_product() -> None:
    with pytest.raises(FieldNotInProduct) as error:
        filed(scope=[{"product_id": PRODUCT, "fields": ["district", "id_number"]}])
    assert error.value.field == "scope[0].fields"
    assert "id_number" in error.value.message


@pytest.mark.parametrize(
    "scope, field",
    [
        ([{"product_id": PRODUCT, "fields": []}], "scope[0].fields"),
        ([{"product_id": PRODUCT}], "scope[0].fields"),
        ([{"fields": ["district"]}], "scope[0].product_id"),
        ([{"product_id": "not-an-id", "fields": ["district"]}], "scope[0].product_id"),
        ([{"product_id": PRODUCT, "fields": ["trips", "trips"]}], "scope[0].fields"),
        ([{"product_id": PRODUCT, "fields": "trips"}], "scope[0].fields"),
        (
            [{"product_id": PRODUCT, "fields": ["trips"]}, {"product_id": PRODUCT, "fields": ["month"]}],
            "scope[1]",
        ),
        (["trips"], "scope[0]"),
        ("trips", "scope"),
    ],
)
def test_art21_malformed_scope_names_the_item(scope: object, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        filed(scope=scope)
    assert error.value.field == field


def test_art21_period_may_not_start_before_filing() -> None:
    with pytest.raises(InvalidInput) as error:
        filed(period_start=TODAY - timedelta(days=1))
    assert error.value.field == "period_start"


def test_art21_period_must_end_after_it_starts() -> None:
    with pytest.raises(InvalidInput) as error:
        filed(period_start=date(2025, 4, 1), period_end=date(2025, 4, 1))
    assert error.value.field == "period_end"


def test_art21_period_is_at_most_three_years() -> None:
    assert filed(period_start=date(2025, 4, 1), period_end=date(2028, 4, 1)).period_end == date(2028, 4, 1)
    with pytest.raises(InvalidInput) as error:
        filed(period_start=date(2025, 4, 1), period_end=date(2028, 4, 2))
    assert error.value.field == "period_end"
    assert "3 years" in error.value.message


def test_art21_period_accepts_iso_text_but_not_times() -> None:
    assert filed(period_start="2025-04-01", period_end="2025-12-31").period_end == date(2025, 12, 31)
    with pytest.raises(InvalidInput) as error:
        parse_date("period_start", "01/04/2025")
    assert error.value.field == "period_start"
    from datetime import datetime

    with pytest.raises(InvalidInput):
        parse_date("period_start", datetime(2025, 4, 1, 12))


def test_art21_only_a_member_of_the_unit_files_for_it() -> None:
    for actor in (OTHER, OP_ADMIN, REVIEWER):
        with pytest.raises(PermissionDenied):
            filed(by=actor)


# -- period arithmetic (properties) ----------------------------------------------------
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@given(days, st.integers(1, 5))
def test_add_years_keeps_month_and_day_or_falls_back_to_28_february(day: date, years: int) -> None:
    later = add_years(day, years)
    assert later.year == day.year + years and later.month == day.month
    assert later.day == day.day or (day.month, day.day, later.day) == (2, 29, 28)
    assert 365 * years - 1 <= (later - day).days <= 366 * years


@given(days, st.integers(1, 3 * 366 + 5))
def test_art21_period_of_n_days_is_accepted_exactly_up_to_three_years(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    within = end <= add_years(start, MAX_PERIOD_YEARS)
    try:
        check_period(start, end, today=start)
    except InvalidInput as error:
        assert not within and error.field == "period_end"
    else:
        assert within


@given(days, days, days)
def test_check_period_never_accepts_a_period_before_today_or_reversed(today: date, start: date, end: date) -> None:
    try:
        check_period(start, end, today=today)
    except InvalidInput as error:
        assert error.field in ("period_start", "period_end")
    else:
        assert today <= start < end <= add_years(start, MAX_PERIOD_YEARS)


@given(
    st.lists(
        st.tuples(st.uuids(), st.lists(st.text(min_size=1, max_size=8).filter(str.strip), min_size=1, max_size=4)),
        max_size=4,
    )
)
def test_parse_scope_either_refuses_with_a_scope_field_or_keeps_every_item(raw: list[tuple[UUID, list[str]]]) -> None:
    value = [{"product_id": str(pid), "fields": names} for pid, names in raw]
    try:
        items = parse_scope(value)
    except InvalidInput as error:
        assert error.field.startswith("scope")
    else:
        assert [i.product_id for i in items] == [pid for pid, _ in raw]
        assert [list(i.fields) for i in items] == [[n.strip() for n in names] for _, names in raw]


def test_scope_item_normalises_lists_and_text_ids_from_json() -> None:
    item = ScopeItem(product_id=str(PRODUCT), fields=["a", "b"])  # type: ignore[arg-type]
    assert item == ScopeItem(PRODUCT, ("a", "b"))


# -- art. 22 and 6: risk, experts, decision -------------------------------------------
def test_art22_risk_is_assessed_by_a_compliance_reviewer() -> None:
    application = filed()
    for actor in (OP_ADMIN, FILER, MANAGER):
        with pytest.raises(PermissionDenied):
            application.assess_risk(level="low", notes="fine", by=actor)
    application.assess_risk(level="medium", notes="district-level counts", by=REVIEWER)
    assert application.status is DemandStatus.UNDER_REVIEW
    assert application.risk_level is RiskLevel.MEDIUM


def test_art22_risk_level_and_notes_are_required() -> None:
    application = filed()
    with pytest.raises(InvalidInput) as error:
        application.assess_risk(level="extreme", notes="x", by=REVIEWER)
    assert error.value.field == "level"
    with pytest.raises(InvalidInput) as error:
        application.assess_risk(level="low", notes="", by=REVIEWER)
    assert error.value.field == "notes"
    assert application.status is DemandStatus.SUBMITTED


def test_art22_decision_needs_a_risk_assessment_first() -> None:
    with pytest.raises(RiskNotAssessed) as error:
        filed().decide(approved=True, reason="ok", by=OP_ADMIN)
    assert error.value.code == "risk_not_assessed"


def test_art22_decider_cannot_be_filer() -> None:
    application = assessed()
    same_person = Actor(FILER.user_id, Role.OPERATOR_ADMIN)
    with pytest.raises(SeparationOfDuties):
        application.decide(approved=True, reason="mine", by=same_person)
    assert application.status is DemandStatus.UNDER_REVIEW


def test_art22_a_unit_cannot_decide() -> None:
    with pytest.raises(PermissionDenied):
        assessed().decide(approved=True, reason="ok", by=UNIT_ADMIN)


def test_art22_approval_records_decider_and_reason() -> None:
    application = assessed()
    application.decide(approved=True, reason="aggregates only, low risk", by=OP_ADMIN)
    assert application.is_approved
    assert (application.decided_by, application.decision_reason) == ("oscar", "aggregates only, low risk")
    application.check_approved()
    with pytest.raises(InvalidState):
        application.decide(approved=False, reason="again", by=OP_ADMIN)


def test_art22_rejection_is_final_and_not_approved() -> None:
    application = assessed()
    application.decide(approved=False, reason="scenario unclear", by=REVIEWER)
    assert application.status is DemandStatus.REJECTED
    with pytest.raises(ApplicationNotApproved):
        application.check_approved()


def test_art22_decision_reason_is_required() -> None:
    with pytest.raises(InvalidInput) as error:
        assessed().decide(approved=True, reason=" ", by=OP_ADMIN)
    assert error.value.field == "reason"


def test_art6_high_risk_needs_an_expert_opinion_before_approval() -> None:
    application = assessed(RiskLevel.HIGH)
    with pytest.raises(ExpertOpinionRequired):
        application.decide(approved=True, reason="ok", by=OP_ADMIN)
    application.add_expert_opinion(
        expert="Prof. Wang (expert committee)", opinion="acceptable with k >= 10",
        recommendation="approve_with_conditions", by=REVIEWER,
    )
    application.decide(approved=True, reason="per expert opinion", by=OP_ADMIN)
    assert application.is_approved


def test_art6_high_risk_may_be_rejected_without_an_expert() -> None:
    application = assessed(RiskLevel.HIGH)
    application.decide(approved=False, reason="too risky", by=OP_ADMIN)
    assert application.status is DemandStatus.REJECTED


def test_art6_expert_opinion_is_recorded_with_its_recommendation() -> None:
    application = filed()
    application.add_expert_opinion(expert="Dr. Li", opinion="fine", recommendation="approve", by=REVIEWER)
    (opinion,) = application.expert_opinions
    assert (opinion.expert, opinion.recommendation, opinion.recorded_by) == (
        "Dr. Li", ExpertRecommendation.APPROVE, "rita",
    )
    with pytest.raises(InvalidInput) as error:
        application.add_expert_opinion(expert="Dr. Li", opinion="fine", recommendation="maybe", by=REVIEWER)
    assert error.value.field == "recommendation"
    with pytest.raises(PermissionDenied):
        application.add_expert_opinion(expert="me", opinion="great", recommendation="approve", by=FILER)


def test_art21_unit_withdraws_before_decision_only() -> None:
    application = filed()
    with pytest.raises(PermissionDenied):
        application.withdraw(reason="not needed", by=OTHER)
    application.withdraw(reason="not needed", by=UNIT_ADMIN)
    assert application.status is DemandStatus.WITHDRAWN
    decided = assessed()
    decided.decide(approved=True, reason="ok", by=OP_ADMIN)
    with pytest.raises(InvalidState):
        decided.withdraw(reason="changed mind", by=FILER)


def test_art23_scope_for_names_a_product_outside_the_scope() -> None:
    application = filed()
    assert application.scope_for(PRODUCT).fields == ("district", "trips")
    with pytest.raises(ProductNotInScope):
        application.scope_for(UNLISTED)


# -- state machine: no command sequence reaches an invalid state -----------------------
class DemandApplicationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.application = filed()
        self.decided_or_withdrawn = False

    @rule(level=st.sampled_from(RiskLevel), actor=st.sampled_from([REVIEWER, OP_ADMIN, FILER]))
    def assess(self, level: RiskLevel, actor: Actor) -> None:
        try:
            self.application.assess_risk(level=level, notes="notes", by=actor)
        except DomainError:
            return
        assert not self.decided_or_withdrawn and actor is REVIEWER

    @rule(actor=st.sampled_from([REVIEWER, OP_ADMIN, FILER]))
    def opinion(self, actor: Actor) -> None:
        try:
            self.application.add_expert_opinion(expert="e", opinion="o", recommendation="approve", by=actor)
        except DomainError:
            return
        assert not self.decided_or_withdrawn

    @rule(
        approved=st.booleans(),
        actor=st.sampled_from([REVIEWER, OP_ADMIN, FILER, Actor("ana", Role.OPERATOR_ADMIN)]),
    )
    def decide(self, approved: bool, actor: Actor) -> None:
        before = self.application.status
        try:
            self.application.decide(approved=approved, reason="r", by=actor)
        except DomainError:
            assert self.application.status is before
            return
        assert before is DemandStatus.UNDER_REVIEW
        self.decided_or_withdrawn = True

    @rule(actor=st.sampled_from([FILER, UNIT_ADMIN, OTHER, OP_ADMIN]))
    def withdraw(self, actor: Actor) -> None:
        try:
            self.application.withdraw(reason="r", by=actor)
        except DomainError:
            return
        assert actor.unit_id == UNIT
        self.decided_or_withdrawn = True

    @precondition(lambda self: self.decided_or_withdrawn)
    @invariant()
    def final_states_are_final(self) -> None:
        assert self.application.status in (DemandStatus.APPROVED, DemandStatus.REJECTED, DemandStatus.WITHDRAWN)

    @invariant()
    def approval_follows_the_rules(self) -> None:
        a = self.application
        if a.status is DemandStatus.APPROVED:
            assert a.risk_level is not None
            assert a.decided_by not in ("", a.filed_by)
            assert a.risk_level is not RiskLevel.HIGH or a.expert_opinions
        if a.status is DemandStatus.SUBMITTED:
            assert a.risk_level is None


TestDemandApplicationMachine = DemandApplicationMachine.TestCase


# -- demand board (art. 19-20) ----------------------------------------------------------
def posted(**overrides: Any) -> DemandPost:
    args: dict[str, Any] = dict(
        unit_id=UNIT, title="Hourly air quality by street", description="For asthma alerts",
        data_wanted="PM2.5 by street and hour", purpose_class="public_welfare", by=FILER,
    )
    args.update(overrides)
    return DemandPost.post(**args)


@pytest.mark.parametrize("field", ["title", "description", "data_wanted", "purpose_class"])
def test_art19_post_fields_are_required(field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        posted(**{field: ""})
    assert error.value.field == field


def test_art19_only_a_member_posts_for_a_unit() -> None:
    with pytest.raises(PermissionDenied):
        posted(by=OTHER)
    with pytest.raises(PermissionDenied):
        posted(by=OP_ADMIN)


def test_art20_operator_responds_and_post_becomes_answered() -> None:
    post = posted()
    assert post.status.value == "open"
    with pytest.raises(PermissionDenied):
        post.respond(text="we have it", by=OTHER)
    post.respond(text="see product", product_id=PRODUCT, by=MANAGER)
    post.respond(text="and a new one soon", by=OP_ADMIN)
    assert post.status is PostStatus.ANSWERED
    assert [r.product_id for r in post.responses] == [PRODUCT, None]


def test_art19_other_units_second_once_each_and_the_poster_not_at_all() -> None:
    post = posted()
    post.second(unit_id=OTHER_UNIT, by=OTHER)
    assert post.interest == 2
    with pytest.raises(AlreadySeconded):
        post.second(unit_id=OTHER_UNIT, by=OTHER)
    with pytest.raises(InvalidInput):
        post.second(unit_id=UNIT, by=UNIT_ADMIN)
    with pytest.raises(PermissionDenied):
        post.second(unit_id=uuid4(), by=OTHER)
    assert post.interest == 2


def test_art20_a_closed_post_takes_no_responses_or_seconds() -> None:
    post = posted()
    with pytest.raises(PermissionDenied):
        post.close(reason="spam", by=OTHER)
    post.close(reason="met by a new product", by=UNIT_ADMIN)
    assert post.status is PostStatus.CLOSED
    with pytest.raises(InvalidState):
        post.respond(text="late", by=MANAGER)
    with pytest.raises(InvalidState):
        post.second(unit_id=OTHER_UNIT, by=OTHER)
    with pytest.raises(InvalidState):
        post.close(reason="again", by=OP_ADMIN)
