"""Shared scenario builders for tests: plain functions over a ``Marketplace``.

Each builder drives the real services (no shortcuts into the store), so a scenario is
also a test of the flow it walks through. Builders are idempotent where a natural key
exists (staff, providers), so several builders may be combined in one test.

Import as ``from tests.scenario import staff, listed_product``. Other helpers append
their builders below the existing ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain.catalog import CatalogResource, Provider
from domain.errors import DomainError
from domain.identity import SYSTEM, Actor, Role
from domain.parties import StaffMember
from domain.products import DataProduct
from marketplace.bootstrap import Marketplace

# -- checking refusals ------------------------------------------------------------------------


@contextmanager
def refused(mp: Marketplace, error: type[DomainError], match: str | None = None) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Expect exactly ``error`` (by its ``code``) and prove the store did not change.

    Use as ``with refused(mp, SupplyNotConsented): mp.products.submit_for_review(...)``.
    """
    before = mp.app.recorder.max_notification_id()
    with pytest.raises(error, match=match) as info:
        yield info
    assert info.value.code == error.code, f"expected {error.code}, got {info.value.code}: {info.value}"
    assert mp.app.recorder.max_notification_id() == before, "a refused command changed the store"


def digest(text: str) -> str:
    """A SHA-256 content hash for test versions."""
    return hashlib.sha256(text.encode()).hexdigest()


# -- people --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    """The operator's and the bureau's people of a scenario."""

    admin: Actor
    product_manager: Actor
    reviewer: Actor
    supervisor: Actor


def staff(mp: Marketplace, *, prefix: str = "") -> Staff:
    """Enrol an operator admin (by the system), a product manager, a compliance reviewer and a supervisor."""
    admin = Actor(f"{prefix}admin", Role.OPERATOR_ADMIN)
    people = Staff(
        admin=admin,
        product_manager=Actor(f"{prefix}pm", Role.PRODUCT_MANAGER),
        reviewer=Actor(f"{prefix}reviewer", Role.COMPLIANCE_REVIEWER),
        supervisor=Actor(f"{prefix}bureau", Role.SUPERVISOR),
    )
    for actor, enrolled_by in (
        (people.admin, SYSTEM),
        (people.product_manager, admin),
        (people.reviewer, admin),
        (people.supervisor, admin),
    ):
        if not mp.parties.exists(StaffMember.create_id(actor.user_id)):
            mp.parties.enrol_staff(
                enrolled_by, user_id=actor.user_id, name=actor.user_id.title(), roles=[actor.role]
            )
    return people


def provider(
    mp: Marketplace,
    people: Staff,
    *,
    name: str = "Baotou Water Supply Company",
    kind: str = "water",
    staff_user: str = "water-clerk",
) -> tuple[UUID, Actor]:
    """A registered provider with one rostered staff member, and that member's actor."""
    provider_id = Provider.create_id(name)
    if not mp.catalog.exists(provider_id):
        mp.catalog.register_provider(people.supervisor, name=name, kind=kind, contact_email="data@example.cn")
    if not mp.catalog.get(Provider, provider_id).has_staff(staff_user):
        mp.catalog.add_provider_staff(people.admin, provider_id, user_id=staff_user)
    return provider_id, Actor(staff_user, Role.PROVIDER_STAFF, provider_id=provider_id)


def default_fields(*, personal: bool = False) -> list[dict[str, Any]]:
    """Water meter readings; with ``personal`` the account holder's name is included."""
    fields: list[dict[str, Any]] = [
        {"name": "district", "dtype": "category", "description": "City district of the meter"},
        {"name": "month", "dtype": "date", "description": "First day of the billing month"},
        {"name": "consumption_m3", "dtype": "float", "description": "Water consumed in cubic metres"},
    ]
    if personal:
        fields.append({"name": "holder_name", "dtype": "string", "description": "Account holder", "personal": True})
    return fields


def approved_resource(
    mp: Marketplace,
    people: Staff,
    *,
    source: tuple[UUID, Actor] | None = None,
    name: str = "Water meter readings",
    grade: str = "general_2",
    openness: str = "unconditional",
    personal: bool = False,
    fields: Sequence[Mapping[str, Any]] | None = None,
    version: bool = True,
) -> UUID:
    """A catalog entry compiled by provider staff, approved by the bureau, with one version by default."""
    provider_id, clerk = source or provider(mp, people)
    resource_id = mp.catalog.compile_resource(
        clerk, provider_id=provider_id, name=name, description=f"{name} of the city", category="utilities",
        fields=list(fields) if fields is not None else default_fields(personal=personal),
        grade=grade, openness=openness, update_frequency="monthly",
    )
    mp.catalog.review_resource(people.supervisor, resource_id, approved=True, reason="meets the catalogue standard")
    if version:
        mp.catalog.register_resource_version(clerk, resource_id, content_hash=digest(f"{name} v1"), row_count=1200)
    return resource_id


def provider_clerk(mp: Marketplace, resource_id: UUID) -> Actor:
    """An actor on the roster of the provider that holds ``resource_id``."""
    resource = mp.catalog.get(CatalogResource, resource_id)
    roster = mp.catalog.get(Provider, resource.provider_id).staff
    return Actor(roster[0], Role.PROVIDER_STAFF, provider_id=resource.provider_id)


def built_product(
    mp: Marketplace,
    people: Staff,
    *,
    name: str = "District water use",
    resource_ids: Sequence[UUID] | None = None,
    grade: str = "general_2",
    openness: str = "unconditional",
    personal: bool = False,
    delivery_modes: Sequence[str] = ("sandbox_aggregate",),
    fields: Sequence[Mapping[str, Any]] | None = None,
    consent: bool = True,
) -> UUID:
    """A drafted product; its providers have consented to supply it unless ``consent`` is false."""
    if resource_ids is None:
        resource_ids = [
            approved_resource(mp, people, name=f"{name} source", grade=grade, openness=openness, personal=personal)
        ]
    if fields is None:
        source_fields = mp.catalog.get(CatalogResource, resource_ids[0]).fields
        fields = [
            {"name": f.name, "dtype": f.dtype, "description": f.description, "personal": f.personal}
            for f in source_fields
        ]
    product_id = mp.products.build_product(
        people.product_manager, name=name, description=f"{name}, processed from the catalogue",
        category="utilities", source_ids=list(resource_ids), fields=list(fields),
        delivery_modes=list(delivery_modes),
    )
    if consent:
        for rid in resource_ids:
            mp.catalog.decide_supply(
                provider_clerk(mp, rid), rid, product_id=product_id, granted=True, reason="agreed with the bureau"
            )
    return product_id


def approved_product(mp: Marketplace, people: Staff, **build: Any) -> UUID:
    """A built product with one version, approved by a compliance reviewer who did not build it."""
    product_id = built_product(mp, people, **build)
    name = mp.products.get(DataProduct, product_id).name
    mp.products.register_product_version(
        people.product_manager, product_id, content_hash=digest(f"{name} v1"), row_count=240
    )
    mp.products.submit_for_review(people.product_manager, product_id)
    mp.products.review_compliance(people.reviewer, product_id, approved=True, reason="aggregates only, no raw data")
    return product_id


def basic_plan(
    *, price: Decimal | str = "10.00", plan_id: str = "basic", billing_unit: str = "per_call"
) -> dict[str, Any]:
    """A one-tier trial plan within the default cap."""
    return {
        "plan_id": plan_id,
        "name": "Basic",
        "billing_unit": billing_unit,
        "tiers": [{"up_to": None, "unit_price": str(price)}],
        "period_months": 1 if billing_unit == "per_period" else None,
        "stage": "trial",
    }


def listed_product(
    mp: Marketplace,
    people: Staff,
    *,
    name: str = "District water use",
    grade: str = "general_2",
    personal: bool = False,
    openness: str = "unconditional",
    delivery_modes: Sequence[str] = ("sandbox_aggregate",),
    resource_ids: Sequence[UUID] | None = None,
    cap: Decimal | str = "100.00",
    plan: Mapping[str, Any] | None = None,
) -> UUID:
    """A product on the storefront, through every step: approved resource, consent, build,
    version, compliance review by someone other than the builder, price cap, plan, listing."""
    product_id = approved_product(
        mp, people, name=name, grade=grade, personal=personal, openness=openness,
        delivery_modes=delivery_modes, resource_ids=resource_ids,
    )
    mp.products.set_price_cap(people.admin, product_id, cap=cap, reason="cap approved by the price authority")
    mp.products.set_price_plan(
        people.product_manager, product_id, plan=plan or basic_plan(), reason="first offer, trial stage"
    )
    mp.products.list_product(people.product_manager, product_id)
    return product_id


# -- units, demand and subscriptions (H2) --------------------------------------------------------
from datetime import timedelta  # noqa: E402

from domain.licensing import AgreementKind, business_date  # noqa: E402
from domain.parties import ApplicationUnit, credit_code_check_char  # noqa: E402


@dataclass(frozen=True)
class Unit:
    """A qualified application unit of a scenario and two of its members."""

    id: UUID
    admin: Actor
    analyst: Actor

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``unit_id, admin, analyst``."""
        return iter((self.id, self.admin, self.analyst))


def credit_code(body: str = "91150200MA0N7X2B1") -> str:
    """A valid unified social credit code from its first 17 characters."""
    return body + credit_code_check_char(body)


def qualified_unit(
    mp: Marketplace,
    people: Staff,
    *,
    name: str = "包头智慧出行有限公司",
    code_body: str = "91150200MA0N7X2B1",
    admin_user: str = "unit-admin",
    analyst_user: str = "unit-analyst",
) -> Unit:
    """A registered unit qualified by the operator, with an admin and an analyst (idempotent)."""
    unit_id = ApplicationUnit.create_id(credit_code(code_body))
    admin = Actor(admin_user, Role.UNIT_ADMIN, unit_id=unit_id)
    analyst = Actor(analyst_user, Role.UNIT_ANALYST, unit_id=unit_id)
    if not mp.parties.exists(unit_id):
        mp.parties.register_unit(
            Actor(admin_user, Role.APPLICANT), name=name, credit_code=credit_code(code_body), kind="company",
            contact_email="data@example.cn",
        )
    unit = mp.parties.get(ApplicationUnit, unit_id)
    if not unit.is_qualified and unit.status.value == "pending_qualification":
        mp.parties.qualify_unit(people.reviewer, unit_id, approved=True, reason="licence and security plan checked")
    if unit.role_of(analyst_user) is None:
        mp.parties.add_member(admin, unit_id, user_id=analyst_user, role="unit_analyst")
    return Unit(unit_id, admin, analyst)


def approved_application(
    mp: Marketplace,
    people: Staff,
    unit: Unit,
    product_id: UUID,
    *,
    fields: Sequence[str] | None = None,
    purpose_class: str = "industry",
    risk: str = "low",
    days: int = 365,
) -> UUID:
    """A demand application filed by the unit's analyst for ``product_id``, assessed and approved.

    The period starts today (Baotou calendar) and lasts ``days`` days; ``fields`` defaults to
    every field of the product. A high ``risk`` gets an expert opinion first (art. 6).
    """
    product = mp.products.get(DataProduct, product_id)
    today = business_date(mp.demand.clock())
    application_id = mp.demand.file_application(
        unit.analyst, unit_id=unit.id,
        scenario="Forecast demand per district to plan maintenance crews and budgets",
        purpose="maintenance planning", purpose_class=purpose_class,
        scope=[{"product_id": product_id, "fields": list(fields or product.field_names)}],
        period_start=today, period_end=today + timedelta(days=days),
        security_controls=["results stay in the sandbox", "named analysts only"],
    )
    mp.demand.assess_risk(people.reviewer, application_id, level=risk, notes="district aggregates only")
    if risk == "high":
        mp.demand.add_expert_opinion(
            people.supervisor, application_id, expert="Prof. Zhao, expert committee",
            opinion="acceptable with minimum group size 10", recommendation="approve_with_conditions",
        )
    mp.demand.decide_application(people.admin, application_id, approved=True, reason="purpose and controls adequate")
    return application_id


DEFAULT_ENTITLEMENTS: dict[str, Any] = {"queries_per_period": 100, "rows_per_period": 10_000, "privacy_budget": 1.0}


def active_subscription(
    mp: Marketplace,
    people: Staff,
    *,
    unit: Unit | None = None,
    product_id: UUID | None = None,
    application_id: UUID | None = None,
    plan_id: str = "basic",
    entitlements: Mapping[str, Any] | None = None,
    sign: bool = True,
) -> UUID:
    """A subscription created from an approved application, both agreements signed by both sides.

    Builds whatever is not given: a listed product, a qualified unit, an approved application.
    With ``sign=False`` the subscription stays pending.
    """
    unit = unit or qualified_unit(mp, people)
    product_id = product_id or listed_product(mp, people)
    application_id = application_id or approved_application(mp, people, unit, product_id)
    subscription_id = mp.licensing.create_subscription(
        people.admin, application_id=application_id, product_id=product_id, plan_id=plan_id,
        entitlements=dict(entitlements or DEFAULT_ENTITLEMENTS),
    )
    if sign:
        for kind in AgreementKind:
            mp.licensing.sign_agreement(unit.admin, subscription_id, kind=kind)
            mp.licensing.sign_agreement(people.admin, subscription_id, kind=kind)
    return subscription_id
