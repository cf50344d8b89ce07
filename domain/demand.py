"""Demand: what application units ask for (art. 6, 19-22).

A unit files a *demand application* stating purpose, scenario, scope, period and
security controls (art. 21); the operator assesses its risk, may seek the expert
committee's opinion (art. 6) and decides (art. 22). Only an approved application can
become a subscription, and its scope bounds every later query (art. 23).

Needs no product yet meets are posted on the *demand board* (art. 19-20), where the
operator answers and other units say "we need that too".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    AlreadyExists,
    DomainError,
    InvalidInput,
    InvalidState,
    PermissionDenied,
    SeparationOfDuties,
    parse_enum,
    require_text,
)
from domain.identity import Actor, Role
from domain.pricing import PurposeClass
from domain.products import ExpertOpinion, ExpertRecommendation  # art. 6: one kind of opinion

#: Art. 21: the scenario must actually describe the use, not name it.
MIN_SCENARIO_LENGTH = 20
#: The longest period one application may cover; renewals are new applications.
MAX_PERIOD_YEARS = 3


# -- value objects and parsing ------------------------------------------------------


@dataclass(frozen=True)
class ScopeItem:
    """One product and the fields of it the unit asks to use (art. 21 "scope")."""

    product_id: UUID
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        # JSON brings tuples back as lists and ids may arrive as text.
        if not isinstance(self.product_id, UUID):
            object.__setattr__(self, "product_id", _parse_uuid("scope.product_id", self.product_id))
        object.__setattr__(self, "fields", tuple(self.fields))


class RiskLevel(Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DemandStatus(Enum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"  # risk assessed, awaiting decision
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


def _parse_uuid(field: str, value: object) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(field, f"is not a valid id: {value!r}") from None


def parse_scope(value: object) -> tuple[ScopeItem, ...]:
    """Turn a list of ``ScopeItem`` or ``{"product_id", "fields"}`` mappings into scope items.

    Field names are stripped and must be unique within an item; a product appears once.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput("scope", "must be a list of {product_id, fields} items")
    items: list[ScopeItem] = []
    seen: set[UUID] = set()
    for index, raw in enumerate(value):
        where = f"scope[{index}]"
        raw_fields: object
        if isinstance(raw, ScopeItem):
            product_id, raw_fields = raw.product_id, raw.fields
        elif isinstance(raw, Mapping):
            if "product_id" not in raw:
                raise InvalidInput(f"{where}.product_id", "is required")
            product_id = _parse_uuid(f"{where}.product_id", raw["product_id"])
            raw_fields = raw.get("fields")
        else:
            raise InvalidInput(where, "must be a {product_id, fields} item")
        if isinstance(raw_fields, (str, bytes)) or not isinstance(raw_fields, Iterable):
            raise InvalidInput(f"{where}.fields", "must be a list of field names")
        names = tuple(require_text(f"{where}.fields", f, max_length=200) for f in raw_fields)
        if not names:
            raise InvalidInput(f"{where}.fields", "name at least one field")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(f"{where}.fields", f"names a field twice: {', '.join(duplicates)}")
        if product_id in seen:
            raise InvalidInput(where, f"product {product_id} appears twice in the scope")
        seen.add(product_id)
        items.append(ScopeItem(product_id=product_id, fields=names))
    if not items:
        raise InvalidInput("scope", "is required: name at least one product and its fields")
    return tuple(items)


def parse_security_controls(value: object) -> tuple[str, ...]:
    """Art. 21: at least one concrete security control, each a non-empty text."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput("security_controls", "must be a list of texts")
    controls = tuple(
        require_text(f"security_controls[{i}]", c, max_length=2000) for i, c in enumerate(value)
    )
    if not controls:
        raise InvalidInput("security_controls", "is required: state at least one security control")
    return controls


def parse_date(field: str, value: object) -> date:
    """A calendar date, or its ISO text; a datetime is refused so times never sneak in."""
    if isinstance(value, datetime):
        raise InvalidInput(field, "must be a date, not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(field, f"is not an ISO date (YYYY-MM-DD): {value!r}") from None
    if value is None:
        raise InvalidInput(field, "is required")
    raise InvalidInput(field, f"must be a date, got {type(value).__name__}")


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later; 29 February falls back to the 28th."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def check_period(period_start: date, period_end: date, *, today: date) -> None:
    """Art. 21 period: starts no earlier than filing, ends after it starts, at most 3 years."""
    if period_start < today:
        raise InvalidInput(
            "period_start", f"{period_start.isoformat()} is before the filing date {today.isoformat()}"
        )
    if period_end <= period_start:
        raise InvalidInput(
            "period_end", f"{period_end.isoformat()} must be after period_start {period_start.isoformat()}"
        )
    latest = add_years(period_start, MAX_PERIOD_YEARS)
    if period_end > latest:
        raise InvalidInput(
            "period_end",
            f"{period_end.isoformat()} is more than {MAX_PERIOD_YEARS} years after "
            f"period_start (latest allowed {latest.isoformat()})",
        )


def _check_member_of(by: Actor, unit_id: UUID, doing: str) -> None:
    if not (by.role.is_unit and by.unit_id == unit_id):
        raise PermissionDenied(f"only a member of unit {unit_id} may {doing}", unit=unit_id, user=by.user_id)


# -- demand application (art. 21-22) -------------------------------------------------


class DemandApplication(Aggregate):
    """A unit's request to use products for a stated purpose and period (art. 21)."""

    @classmethod
    def file(
        cls,
        *,
        unit_id: UUID,
        scenario: str,
        purpose: str,
        purpose_class: PurposeClass | str,
        scope: object,
        period_start: date | str,
        period_end: date | str,
        security_controls: object,
        available: Mapping[UUID, tuple[str, ...]],
        today: date,
        by: Actor,
    ) -> DemandApplication:
        """Validate every art. 21 field; ``available`` maps listed products to their fields."""
        _check_member_of(by, unit_id, "file a demand application for it")
        scenario = require_text("scenario", scenario, min_length=MIN_SCENARIO_LENGTH, max_length=10_000)
        purpose = require_text("purpose", purpose, max_length=2000)
        purpose_class = parse_enum("purpose_class", PurposeClass, purpose_class)
        items = parse_scope(scope)
        for index, item in enumerate(items):
            if item.product_id not in available:
                raise ProductNotAvailable(
                    f"scope[{index}].product_id",
                    f"product {item.product_id} is not listed on the marketplace",
                    product=item.product_id,
                )
            offered = available[item.product_id]
            missing = [f for f in item.fields if f not in offered]
            if missing:
                raise FieldNotInProduct(
                    f"scope[{index}].fields",
                    f"product {item.product_id} has no field {', '.join(missing)}",
                    product=item.product_id,
                )
        start = parse_date("period_start", period_start)
        end = parse_date("period_end", period_end)
        check_period(start, end, today=today)
        controls = parse_security_controls(security_controls)
        return cls(
            unit_id=unit_id,
            scenario=scenario,
            purpose=purpose,
            purpose_class=purpose_class,
            scope=items,
            period_start=start,
            period_end=end,
            security_controls=controls,
            filed_on=today,
            by=by,
        )

    @event("Filed")
    def __init__(
        self,
        *,
        unit_id: UUID,
        scenario: str,
        purpose: str,
        purpose_class: PurposeClass,
        scope: tuple[ScopeItem, ...],
        period_start: date,
        period_end: date,
        security_controls: tuple[str, ...],
        filed_on: date,
        by: Actor,
    ) -> None:
        self.unit_id = unit_id
        self.scenario = scenario
        self.purpose = purpose
        self.purpose_class = purpose_class
        self.scope: list[ScopeItem] = list(scope)
        self.period_start = period_start
        self.period_end = period_end
        self.security_controls: list[str] = list(security_controls)
        self.filed_on = filed_on
        self.filed_by = by.user_id
        self.status = DemandStatus.SUBMITTED
        self.risk_level: RiskLevel | None = None
        self.risk_notes = ""
        self.expert_opinions: list[ExpertOpinion] = []
        self.decided_by = ""
        self.decision_reason = ""

    # -- risk assessment (art. 22) ------------------------------------------------
    def assess_risk(self, *, level: RiskLevel | str, notes: str, by: Actor) -> None:
        """A compliance reviewer grades the risk; re-assessing before the decision is allowed."""
        self.check_status("assess the risk of", DemandStatus.SUBMITTED, DemandStatus.UNDER_REVIEW)
        if by.role not in (Role.COMPLIANCE_REVIEWER, Role.SYSTEM):
            raise PermissionDenied(
                "only a compliance reviewer assesses the risk of a demand application",
                application=self.id,
                user=by.user_id,
            )
        level = parse_enum("level", RiskLevel, level)
        self._risk_assessed(level=level, notes=require_text("notes", notes, max_length=10_000), by=by)

    @event("RiskAssessed")
    def _risk_assessed(self, *, level: RiskLevel, notes: str, by: Actor) -> None:
        self.risk_level = level
        self.risk_notes = notes
        self.status = DemandStatus.UNDER_REVIEW

    # -- expert committee (art. 6) ------------------------------------------------
    def add_expert_opinion(
        self, *, expert: str, opinion: str, recommendation: ExpertRecommendation | str, by: Actor
    ) -> None:
        self.check_status("add an expert opinion to", DemandStatus.SUBMITTED, DemandStatus.UNDER_REVIEW)
        if by.role.is_unit:
            raise PermissionDenied(
                "expert opinions are recorded by the operator or the bureau, not the applicant",
                application=self.id,
                user=by.user_id,
            )
        self._expert_opinion_added(
            opinion=ExpertOpinion.parse(expert=expert, opinion=opinion, recommendation=recommendation, by=by), by=by
        )

    @event("ExpertOpinionAdded")
    def _expert_opinion_added(self, *, opinion: ExpertOpinion, by: Actor) -> None:
        self.expert_opinions.append(opinion)

    # -- decision (art. 22) --------------------------------------------------------
    def decide(self, *, approved: bool, reason: str, by: Actor) -> None:
        """Decide after the risk assessment, never by the filer; high risk needs an expert."""
        if not isinstance(approved, bool):
            raise InvalidInput("approved", "must be true or false")
        if self.status is DemandStatus.SUBMITTED:
            raise RiskNotAssessed(
                "the risk of this application has not been assessed yet", application=self.id
            )
        self.check_status("decide", DemandStatus.UNDER_REVIEW)
        if by.user_id == self.filed_by:
            raise SeparationOfDuties(
                "who filed a demand application cannot decide it", application=self.id, user=by.user_id
            )
        if by.role.is_unit:
            raise PermissionDenied("a unit cannot decide demand applications", application=self.id)
        if approved and self.risk_level is RiskLevel.HIGH and not self.expert_opinions:
            raise ExpertOpinionRequired(
                "a high-risk application needs at least one expert opinion before approval",
                application=self.id,
            )
        self._decided(approved=approved, reason=require_text("reason", reason), by=by)

    @event("Decided")
    def _decided(self, *, approved: bool, reason: str, by: Actor) -> None:
        self.status = DemandStatus.APPROVED if approved else DemandStatus.REJECTED
        self.decided_by = by.user_id
        self.decision_reason = reason

    def withdraw(self, *, reason: str, by: Actor) -> None:
        """The unit may take back its application while it is undecided."""
        _check_member_of(by, self.unit_id, "withdraw its demand application")
        self.check_status("withdraw", DemandStatus.SUBMITTED, DemandStatus.UNDER_REVIEW)
        self._withdrawn(reason=require_text("reason", reason), by=by)

    @event("Withdrawn")
    def _withdrawn(self, *, reason: str, by: Actor) -> None:
        self.status = DemandStatus.WITHDRAWN
        self.decision_reason = reason

    # -- queries and guards -------------------------------------------------------
    @property
    def is_approved(self) -> bool:
        return self.status is DemandStatus.APPROVED

    def check_approved(self) -> None:
        if not self.is_approved:
            raise ApplicationNotApproved(
                f"demand application is {self.status.value}, not approved",
                application=self.id,
                status=self.status.value,
            )

    def scope_for(self, product_id: UUID) -> ScopeItem:
        """The scope item of ``product_id``, or ``ProductNotInScope``."""
        for item in self.scope:
            if item.product_id == product_id:
                return item
        raise ProductNotInScope(
            f"product {product_id} is not in the scope of this application",
            application=self.id,
            product=product_id,
        )

    def check_status(self, doing: str, *allowed: DemandStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} a demand application that is {self.status.value}",
                application=self.id,
                status=self.status.value,
            )


# -- demand board (art. 19-20) -------------------------------------------------------


class PostStatus(Enum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


@dataclass(frozen=True)
class PostResponse:
    """The operator's answer to a posted need, perhaps pointing at a product."""

    text: str
    product_id: UUID | None
    responded_by: str


class DemandPost(Aggregate):
    """A need posted on the demand board that no listed product meets yet (art. 19-20)."""

    @classmethod
    def post(
        cls,
        *,
        unit_id: UUID,
        title: str,
        description: str,
        data_wanted: str,
        purpose_class: PurposeClass | str,
        by: Actor,
    ) -> DemandPost:
        _check_member_of(by, unit_id, "post a need for it")
        return cls(
            unit_id=unit_id,
            title=require_text("title", title, min_length=4, max_length=200),
            description=require_text("description", description, max_length=10_000),
            data_wanted=require_text("data_wanted", data_wanted, max_length=5000),
            purpose_class=parse_enum("purpose_class", PurposeClass, purpose_class),
            by=by,
        )

    @event("Posted")
    def __init__(
        self,
        *,
        unit_id: UUID,
        title: str,
        description: str,
        data_wanted: str,
        purpose_class: PurposeClass,
        by: Actor,
    ) -> None:
        self.unit_id = unit_id
        self.title = title
        self.description = description
        self.data_wanted = data_wanted
        self.purpose_class = purpose_class
        self.posted_by = by.user_id
        self.status = PostStatus.OPEN
        self.responses: list[PostResponse] = []
        self.seconded_by: list[UUID] = []
        self.close_reason = ""

    def respond(self, *, text: str, product_id: UUID | None = None, by: Actor) -> None:
        """The operator answers; further answers may follow until the post is closed."""
        self.check_open()
        if not (by.role.is_operator or by.role is Role.SYSTEM):
            raise PermissionDenied("only the operator responds to demand posts", post=self.id, user=by.user_id)
        if product_id is not None:
            product_id = _parse_uuid("product_id", product_id)
        self._responded(
            response=PostResponse(
                text=require_text("text", text, max_length=10_000),
                product_id=product_id,
                responded_by=by.user_id,
            ),
            by=by,
        )

    @event("Responded")
    def _responded(self, *, response: PostResponse, by: Actor) -> None:
        self.responses.append(response)
        self.status = PostStatus.ANSWERED

    def second(self, *, unit_id: UUID, by: Actor) -> None:
        """Another unit needs the same: counted once per unit, never for the poster."""
        self.check_open()
        _check_member_of(by, unit_id, "second a post for it")
        if unit_id == self.unit_id:
            raise InvalidInput("unit_id", "the posting unit cannot second its own post", post=self.id)
        if unit_id in self.seconded_by:
            raise AlreadySeconded(f"unit {unit_id} has already seconded this post", post=self.id, unit=unit_id)
        self._seconded(unit_id=unit_id, by=by)

    @event("Seconded")
    def _seconded(self, *, unit_id: UUID, by: Actor) -> None:
        self.seconded_by.append(unit_id)

    def close(self, *, reason: str, by: Actor) -> None:
        """The poster's unit or the operator closes the post."""
        self.check_open()
        if by.role.is_unit and by.unit_id != self.unit_id:
            raise PermissionDenied("only the posting unit or the operator closes a post", post=self.id)
        if not (by.role.is_unit or by.role.is_operator or by.role is Role.SYSTEM):
            raise PermissionDenied("only the posting unit or the operator closes a post", post=self.id)
        self._closed(reason=require_text("reason", reason, max_length=2000), by=by)

    @event("Closed")
    def _closed(self, *, reason: str, by: Actor) -> None:
        self.status = PostStatus.CLOSED
        self.close_reason = reason

    @property
    def interest(self) -> int:
        """How many units need this: the poster and every unit that seconded it."""
        return 1 + len(self.seconded_by)

    def check_open(self) -> None:
        if self.status is PostStatus.CLOSED:
            raise InvalidState("the demand post is closed", post=self.id, status=self.status.value)


# -- errors --------------------------------------------------------------------------


class ProductNotAvailable(InvalidInput):
    code = "product_not_available"


class FieldNotInProduct(InvalidInput):
    code = "field_not_in_product"


class RiskNotAssessed(InvalidState):
    code = "risk_not_assessed"


class ExpertOpinionRequired(InvalidState):
    code = "expert_opinion_required"


class ApplicationNotApproved(InvalidState):
    code = "application_not_approved"


class ProductNotInScope(DomainError):
    code = "product_not_in_scope"


class AlreadySeconded(AlreadyExists):
    code = "already_seconded"

