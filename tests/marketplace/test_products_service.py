"""Product and pricing use cases on real stores (SQLite and PostgreSQL): art. 6, 14, 22, 24, 27.

Every refused command is checked with ``refused``: the specific error, and no new event.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from domain.catalog import CatalogResource, DuplicateVersion, SourceNotOperable, SupplyStatus
from domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
    SeparationOfDuties,
)
from domain.identity import Actor, Role
from domain.pricing import BillingUnit, PriceAboveCap, PriceCapMissing, PriceStage
from domain.products import (
    DataProduct,
    DeliveryMode,
    ExpertRecommendation,
    ListingIncomplete,
    ProductHasNoVersion,
    ProductStatus,
    RowLevelDeliveryNotAllowed,
    SourceNotApproved,
    SupplyNotConsented,
)
from marketplace.bootstrap import Marketplace
from tests.scenario import (
    approved_product,
    approved_resource,
    basic_plan,
    built_product,
    default_fields,
    digest,
    listed_product,
    provider,
    provider_clerk,
    refused,
    staff,
)

# -- building (art. 12, 14, 22) ---------------------------------------------------------------------


def test_art14_build_product_drafts_and_requests_supply_in_one_save(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    water = approved_resource(mp, people, name="Meter readings")
    power = approved_resource(
        mp, people, name="Power use", grade="general_3", openness="conditional",
        source=provider(mp, people, name="Baotou Power", kind="power", staff_user="power-clerk"),
    )
    before = mp.app.recorder.max_notification_id() or 0
    pid = mp.products.build_product(
        people.product_manager, name="Utility use", description="Water and power use per district",
        category="utilities", source_ids=[water, str(power)], fields=default_fields(),
        delivery_modes=["sandbox_aggregate"],
    )
    assert (mp.app.recorder.max_notification_id() or 0) == before + 3  # Built + two SupplyRequested
    product = mp.products.get(DataProduct, pid)
    assert product.status is ProductStatus.DRAFT and product.builder_id == people.product_manager.user_id
    assert product.source_ids == (water, power)
    for rid in (water, power):
        assert mp.catalog.get(CatalogResource, rid).supply_status(pid) is SupplyStatus.PENDING


def test_art22_build_product_refusals_leave_store_unchanged(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    rid = approved_resource(mp, people)
    pid, clerk = provider(mp, people)
    unapproved = mp.catalog.compile_resource(
        clerk, provider_id=pid, name="Unreviewed", description="d", category="c", fields=default_fields(),
        grade="general_1", openness="unconditional", update_frequency="daily",
    )
    important = approved_resource(mp, people, name="Pipe network", grade="important")
    closed = approved_resource(mp, people, name="Closed data", openness="not_open")
    conditional = approved_resource(mp, people, name="Conditional data", openness="conditional")
    personal = approved_resource(mp, people, name="Accounts", personal=True)

    def build(**overrides: object) -> None:
        args: dict[str, object] = {
            "name": "Water use", "description": "d", "category": "utilities", "source_ids": [rid],
            "fields": default_fields(), "delivery_modes": ["sandbox_aggregate"],
        }
        args.update(overrides)
        mp.products.build_product(people.product_manager, **args)  # type: ignore[arg-type]

    mp.products.build_product(
        people.product_manager, name="Existing", description="d", category="c", source_ids=[rid],
        fields=default_fields(), delivery_modes=["sandbox_aggregate"],
    )
    with refused(mp, PermissionDenied):
        mp.products.build_product(people.reviewer, name="Water use", description="d", category="c",
                                  source_ids=[rid], fields=default_fields(), delivery_modes=["sandbox_aggregate"])
    with refused(mp, AlreadyExists):
        build(name="Existing")
    with refused(mp, NotFound, match=r"source_ids\[1\]"):
        build(source_ids=[rid, uuid4()])
    with refused(mp, InvalidInput) as info:
        build(source_ids=["garbage"])
    assert info.value.field == "source_ids[0]"
    with refused(mp, InvalidInput) as info:
        build(source_ids=[])
    assert info.value.field == "sources"
    with refused(mp, SourceNotApproved):
        build(source_ids=[rid, unapproved])
    with refused(mp, SourceNotOperable):
        build(source_ids=[rid, important])
    with refused(mp, SourceNotOperable):
        build(source_ids=[closed])
    with refused(mp, RowLevelDeliveryNotAllowed):
        build(source_ids=[rid, conditional], delivery_modes=["row_level_file"])
    with refused(mp, RowLevelDeliveryNotAllowed):
        build(source_ids=[personal], fields=default_fields(personal=True), delivery_modes=["row_level_file"])
    with refused(mp, InvalidInput) as info:
        build(delivery_modes=["email"])
    assert info.value.field == "delivery_modes"
    with refused(mp, InvalidInput) as info:
        build(fields=[])
    assert info.value.field == "fields"
    with refused(mp, InvalidInput) as info:
        build(name="")
    assert info.value.field == "name"


def test_art22_row_level_file_allowed_for_open_low_grade_non_personal(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people, grade="general_1", delivery_modes=["sandbox_aggregate", "row_level_file"])
    product = mp.products.get(DataProduct, pid)
    assert product.delivery_modes == (DeliveryMode.SANDBOX_AGGREGATE, DeliveryMode.ROW_LEVEL_FILE)


def test_art14_request_supply_again_after_refusal(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people, consent=False)
    rid = mp.products.get(DataProduct, pid).source_ids[0]
    clerk = provider_clerk(mp, rid)
    with refused(mp, AlreadyExists):  # still pending
        mp.products.request_supply(people.product_manager, pid, rid)
    mp.catalog.decide_supply(clerk, rid, product_id=pid, granted=False, reason="purpose unclear")
    other = approved_resource(mp, people, name="Unrelated")
    with refused(mp, InvalidInput) as info:
        mp.products.request_supply(people.product_manager, pid, other)
    assert info.value.field == "resource_id"
    with refused(mp, PermissionDenied):
        mp.products.request_supply(people.admin, pid, rid)
    with refused(mp, NotFound):
        mp.products.request_supply(people.product_manager, uuid4(), rid)
    mp.products.request_supply(people.product_manager, pid, rid)
    assert mp.catalog.get(CatalogResource, rid).supply_status(pid) is SupplyStatus.PENDING


# -- versions and compliance review (art. 14, 16, 22, 28-32) ----------------------------------------


def test_art14_submit_for_review_needs_version_and_every_providers_consent(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people, consent=False)
    rid = mp.products.get(DataProduct, pid).source_ids[0]
    with refused(mp, ProductHasNoVersion):
        mp.products.submit_for_review(people.product_manager, pid)
    mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v1"), row_count=10)
    with refused(mp, SupplyNotConsented):
        mp.products.submit_for_review(people.product_manager, pid)
    with refused(mp, PermissionDenied):
        mp.products.submit_for_review(people.reviewer, pid)
    with refused(mp, NotFound):
        mp.products.submit_for_review(people.product_manager, uuid4())
    mp.catalog.decide_supply(provider_clerk(mp, rid), rid, product_id=pid, granted=True, reason="")
    mp.products.submit_for_review(people.product_manager, pid)
    product = mp.products.get(DataProduct, pid)
    assert product.status is ProductStatus.IN_REVIEW and product.sources[0].consent_granted
    with refused(mp, InvalidState):
        mp.products.submit_for_review(people.product_manager, pid)


def test_art22_register_product_version_refusals(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people)
    mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v1"), row_count=10)
    with refused(mp, DuplicateVersion):
        mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v1"), row_count=1)
    with refused(mp, InvalidInput) as info:
        mp.products.register_product_version(people.product_manager, pid, content_hash="xyz", row_count=1)
    assert info.value.field == "content_hash"
    with refused(mp, PermissionDenied):
        mp.products.register_product_version(people.admin, pid, content_hash=digest("v2"), row_count=1)
    with refused(mp, NotFound):
        mp.products.register_product_version(people.product_manager, uuid4(), content_hash=digest("v2"), row_count=1)
    mp.products.submit_for_review(people.product_manager, pid)
    with refused(mp, InvalidState):
        mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v2"), row_count=1)


def test_art22_compliance_reviewer_is_not_the_builder(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people)
    mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v1"), row_count=10)
    with refused(mp, InvalidState):  # not submitted yet
        mp.products.review_compliance(people.reviewer, pid, approved=True, reason="")
    mp.products.submit_for_review(people.product_manager, pid)
    builder_reviewing = Actor(people.product_manager.user_id, Role.COMPLIANCE_REVIEWER)
    with refused(mp, SeparationOfDuties):
        mp.products.review_compliance(builder_reviewing, pid, approved=True, reason="")
    with refused(mp, PermissionDenied):
        mp.products.review_compliance(people.admin, pid, approved=True, reason="")
    with refused(mp, InvalidInput) as info:
        mp.products.review_compliance(people.reviewer, pid, approved=False, reason="")
    assert info.value.field == "reason"
    with refused(mp, NotFound):
        mp.products.review_compliance(people.reviewer, uuid4(), approved=True, reason="")
    mp.products.review_compliance(people.reviewer, pid, approved=False, reason="cells below 10 not suppressed")
    assert mp.products.get(DataProduct, pid).status is ProductStatus.REJECTED
    mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v2"), row_count=10)
    mp.products.submit_for_review(people.product_manager, pid)
    mp.products.review_compliance(people.reviewer, pid, approved=True, reason="")
    product = mp.products.get(DataProduct, pid)
    assert product.status is ProductStatus.APPROVED and product.reviewer_id == people.reviewer.user_id


# -- listing and prices (art. 7, 24) ---------------------------------------------------------------


def test_art24_listing_needs_cap_and_plan_and_prices_stay_under_cap(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = approved_product(mp, people)
    with refused(mp, ListingIncomplete):
        mp.products.list_product(people.product_manager, pid)
    with refused(mp, PriceCapMissing):
        mp.products.set_price_plan(people.product_manager, pid, plan=basic_plan(), reason="offer")
    with refused(mp, PermissionDenied):
        mp.products.set_price_cap(people.product_manager, pid, cap="50", reason="self-set cap")
    with refused(mp, InvalidInput) as info:
        mp.products.set_price_cap(people.admin, pid, cap="-1", reason="authority")
    assert info.value.field == "cap"
    with refused(mp, NotFound):
        mp.products.set_price_cap(people.admin, uuid4(), cap="50", reason="authority")
    mp.products.set_price_cap(people.admin, pid, cap="50", reason="authority approved cap")
    with refused(mp, PriceAboveCap) as above:
        mp.products.set_price_plan(people.product_manager, pid, plan=basic_plan(price="50.01"), reason="offer")
    assert above.value.ids["plan"] == "basic" and above.value.ids["cap"] == "50.00"
    with refused(mp, InvalidInput) as info:
        mp.products.set_price_plan(people.product_manager, pid, plan={**basic_plan(), "tiers": []}, reason="o")
    assert info.value.field == "tiers"
    with refused(mp, PermissionDenied):
        mp.products.set_price_plan(people.reviewer, pid, plan=basic_plan(), reason="offer")
    with refused(mp, InvalidInput) as info:
        mp.products.set_price_plan(people.product_manager, pid, plan=basic_plan(), reason="")
    assert info.value.field == "reason"
    mp.products.set_price_plan(
        people.product_manager, pid, reason="monthly access",
        plan=basic_plan(price="30", plan_id="monthly", billing_unit="per_period"),
    )
    with refused(mp, PriceAboveCap):  # lowering the cap below a plan on offer
        mp.products.set_price_cap(people.admin, pid, cap="20", reason="lower")
    with refused(mp, PermissionDenied):
        mp.products.list_product(people.reviewer, pid)
    mp.products.list_product(people.product_manager, pid)
    product = mp.products.get(DataProduct, pid)
    assert product.is_listed and product.price_cap == Decimal("50.00")
    plan = product.plans["monthly"]
    assert (plan.billing_unit, plan.period_months, plan.stage) == (BillingUnit.PER_PERIOD, 1, PriceStage.TRIAL)
    with refused(mp, InvalidState):
        mp.products.list_product(people.product_manager, pid)


def test_art24_retire_plan_and_quotes(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = listed_product(mp, people)
    assert mp.products.quote(people.admin, pid, plan_id="basic", purpose="commercial", quantity=4) == Decimal("40.00")
    assert mp.products.quote(people.admin, pid, plan_id="basic", purpose="public_welfare", quantity=4) == 0
    with refused(mp, InvalidInput) as info:
        mp.products.quote(people.admin, pid, plan_id="basic", purpose="commercial", quantity=-1)
    assert info.value.field == "quantity"
    with refused(mp, InvalidState):  # the only plan of a listed product
        mp.products.retire_price_plan(people.product_manager, pid, plan_id="basic", reason="end")
    with refused(mp, InvalidInput) as info:
        mp.products.retire_price_plan(people.product_manager, pid, plan_id="gold", reason="end")
    assert info.value.field == "plan_id"
    with refused(mp, PermissionDenied):
        mp.products.retire_price_plan(people.reviewer, pid, plan_id="basic", reason="end")
    mp.products.set_price_plan(
        people.admin, pid, reason="formal prices after a year of operation",
        plan={**basic_plan(price="8", plan_id="formal"), "stage": "formal"},
    )
    mp.products.retire_price_plan(people.product_manager, pid, plan_id="basic", reason="trial ended")
    product = mp.products.get(DataProduct, pid)
    assert list(product.plans) == ["formal"] and product.plans["formal"].stage is PriceStage.FORMAL
    with refused(mp, InvalidInput) as info:
        mp.products.quote(people.admin, pid, plan_id="basic", purpose="commercial", quantity=1)
    assert info.value.field == "plan_id"


def test_art22_new_version_of_listed_product_takes_it_off_the_shelf_until_reviewed(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = listed_product(mp, people)
    mp.products.register_product_version(people.product_manager, pid, content_hash=digest("v2"), row_count=300)
    product = mp.products.get(DataProduct, pid)
    assert product.status is ProductStatus.IN_REVIEW and not product.is_listed
    with refused(mp, InvalidState):
        mp.products.list_product(people.product_manager, pid)
    mp.products.review_compliance(people.reviewer, pid, approved=True, reason="")
    mp.products.list_product(people.admin, pid)
    assert mp.products.get(DataProduct, pid).is_listed


def test_art7_unlist_product(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = listed_product(mp, people)
    with refused(mp, InvalidInput) as info:
        mp.products.unlist_product(people.product_manager, pid, reason="")
    assert info.value.field == "reason"
    with refused(mp, PermissionDenied):
        mp.products.unlist_product(people.supervisor, pid, reason="x")
    with refused(mp, NotFound):
        mp.products.unlist_product(people.product_manager, uuid4(), reason="x")
    mp.products.unlist_product(people.product_manager, pid, reason="source under correction")
    assert mp.products.get(DataProduct, pid).status is ProductStatus.APPROVED
    with refused(mp, InvalidState):
        mp.products.unlist_product(people.product_manager, pid, reason="again")


# -- showcases and expert opinions (art. 6, 27) ------------------------------------------------------


def test_art27_add_showcase(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    draft = built_product(mp, people, name="Draft product")
    pid = listed_product(mp, people)
    with refused(mp, InvalidState):
        mp.products.add_showcase(people.product_manager, draft, title="t", unit_name="u", summary="s")
    with refused(mp, PermissionDenied):
        mp.products.add_showcase(people.reviewer, pid, title="t", unit_name="u", summary="s")
    with refused(mp, InvalidInput) as info:
        mp.products.add_showcase(people.product_manager, pid, title="t", unit_name="", summary="s")
    assert info.value.field == "unit_name"
    with refused(mp, NotFound):
        mp.products.add_showcase(people.product_manager, uuid4(), title="t", unit_name="u", summary="s")
    mp.products.add_showcase(people.admin, pid, title="Leak detection", unit_name="Acme Water Analytics",
                             summary="Found district leaks from consumption anomalies")
    assert mp.products.get(DataProduct, pid).showcases[0].title == "Leak detection"


def test_art6_add_expert_opinion(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = built_product(mp, people)
    with refused(mp, PermissionDenied):
        mp.products.add_expert_opinion(people.product_manager, pid, expert="Prof. Li", opinion="o",
                                       recommendation="approve")
    with refused(mp, InvalidInput) as info:
        mp.products.add_expert_opinion(people.supervisor, pid, expert="Prof. Li", opinion="o",
                                       recommendation="yes")
    assert info.value.field == "recommendation"
    with refused(mp, InvalidInput) as info:
        mp.products.add_expert_opinion(people.supervisor, pid, expert="", opinion="o", recommendation="approve")
    assert info.value.field == "expert"
    with refused(mp, NotFound):
        mp.products.add_expert_opinion(people.supervisor, uuid4(), expert="Prof. Li", opinion="o",
                                       recommendation="approve")
    mp.products.add_expert_opinion(people.reviewer, pid, expert="Prof. Li", opinion="Aggregate by district",
                                   recommendation="approve_with_conditions")
    opinion = mp.products.get(DataProduct, pid).expert_opinions[0]
    assert opinion.recommendation is ExpertRecommendation.APPROVE_WITH_CONDITIONS
    assert opinion.recorded_by == people.reviewer.user_id


# -- the scenario and storage ---------------------------------------------------------------------


def test_art22_listed_product_scenario_walks_every_step(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = listed_product(mp, people, personal=True, grade="general_3")
    product = mp.products.get(DataProduct, pid)
    assert product.is_listed and product.grade.value == "general_3"
    assert product.personal_fields == ("holder_name",) and product.reviewer_id != product.builder_id
    assert product.plans and product.price_cap is not None and len(product.versions) == 1
    assert all(s.consent_granted and s.approved for s in product.sources)


def test_art24_price_history_survives_reload_and_snapshots(marketplace: Marketplace) -> None:
    """Every price change is an event; a long history reads back through snapshots unchanged."""
    mp = marketplace
    people = staff(mp)
    pid = listed_product(mp, people)
    for n in range(55):
        mp.products.set_price_plan(
            people.product_manager, pid, reason=f"change {n}",
            plan={**basic_plan(price=f"{n % 50}.{n % 100:02d}"), "tiers": [
                {"up_to": 10, "unit_price": "20"}, {"up_to": None, "unit_price": f"{n % 50}.{n % 100:02d}"}]},
        )
    assert mp.app.snapshots is not None and list(mp.app.snapshots.get(pid))
    product = mp.products.get(DataProduct, pid)
    assert product.plans["basic"].tiers[1].unit_price == Decimal("4.54")
    assert product.quote("basic", "industry", 12) == Decimal("209.08")
    events = list(mp.app.events.get(pid))
    assert sum(1 for e in events if type(e).__name__ == "PricePlanSet") == 56
