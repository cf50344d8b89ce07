"""Data product rules (art. 6, 14, 22, 24, 27, 35 and the national rules), without a store."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.catalog import DuplicateVersion, FieldSpec, FieldType, Grade, Openness, SourceNotOperable
from domain.errors import DomainError, InvalidInput, InvalidState, SeparationOfDuties
from domain.identity import Actor, Role
from domain.pricing import PriceAboveCap, PriceCapMissing, PricePlan, PurposeClass
from domain.products import (
    DataProduct,
    DeliveryMode,
    ExpertRecommendation,
    ListingIncomplete,
    ProductHasNoVersion,
    ProductStatus,
    RowLevelDeliveryNotAllowed,
    SourceFacts,
    SourceNotApproved,
    SupplyNotConsented,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)
PM = Actor("pm", Role.PRODUCT_MANAGER)
PM2 = Actor("pm2", Role.PRODUCT_MANAGER)
REVIEWER = Actor("reviewer", Role.COMPLIANCE_REVIEWER)
ADMIN = Actor("admin", Role.OPERATOR_ADMIN)
EXPERT_CLERK = Actor("bureau", Role.SUPERVISOR)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def facts(n: int = 1, **overrides: Any) -> SourceFacts:
    values: dict[str, Any] = {
        "resource_id": UUID(int=n), "provider_id": UUID(int=100 + n), "grade": Grade.GENERAL_2,
        "openness": Openness.UNCONDITIONAL, "personal_fields": (), "consent_granted": True, "approved": True,
    }
    values.update(overrides)
    return SourceFacts(**values)


OUTPUT = [
    FieldSpec("district", FieldType.CATEGORY, "District"),
    FieldSpec("consumption_m3", FieldType.FLOAT, "Total consumption"),
]


def build(sources: list[SourceFacts] | None = None, **overrides: Any) -> DataProduct:
    values: dict[str, Any] = {
        "name": "District water use", "description": "Monthly use per district", "category": "utilities",
        "sources": sources if sources is not None else [facts()], "fields": OUTPUT,
        "delivery_modes": ["sandbox_aggregate"],
    }
    values.update(overrides)
    return DataProduct.create(by=PM, **values)


def approved(**overrides: Any) -> DataProduct:
    product = build(**overrides)
    product.register_version(content_hash=sha("v1"), row_count=10, at=AT, by=PM)
    product.submit_for_review(sources=product.sources, by=PM)
    product.review(approved=True, reason="", by=REVIEWER)
    return product


def plan(price: str = "5.00", plan_id: str = "basic") -> PricePlan:
    return PricePlan.parse({"plan_id": plan_id, "name": "Basic", "billing_unit": "per_call",
                            "tiers": [{"up_to": None, "unit_price": price}]})


def listed() -> DataProduct:
    product = approved()
    product.set_price_cap(cap="10.00", reason="authority", by=ADMIN)
    product.set_plan(plan=plan(), reason="first offer", by=PM)
    product.list_on_storefront(by=PM)
    return product


def state(aggregate: Any) -> dict[str, Any]:
    return copy.deepcopy(vars(aggregate))


# -- building (art. 12, 22 and the grading rules) --------------------------------------------------


def test_art22_product_is_a_draft_with_its_builder_recorded() -> None:
    product = build()
    assert product.status is ProductStatus.DRAFT and not product.is_listed
    assert product.builder_id == "pm" and product.id == DataProduct.create_id("District water use")
    assert product.field_names == ("district", "consumption_m3")
    assert product.delivery_modes == (DeliveryMode.SANDBOX_AGGREGATE,)


def test_art22_product_needs_at_least_one_source() -> None:
    with pytest.raises(InvalidInput) as info:
        build(sources=[])
    assert info.value.field == "sources"


def test_art22_same_source_twice_is_refused() -> None:
    with pytest.raises(InvalidInput):
        build(sources=[facts(1), facts(1)])


def test_art10_product_only_from_bureau_approved_sources() -> None:
    with pytest.raises(SourceNotApproved):
        build(sources=[facts(1), facts(2, approved=False)])


@pytest.mark.parametrize(
    "bad",
    [{"openness": Openness.NOT_OPEN}, {"grade": Grade.CORE}, {"grade": Grade.IMPORTANT}],
    ids=["not_open", "core", "important"],
)
def test_art12_not_open_core_and_important_sources_are_not_operable(bad: dict[str, Any]) -> None:
    with pytest.raises(SourceNotOperable):
        build(sources=[facts(1), facts(2, **bad)])


@given(st.lists(st.sampled_from([Grade.GENERAL_1, Grade.GENERAL_2, Grade.GENERAL_3, Grade.GENERAL_4]),
                min_size=1, max_size=5))
def test_art12_product_grade_is_the_strictest_source_grade(grades: list[Grade]) -> None:
    product = build(sources=[facts(i + 1, grade=g) for i, g in enumerate(grades)])
    assert product.grade == max(grades)


def test_art14_draft_may_exist_before_consent_but_not_be_reviewed_without_it() -> None:
    product = build(sources=[facts(1, consent_granted=False)])
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    before = state(product)
    with pytest.raises(SupplyNotConsented) as info:
        product.submit_for_review(sources=[facts(1, consent_granted=False)], by=PM)
    assert info.value.ids["resource"] == str(UUID(int=1))
    assert state(product) == before
    product.submit_for_review(sources=[facts(1)], by=PM)
    assert product.status is ProductStatus.IN_REVIEW and product.sources[0].consent_granted


def test_art14_submission_facts_must_be_exactly_the_products_sources() -> None:
    product = build(sources=[facts(1), facts(2)])
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    with pytest.raises(InvalidInput) as info:
        product.submit_for_review(sources=[facts(1), facts(3)], by=PM)
    assert info.value.field == "sources"


def test_art10_source_withdrawn_from_approval_blocks_submission() -> None:
    product = build()
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    with pytest.raises(SourceNotApproved):
        product.submit_for_review(sources=[facts(1, approved=False)], by=PM)


def test_art35_output_column_named_like_a_personal_source_column_is_personal() -> None:
    fields = [*OUTPUT, FieldSpec("holder_name", FieldType.STRING, "Holder")]
    product = build(sources=[facts(1, personal_fields=["holder_name"])], fields=fields)
    assert product.personal_fields == ("holder_name",)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "x"}, "name"),
        ({"description": ""}, "description"),
        ({"category": None}, "category"),
        ({"fields": []}, "fields"),
        ({"delivery_modes": []}, "delivery_modes"),
        ({"delivery_modes": ["email"]}, "delivery_modes"),
        ({"delivery_modes": ["sandbox_aggregate", "sandbox_aggregate"]}, "delivery_modes"),
        ({"sources": "all"}, "sources"),
    ],
)
def test_art22_build_input_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        build(**overrides)
    assert info.value.field == field


# -- row-level delivery (art. 22, 35) ------------------------------------------------------------


def test_art22_row_level_file_for_open_low_grade_non_personal_data() -> None:
    product = build(sources=[facts(1, grade=Grade.GENERAL_1), facts(2)],
                    delivery_modes=["sandbox_aggregate", "row_level_file"])
    assert DeliveryMode.ROW_LEVEL_FILE in product.delivery_modes


@pytest.mark.parametrize(
    ("sources", "fields"),
    [
        ([facts(1), facts(2, openness=Openness.CONDITIONAL)], OUTPUT),
        ([facts(1, grade=Grade.GENERAL_3)], OUTPUT),
        ([facts(1, personal_fields=["holder_name"])], [*OUTPUT, FieldSpec("holder_name", FieldType.STRING, "H")]),
        ([facts(1)], [*OUTPUT, FieldSpec("id_number", FieldType.STRING, "ID", personal=True)]),
    ],
    ids=["conditional_source", "general_3", "propagated_personal_field", "declared_personal_field"],
)
def test_art22_art35_row_level_file_refused(sources: list[SourceFacts], fields: list[FieldSpec]) -> None:
    with pytest.raises(RowLevelDeliveryNotAllowed):
        build(sources=sources, fields=fields, delivery_modes=["row_level_file"])


@given(
    st.sampled_from([Grade.GENERAL_1, Grade.GENERAL_2, Grade.GENERAL_3, Grade.GENERAL_4]),
    st.sampled_from([Openness.UNCONDITIONAL, Openness.CONDITIONAL]),
    st.booleans(),
)
def test_art22_art35_row_level_allowed_exactly_for_open_general_1_2_non_personal(
    grade: Grade, openness: Openness, personal: bool
) -> None:
    fields = [*OUTPUT, FieldSpec("holder", FieldType.STRING, "H", personal=personal)]
    allowed = openness is Openness.UNCONDITIONAL and grade in (Grade.GENERAL_1, Grade.GENERAL_2) and not personal
    try:
        build(sources=[facts(1, grade=grade, openness=openness)], fields=fields, delivery_modes=["row_level_file"])
    except RowLevelDeliveryNotAllowed:
        assert not allowed
    else:
        assert allowed


# -- versions and compliance review (art. 16, 22, 28-32) --------------------------------------------


def test_art22_review_needs_a_version() -> None:
    product = build()
    with pytest.raises(ProductHasNoVersion):
        product.submit_for_review(sources=product.sources, by=PM)


def test_art22_builder_cannot_review_own_product() -> None:
    product = build()
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    product.submit_for_review(sources=product.sources, by=PM)
    builder_as_reviewer = Actor("pm", Role.COMPLIANCE_REVIEWER)
    before = state(product)
    with pytest.raises(SeparationOfDuties):
        product.review(approved=True, reason="", by=builder_as_reviewer)
    assert state(product) == before
    product.review(approved=True, reason="", by=REVIEWER)
    assert product.status is ProductStatus.APPROVED and product.reviewer_id == "reviewer"


def test_art22_rejection_needs_reason_and_product_may_be_resubmitted() -> None:
    product = build()
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    product.submit_for_review(sources=product.sources, by=PM)
    with pytest.raises(InvalidInput):
        product.review(approved=False, reason="", by=REVIEWER)
    product.review(approved=False, reason="suppress small cells", by=REVIEWER)
    assert product.status is ProductStatus.REJECTED and product.review_reason == "suppress small cells"
    product.register_version(content_hash=sha("v2"), row_count=1, at=AT, by=PM)
    product.submit_for_review(sources=product.sources, by=PM)
    assert product.status.value == "in_review"


def test_art22_no_new_version_while_in_review_and_no_duplicate_content() -> None:
    product = build()
    product.register_version(content_hash=sha("v1"), row_count=1, at=AT, by=PM)
    with pytest.raises(DuplicateVersion):
        product.register_version(content_hash=sha("v1"), row_count=2, at=AT, by=PM)
    product.submit_for_review(sources=product.sources, by=PM)
    with pytest.raises(InvalidState):
        product.register_version(content_hash=sha("v2"), row_count=1, at=AT, by=PM)


def test_art22_new_version_of_listed_product_returns_it_to_review_and_off_the_shelf() -> None:
    product = listed()
    product.register_version(content_hash=sha("v2"), row_count=11, at=AT, by=PM)
    assert product.status is ProductStatus.IN_REVIEW and not product.is_listed
    assert [v.number for v in product.versions] == [1, 2]


# -- listing (art. 7, 24) ---------------------------------------------------------------------------


def test_art22_listing_requires_compliance_approval() -> None:
    product = build()
    with pytest.raises(InvalidState):
        product.list_on_storefront(by=PM)


def test_art24_listing_requires_cap_and_plan() -> None:
    product = approved()
    with pytest.raises(ListingIncomplete, match="a price cap and a price plan"):
        product.list_on_storefront(by=PM)
    product.set_price_cap(cap="10", reason="authority", by=ADMIN)
    with pytest.raises(ListingIncomplete, match="a price plan"):
        product.list_on_storefront(by=PM)
    product.set_plan(plan=plan(), reason="offer", by=PM)
    product.list_on_storefront(by=PM)
    assert product.is_listed


def test_art24_unlisting_needs_reason_and_a_listed_product() -> None:
    product = listed()
    with pytest.raises(InvalidInput):
        product.unlist(reason="", by=PM)
    product.unlist(reason="source under correction", by=PM)
    assert product.status is ProductStatus.APPROVED and product.unlist_reason == "source under correction"
    with pytest.raises(InvalidState):
        product.unlist(reason="again", by=PM)


# -- prices (art. 24) ------------------------------------------------------------------------------


def test_art24_plan_needs_a_cap_first() -> None:
    product = build()
    with pytest.raises(PriceCapMissing):
        product.set_plan(plan=plan(), reason="offer", by=PM)


def test_art24_price_above_cap_is_refused_naming_plan_tier_and_cap() -> None:
    product = build()
    product.set_price_cap(cap="4.00", reason="authority", by=ADMIN)
    before = state(product)
    with pytest.raises(PriceAboveCap) as info:
        product.set_plan(plan=plan("4.01"), reason="offer", by=PM)
    assert (info.value.ids["plan"], info.value.ids["tier"], info.value.ids["cap"]) == ("basic", "1", "4.00")
    assert state(product) == before


def test_art24_cap_cannot_drop_below_an_existing_plan_until_the_plan_changes() -> None:
    product = build()
    product.set_price_cap(cap="10.00", reason="authority", by=ADMIN)
    product.set_plan(plan=plan("8.00"), reason="offer", by=PM)
    with pytest.raises(PriceAboveCap):
        product.set_price_cap(cap="7.00", reason="lower cap", by=ADMIN)
    assert product.price_cap == Decimal("10.00")
    product.set_plan(plan=plan("7.00"), reason="follow the new cap", by=PM)
    product.set_price_cap(cap="7.00", reason="lower cap", by=ADMIN)
    assert product.price_cap == Decimal("7.00") and product.plans["basic"].tiers[0].unit_price == Decimal("7.00")


def test_art24_price_changes_need_a_reason() -> None:
    product = build()
    with pytest.raises(InvalidInput) as info:
        product.set_price_cap(cap="1", reason=" ", by=ADMIN)
    assert info.value.field == "reason"


def test_art24_retiring_plans() -> None:
    product = listed()
    with pytest.raises(InvalidInput) as info:
        product.retire_plan(plan_id="gold", reason="x", by=PM)
    assert info.value.field == "plan_id"
    with pytest.raises(InvalidState, match="only plan"):
        product.retire_plan(plan_id="basic", reason="x", by=PM)
    product.set_plan(plan=plan("3.00", "bulk"), reason="bulk offer", by=PM)
    product.retire_plan(plan_id="basic", reason="replaced by bulk", by=PM)
    assert list(product.plans) == ["bulk"]


@pytest.mark.parametrize("purpose", [PurposeClass.PUBLIC_GOVERNANCE, "public_welfare"])
def test_art24_public_governance_and_welfare_quotes_are_free(purpose: Any) -> None:
    assert listed().quote("basic", purpose, 1000) == Decimal("0.00")


def test_art24_commercial_and_industry_quotes_charge_the_plan() -> None:
    product = listed()
    assert product.quote("basic", "commercial", 3) == Decimal("15.00")
    assert product.quote("basic", PurposeClass.INDUSTRY, 0) == Decimal("0.00")
    with pytest.raises(InvalidInput) as info:
        product.quote("basic", "private", 1)
    assert info.value.field == "purpose"
    with pytest.raises(InvalidInput):
        product.quote("gold", "commercial", 1)


@given(
    cap=st.decimals(min_value=0, max_value=100, places=2),
    prices=st.lists(st.decimals(min_value=0, max_value=200, places=2), min_size=1, max_size=3),
    quantity=st.integers(min_value=0, max_value=500),
)
def test_art24_any_accepted_plan_quotes_at_most_cap_times_quantity(
    cap: Decimal, prices: list[Decimal], quantity: int
) -> None:
    product = build()
    product.set_price_cap(cap=cap, reason="authority", by=ADMIN)
    bounds = [10 * (i + 1) for i in range(len(prices) - 1)] + [None]
    tiers = [{"up_to": b, "unit_price": p} for b, p in zip(bounds, prices, strict=True)]
    try:
        product.set_plan(plan={"plan_id": "p", "name": "P", "billing_unit": "per_call", "tiers": tiers},
                         reason="offer", by=PM)
    except PriceAboveCap:
        assert max(prices) > cap
        return
    assert product.quote("p", "commercial", quantity) <= cap * quantity


# -- showcases and expert opinions (art. 6, 27) ----------------------------------------------------


def test_art27_showcases_only_on_listed_products() -> None:
    product = approved()
    with pytest.raises(InvalidState):
        product.add_showcase(title="Leak detection", unit_name="Acme", summary="Found leaks", by=PM)
    product = listed()
    product.add_showcase(title="Leak detection", unit_name="Acme", summary="Found leaks", by=PM)
    assert product.showcases[0].unit_name == "Acme"
    with pytest.raises(InvalidInput) as info:
        product.add_showcase(title="", unit_name="Acme", summary="s", by=PM)
    assert info.value.field == "title"


def test_art6_expert_opinion_recorded_with_recommendation() -> None:
    product = build()
    product.add_expert_opinion(expert="Prof. Wang", opinion="Aggregate to district level",
                               recommendation="approve_with_conditions", by=EXPERT_CLERK)
    assert product.expert_opinions[0].recommendation is ExpertRecommendation.APPROVE_WITH_CONDITIONS
    assert product.expert_opinions[0].recorded_by == "bureau"
    with pytest.raises(InvalidInput) as info:
        product.add_expert_opinion(expert="Prof. Wang", opinion="x", recommendation="maybe", by=EXPERT_CLERK)
    assert info.value.field == "recommendation"


# -- state machine: no command sequence reaches an invalid product -------------------------------


class DataProductMachine(RuleBasedStateMachine):
    """Random lifecycle and pricing commands; refused commands change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.consented = False
        self.product = build(sources=[facts(1, consent_granted=False)])
        self.approved_versions: list[int] = []
        self.counter = 0

    @initialize(consented=st.booleans(), priced=st.booleans())
    def start(self, consented: bool, priced: bool) -> None:
        """Half the runs start consented and priced, so listing (and what follows it) is reached often."""
        self.consented = consented
        if priced:
            self.product.set_price_cap(cap="10.00", reason="authority", by=ADMIN)
            self.product.set_plan(plan=plan("5.00", "a"), reason="offer", by=PM)

    def attempt(self, command: Any) -> bool:
        self.product.collect_events()  # keeps the copied state small; a refused command must add none
        before = state(self.product)
        try:
            command()
        except DomainError:
            assert state(self.product) == before
            return False
        return True

    @rule()
    def provider_consents(self) -> None:
        self.consented = True

    @rule()
    def walk_to_the_storefront(self) -> None:
        """The happy path from wherever the product is, so later rules act on listed products too."""
        self.consented = True
        p = self.product
        if not p.versions or p.status is ProductStatus.REJECTED:
            self.counter += 1
            self.register_version(duplicate=False)
        self.submit()
        self.review(approved=True, reviewer=REVIEWER)
        if p.price_cap is None:
            self.set_cap(Decimal("10.00"))
        if not p.plans and p.price_cap is not None:
            self.set_plan(p.price_cap, "a")
        self.list_product()
        assert p.is_listed

    @rule(duplicate=st.booleans())
    def register_version(self, duplicate: bool) -> None:
        if not duplicate:
            self.counter += 1
        was_listed_or_approved = self.product.is_compliance_approved
        done = self.attempt(
            lambda: self.product.register_version(content_hash=sha(str(self.counter)), row_count=1, at=AT, by=PM)
        )
        if done and was_listed_or_approved:
            assert self.product.status is ProductStatus.IN_REVIEW

    @rule()
    def submit(self) -> None:
        done = self.attempt(
            lambda: self.product.submit_for_review(sources=[facts(1, consent_granted=self.consented)], by=PM)
        )
        if done:
            assert self.consented

    @rule(approved=st.booleans(), reviewer=st.sampled_from([REVIEWER, Actor("pm", Role.COMPLIANCE_REVIEWER)]))
    def review(self, approved: bool, reviewer: Actor) -> None:
        if self.attempt(lambda: self.product.review(approved=approved, reason="because", by=reviewer)):
            assert reviewer.user_id != self.product.builder_id
            if approved:
                self.approved_versions.append(len(self.product.versions))

    @rule(cap=st.decimals(min_value=0, max_value=20, places=2))
    def set_cap(self, cap: Decimal) -> None:
        self.attempt(lambda: self.product.set_price_cap(cap=cap, reason="authority", by=ADMIN))

    @rule(price=st.decimals(min_value=0, max_value=20, places=2), plan_id=st.sampled_from(["a", "b"]))
    def set_plan(self, price: Decimal, plan_id: str) -> None:
        self.attempt(lambda: self.product.set_plan(plan=plan(str(price), plan_id), reason="offer", by=PM))

    @rule(plan_id=st.sampled_from(["a", "b"]))
    def retire_plan(self, plan_id: str) -> None:
        self.attempt(lambda: self.product.retire_plan(plan_id=plan_id, reason="retired", by=PM))

    @rule()
    def list_product(self) -> None:
        self.attempt(lambda: self.product.list_on_storefront(by=PM))

    @rule()
    def unlist_product(self) -> None:
        self.attempt(lambda: self.product.unlist(reason="pause", by=PM))

    @invariant()
    def listed_only_when_reviewed_priced_and_capped(self) -> None:
        p = self.product
        if p.is_listed:
            assert p.reviewer_id is not None and p.reviewer_id != p.builder_id
            assert p.price_cap is not None and p.plans
            # the approval covers the current version: nothing is listed unreviewed
            assert self.approved_versions and self.approved_versions[-1] == len(p.versions)

    @invariant()
    def prices_never_above_cap(self) -> None:
        p = self.product
        if p.plans:
            assert p.price_cap is not None
            assert all(t.unit_price <= p.price_cap for plan in p.plans.values() for t in plan.tiers)

    @invariant()
    def reviewed_states_have_a_consented_version(self) -> None:
        p = self.product
        if p.status is not ProductStatus.DRAFT:
            assert p.versions and all(s.consent_granted for s in p.sources)


DataProductMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)
TestArt22DataProductStateMachine = DataProductMachine.TestCase
