"""Products: what the operator builds from public data and offers (art. 6, 7, 14, 22, 24, 27, 35).

Raw data is never traded (art. 24): the operator *processes* catalog resources into a
data product (art. 22), whose lifecycle is

    draft --submit--> in_review --approve--> approved --list--> listed
                          |                     ^   <--unlist--
                          +--reject--> rejected-+ (resubmit)

Rules decided here:

- every source is approved by the bureau (art. 10), may be opened and is of a general
  grade (national grading rules); the product's grade is its strictest source's;
- the provider of every source has consented to supply it to this product (art. 14)
  before the product goes to compliance review. A product is *drafted* first, because
  consent is given per product and the provider must know what it consents to; the
  draft itself only checks the hard rules above;
- row-level files only for unconditionally open, general level 1-2 data without
  personal information in the output (art. 22 "no product from which raw data can be
  restored", art. 35); everything else is delivered as sandbox aggregates;
- the compliance reviewer is not the builder (art. 15-16, 22, 28-32);
- only a compliance-approved product with a price cap and a price plan is listed; a
  new version of an approved product goes back to review and off the shelf;
- prices never exceed the cap and public governance and welfare use is free (art. 24).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.catalog import (
    CatalogResource,
    DataVersion,
    DuplicateVersion,
    FieldSpec,
    Grade,
    Openness,
    ResourceNotApproved,
    SourceNotOperable,
    decision_reason,
    parse_fields,
    validate_content_hash,
    validate_row_count,
)
from domain.errors import (
    DomainError,
    InvalidInput,
    InvalidState,
    SeparationOfDuties,
    parse_enum,
    require_text,
)
from domain.identity import Actor
from domain.pricing import (
    PriceCapMissing,
    PricePlan,
    PurposeClass,
    check_plan_within_cap,
    parse_money,
    parse_quantity,
)

#: Art. 22, 35: grades whose data may leave the platform as rows (with the other conditions).
ROW_LEVEL_GRADES = frozenset({Grade.GENERAL_1, Grade.GENERAL_2})


class DeliveryMode(Enum):
    """How a product's data reaches a unit: aggregate sandbox results, or a row-level file."""

    SANDBOX_AGGREGATE = "sandbox_aggregate"
    ROW_LEVEL_FILE = "row_level_file"


class ProductStatus(Enum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    LISTED = "listed"


class ExpertRecommendation(Enum):
    APPROVE = "approve"
    APPROVE_WITH_CONDITIONS = "approve_with_conditions"
    REJECT = "reject"


@dataclass(frozen=True)
class SourceFacts:
    """What a product needs to know of one source, read from its catalog entry by the service.

    A product never holds the resource aggregate; it records these facts in its events
    so its rules (grade, openness, personal fields, consent) are decided and audited on
    what was true when it was built and submitted.
    """

    resource_id: UUID
    provider_id: UUID
    grade: Grade
    openness: Openness
    personal_fields: tuple[str, ...]
    consent_granted: bool
    approved: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "personal_fields", tuple(self.personal_fields))

    @classmethod
    def of(cls, resource: CatalogResource, product_id: UUID) -> SourceFacts:
        return cls(
            resource_id=resource.id,
            provider_id=resource.provider_id,
            grade=resource.grade,
            openness=resource.openness,
            personal_fields=resource.personal_fields,
            consent_granted=resource.consent_granted(product_id),
            approved=resource.is_approved,
        )

    def check_operable(self) -> None:
        """Hard rules for any source: bureau-approved, may be opened, general grade."""
        if not self.approved:
            raise SourceNotApproved(
                f"source {self.resource_id} is not approved by the bureau (art. 10)", resource=self.resource_id
            )
        if self.openness is Openness.NOT_OPEN:
            raise SourceNotOperable(
                f"source {self.resource_id} is not open and may not be operated", resource=self.resource_id
            )
        if not self.grade.is_operable:
            raise SourceNotOperable(
                f"source {self.resource_id} is {self.grade.value} data and may not be operated",
                resource=self.resource_id, grade=self.grade.value,
            )


@dataclass(frozen=True)
class Showcase:
    """A case of successful use, promoted on the storefront (art. 7, 27)."""

    title: str
    unit_name: str
    summary: str


@dataclass(frozen=True)
class ExpertOpinion:
    """The expert committee's view on a major or difficult question (art. 6)."""

    expert: str
    opinion: str
    recommendation: ExpertRecommendation
    recorded_by: str

    @classmethod
    def parse(cls, *, expert: object, opinion: object, recommendation: object, by: Actor) -> ExpertOpinion:
        """Validate an opinion as given on a form or command; each error names its field."""
        return cls(
            expert=require_text("expert", expert, max_length=200),
            opinion=require_text("opinion", opinion, max_length=20_000),
            recommendation=parse_enum("recommendation", ExpertRecommendation, recommendation),
            recorded_by=by.user_id,
        )


class DataProduct(Aggregate):
    """A processed data product (art. 22), its versions, review, listing and prices (art. 24)."""

    grows = True

    @staticmethod
    def create_id(name: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/product/{name}")

    @classmethod
    def create(
        cls,
        *,
        name: str,
        description: str,
        category: str,
        sources: Sequence[SourceFacts],
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        delivery_modes: Sequence[DeliveryMode | str],
        by: Actor,
    ) -> DataProduct:
        """Draft a product; ``by`` is its builder, who can never approve it."""
        name = require_text("name", name, min_length=2, max_length=200)
        description = require_text("description", description, max_length=5000)
        category = require_text("category", category, max_length=200)
        checked = _check_sources(sources)
        grade = Grade.strictest(s.grade for s in checked)
        personal = {n for s in checked for n in s.personal_fields}
        # Art. 35: a column named like a personal source column is personal, whatever it was declared.
        output = tuple(
            f if f.personal or f.name not in personal else FieldSpec(f.name, f.dtype, f.description, True)
            for f in parse_fields("fields", fields)
        )
        modes = _parse_modes(delivery_modes)
        if DeliveryMode.ROW_LEVEL_FILE in modes:
            check_row_level_allowed(checked, grade, output)
        return cls(
            name=name, description=description, category=category, sources=checked, fields=output,
            delivery_modes=modes, grade=grade, by=by,
        )

    @event("Built")
    def __init__(
        self,
        *,
        name: str,
        description: str,
        category: str,
        sources: tuple[SourceFacts, ...],
        fields: tuple[FieldSpec, ...],
        delivery_modes: tuple[DeliveryMode, ...],
        grade: Grade,
        by: Actor,
    ) -> None:
        self.name = name
        self.description = description
        self.category = category
        self.sources: list[SourceFacts] = list(sources)
        self.fields: list[FieldSpec] = list(fields)
        self.modes: list[DeliveryMode] = list(delivery_modes)
        self.grade = grade
        self.builder_id = by.user_id
        self.status = ProductStatus.DRAFT
        self.review_reason = ""
        self.reviewer_id: str | None = None
        self.unlist_reason = ""
        self.versions: list[DataVersion] = []
        self.price_cap: Decimal | None = None
        self.plans: dict[str, PricePlan] = {}
        self.showcases: list[Showcase] = []
        self.expert_opinions: list[ExpertOpinion] = []

    # -- versions ------------------------------------------------------------------------------
    def register_version(self, *, content_hash: str, row_count: int, at: datetime, by: Actor) -> None:
        """A new build of the product's data; after approval it must be reviewed again (art. 22)."""
        if self.status is ProductStatus.IN_REVIEW:
            raise InvalidState(
                "cannot register a version while the product is in compliance review; wait for the decision",
                product=self.id, status=self.status.value,
            )
        digest = validate_content_hash(content_hash)
        rows = validate_row_count(row_count)
        for v in self.versions:
            if v.content_hash == digest:
                raise DuplicateVersion(
                    f"version {v.number} already has content {digest}", product=self.id, content_hash=digest
                )
        self._version_registered(number=len(self.versions) + 1, content_hash=digest, row_count=rows, at=at, by=by)

    @event("VersionRegistered")
    def _version_registered(self, *, number: int, content_hash: str, row_count: int, at: datetime, by: Actor) -> None:
        self.versions.append(DataVersion(number, content_hash, row_count, at))
        if self.status in (ProductStatus.APPROVED, ProductStatus.LISTED):
            # Cannot stay on the shelf unreviewed: back to compliance review, off the storefront.
            self.status = ProductStatus.IN_REVIEW
            self.review_reason = ""
            self.reviewer_id = None

    # -- compliance review (art. 16, 22, 28-32) -----------------------------------------------
    def submit_for_review(self, *, sources: Sequence[SourceFacts], by: Actor) -> None:
        """Send the product to compliance review with fresh facts of its sources.

        The facts must show every source still approved and operable and its provider's
        consent to supply this product (art. 14).
        """
        self.check_status("submit for review", ProductStatus.DRAFT, ProductStatus.REJECTED)
        if not self.versions:
            raise ProductHasNoVersion(
                f"product {self.name!r} has no version to review; register one first", product=self.id
            )
        facts = _check_sources(sources)
        expected = {s.resource_id for s in self.sources}
        given = {s.resource_id for s in facts}
        if given != expected:
            raise InvalidInput(
                "sources",
                f"must be the facts of exactly the product's sources; missing {sorted(map(str, expected - given))},"
                f" unexpected {sorted(map(str, given - expected))}",
                product=self.id,
            )
        for s in facts:
            if not s.consent_granted:
                raise SupplyNotConsented(
                    f"the provider of source {s.resource_id} has not consented to supply it to "
                    f"product {self.name!r} (art. 14)",
                    product=self.id, resource=s.resource_id, provider=s.provider_id,
                )
        self._submitted(sources=facts, by=by)

    @event("SubmittedForReview")
    def _submitted(self, *, sources: tuple[SourceFacts, ...], by: Actor) -> None:
        self.sources = list(sources)
        self.status = ProductStatus.IN_REVIEW
        self.review_reason = ""
        self.reviewer_id = None

    def review(self, *, approved: bool, reason: str = "", by: Actor) -> None:
        """A compliance reviewer other than the builder approves or rejects (reason required)."""
        self.check_status("review", ProductStatus.IN_REVIEW)
        if by.user_id == self.builder_id:
            raise SeparationOfDuties(
                f"{by.user_id} built product {self.name!r} and cannot review it", product=self.id, user=by.user_id
            )
        if not isinstance(approved, bool):
            raise InvalidInput("approved", f"must be true or false, got {approved!r}")
        reason = decision_reason(approved, reason)
        self._reviewed(approved=approved, reason=reason, version_number=len(self.versions), by=by)

    @event("ComplianceReviewed")
    def _reviewed(self, *, approved: bool, reason: str, version_number: int, by: Actor) -> None:
        self.status = ProductStatus.APPROVED if approved else ProductStatus.REJECTED
        self.review_reason = reason
        self.reviewer_id = by.user_id

    # -- listing (art. 7, 24) ------------------------------------------------------------------
    def list_on_storefront(self, *, by: Actor) -> None:
        """Put an approved, priced product on the storefront."""
        self.check_status("list", ProductStatus.APPROVED)
        missing = []
        if self.price_cap is None:
            missing.append("a price cap")
        if not self.plans:
            missing.append("a price plan")
        if missing:
            raise ListingIncomplete(
                f"product {self.name!r} cannot be listed without {' and '.join(missing)}", product=self.id
            )
        self._listed(by=by)

    @event("Listed")
    def _listed(self, *, by: Actor) -> None:
        self.status = ProductStatus.LISTED
        self.unlist_reason = ""

    def unlist(self, *, reason: str, by: Actor) -> None:
        self.check_status("unlist", ProductStatus.LISTED)
        self._unlisted(reason=require_text("reason", reason, max_length=2000), by=by)

    @event("Unlisted")
    def _unlisted(self, *, reason: str, by: Actor) -> None:
        self.status = ProductStatus.APPROVED
        self.unlist_reason = reason

    # -- prices (art. 24, national rules) --------------------------------------------------------
    def set_price_cap(self, *, cap: Decimal | str | int, reason: str, by: Actor) -> None:
        """The cap bounds every unit price; it cannot drop below a plan still on offer."""
        amount = parse_money("cap", cap)
        reason = require_text("reason", reason, max_length=2000)
        for plan in self.plans.values():
            check_plan_within_cap(plan, amount)
        self._price_cap_set(cap=amount, reason=reason, by=by)

    @event("PriceCapSet")
    def _price_cap_set(self, *, cap: Decimal, reason: str, by: Actor) -> None:
        self.price_cap = cap

    def set_plan(self, *, plan: PricePlan | Mapping[str, Any], reason: str, by: Actor) -> None:
        """Add a plan, or change the plan with the same id; trial or formal stage travels with it."""
        parsed = PricePlan.parse(plan)
        reason = require_text("reason", reason, max_length=2000)
        if self.price_cap is None:
            raise PriceCapMissing(
                f"product {self.name!r} has no price cap yet; the cap is set before any plan", product=self.id
            )
        check_plan_within_cap(parsed, self.price_cap)
        self._plan_set(plan=parsed, reason=reason, by=by)

    @event("PricePlanSet")
    def _plan_set(self, *, plan: PricePlan, reason: str, by: Actor) -> None:
        self.plans[plan.plan_id] = plan

    def retire_plan(self, *, plan_id: str, reason: str, by: Actor) -> None:
        self.check_plan(plan_id)
        reason = require_text("reason", reason, max_length=2000)
        if self.is_listed and len(self.plans) == 1:
            raise InvalidState(
                f"plan {plan_id!r} is the only plan of listed product {self.name!r}; "
                "add another plan or unlist the product first",
                product=self.id, plan=plan_id,
            )
        self._plan_retired(plan_id=plan_id, reason=reason, by=by)

    @event("PricePlanRetired")
    def _plan_retired(self, *, plan_id: str, reason: str, by: Actor) -> None:
        del self.plans[plan_id]

    def quote(self, plan_id: str, purpose: PurposeClass | str, quantity: int) -> Decimal:
        """What ``quantity`` units cost under a plan; public governance and welfare use is free."""
        plan = self.check_plan(plan_id)
        purpose = parse_enum("purpose", PurposeClass, purpose)
        quantity = parse_quantity("quantity", quantity)
        if purpose.is_free:
            return Decimal("0.00")
        return plan.charge(quantity)

    # -- promotion and expert advice (art. 6, 27) ----------------------------------------------
    def add_showcase(self, *, title: str, unit_name: str, summary: str, by: Actor) -> None:
        """Promote a case of use (art. 27); only products on the storefront have showcases."""
        if not self.is_listed:
            raise InvalidState(
                f"product {self.name!r} is {self.status.value}; showcases are added to listed products",
                product=self.id, status=self.status.value,
            )
        self._showcase_added(
            showcase=Showcase(
                title=require_text("title", title, max_length=200),
                unit_name=require_text("unit_name", unit_name, max_length=200),
                summary=require_text("summary", summary, max_length=5000),
            ),
            by=by,
        )

    @event("ShowcaseAdded")
    def _showcase_added(self, *, showcase: Showcase, by: Actor) -> None:
        self.showcases.append(showcase)

    def add_expert_opinion(
        self, *, expert: str, opinion: str, recommendation: ExpertRecommendation | str, by: Actor
    ) -> None:
        """Record the expert committee's opinion (art. 6); it informs, the reviewer decides."""
        self._expert_opinion_added(
            opinion=ExpertOpinion.parse(expert=expert, opinion=opinion, recommendation=recommendation, by=by), by=by
        )

    @event("ExpertOpinionAdded")
    def _expert_opinion_added(self, *, opinion: ExpertOpinion, by: Actor) -> None:
        self.expert_opinions.append(opinion)

    # -- queries used by other contexts (a contract: keep the names) ----------------------------
    @property
    def is_listed(self) -> bool:
        return self.status is ProductStatus.LISTED

    @property
    def is_compliance_approved(self) -> bool:
        return self.status in (ProductStatus.APPROVED, ProductStatus.LISTED)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def personal_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.personal)

    @property
    def delivery_modes(self) -> tuple[DeliveryMode, ...]:
        return tuple(self.modes)

    @property
    def source_ids(self) -> tuple[UUID, ...]:
        return tuple(s.resource_id for s in self.sources)

    @property
    def latest_version(self) -> DataVersion | None:
        return self.versions[-1] if self.versions else None

    # -- guards ------------------------------------------------------------------------------------
    def check_status(self, doing: str, *allowed: ProductStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} product {self.name!r}: it is {self.status.value}",
                product=self.id, status=self.status.value,
            )

    def check_plan(self, plan_id: str) -> PricePlan:
        plan = self.plans.get(plan_id) if isinstance(plan_id, str) else None
        if plan is None:
            raise InvalidInput(
                "plan_id", f"product {self.name!r} has no plan {plan_id!r}; plans: {sorted(self.plans)}",
                product=self.id,
            )
        return plan


def _check_sources(sources: object) -> tuple[SourceFacts, ...]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence):
        raise InvalidInput("sources", "must be a list of source facts")
    if not sources:
        raise InvalidInput("sources", "a product needs at least one source")
    facts = tuple(sources)
    for s in facts:
        if not isinstance(s, SourceFacts):
            raise InvalidInput("sources", f"must hold source facts, got {type(s).__name__}")
    ids = [s.resource_id for s in facts]
    if len(set(ids)) != len(ids):
        raise InvalidInput("sources", "each source may be named once")
    for s in facts:
        s.check_operable()
    return facts


def _parse_modes(value: object) -> tuple[DeliveryMode, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput("delivery_modes", "must be a list of delivery modes")
    if not value:
        raise InvalidInput("delivery_modes", "at least one delivery mode is required")
    modes = tuple(parse_enum("delivery_modes", DeliveryMode, m) for m in value)
    if len(set(modes)) != len(modes):
        raise InvalidInput("delivery_modes", "each delivery mode may be named once")
    return modes


def check_row_level_allowed(sources: Sequence[SourceFacts], grade: Grade, fields: Sequence[FieldSpec]) -> None:
    """Art. 22, 35: rows leave only for unconditionally open, general 1-2, non-personal data."""
    conditional = [str(s.resource_id) for s in sources if s.openness is not Openness.UNCONDITIONAL]
    if conditional:
        raise RowLevelDeliveryNotAllowed(
            f"row-level files need unconditionally open sources; not so: {', '.join(conditional)}",
            sources=",".join(conditional),
        )
    if grade not in ROW_LEVEL_GRADES:
        raise RowLevelDeliveryNotAllowed(
            f"row-level files need data of general level 1 or 2; this product is {grade.value}", grade=grade.value
        )
    personal = [f.name for f in fields if f.personal]
    if personal:
        raise RowLevelDeliveryNotAllowed(
            f"personal information is never delivered as rows (art. 35): {', '.join(personal)}",
            fields=",".join(personal),
        )


class SourceNotApproved(ResourceNotApproved):
    """Art. 10: a product is built only from entries the bureau approved."""

    code = "source_not_approved"


class SupplyNotConsented(InvalidState):
    """Art. 14: a source's provider has not (yet) consented to supply it to this product."""

    code = "supply_not_consented"


class RowLevelDeliveryNotAllowed(DomainError):
    """Art. 22, 35: this product's data may only leave as sandbox aggregates."""

    code = "row_level_delivery_not_allowed"


class ProductHasNoVersion(InvalidState):
    code = "product_has_no_version"


class ListingIncomplete(InvalidState):
    """Listing needs compliance approval, a price cap and at least one price plan."""

    code = "listing_incomplete"
