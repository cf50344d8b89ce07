"""Licensing: the subscription that lets a unit use one product (art. 22, 23, 34).

A subscription is created only from an approved demand application, for a listed
product in that application's scope, for a qualified unit. It carries the two
agreements of art. 22 (development-and-use service agreement and security
confidentiality agreement), each stating purpose, scope, method and term, and becomes
active only when both are signed by both sides. It can be suspended and reinstated,
terminated on misuse (art. 34), and expires when its term is over. Every use checks it
first (art. 23).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.demand import DemandApplication
from domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidState,
    PermissionDenied,
    parse_enum,
    require_text,
)
from domain.identity import Actor, Role
from domain.parties import ApplicationUnit
from domain.pricing import PurposeClass

#: Terms, periods and quotas follow the calendar in Baotou (China Standard Time, no DST).
BUSINESS_TZ = timezone(timedelta(hours=8), "CST")

#: The only metering period the marketplace knows today.
PERIODS = ("month",)


def business_date(at: datetime) -> date:
    """The calendar date in Baotou at instant ``at``; a naive ``at`` is taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(BUSINESS_TZ).date()


# -- value objects ---------------------------------------------------------------------


class AgreementKind(Enum):
    SERVICE = "service"  # 开发利用服务协议
    CONFIDENTIALITY = "confidentiality"  # 安全保密使用协议


class SigningParty(Enum):
    UNIT = "unit"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Agreement:
    """One of the two agreements of art. 22, with what it binds and who signed it."""

    kind: AgreementKind
    purpose: str
    scope: tuple[str, ...]
    method: str
    term_start: date
    term_end: date
    signed_by_unit: str = ""
    signed_by_operator: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", tuple(self.scope))

    @property
    def is_signed(self) -> bool:
        return bool(self.signed_by_unit and self.signed_by_operator)

    def signed_by(self, party: SigningParty) -> str:
        return self.signed_by_unit if party is SigningParty.UNIT else self.signed_by_operator

    def with_signature(self, party: SigningParty, user_id: str) -> Agreement:
        if party is SigningParty.UNIT:
            return replace(self, signed_by_unit=user_id)
        return replace(self, signed_by_operator=user_id)


@dataclass(frozen=True)
class Entitlements:
    """What a subscription may consume per period (art. 23): calls, rows out, privacy budget."""

    queries_per_period: int
    rows_per_period: int
    privacy_budget: float  # epsilon per period
    period: str = "month"

    def __post_init__(self) -> None:
        for name in ("queries_per_period", "rows_per_period"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"entitlements.{name}", f"must be a whole number, got {value!r}")
            if value < 0:
                raise InvalidInput(f"entitlements.{name}", f"must not be negative, got {value}")
        budget = self.privacy_budget
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise InvalidInput("entitlements.privacy_budget", f"must be a number, got {budget!r}")
        if not math.isfinite(budget) or budget < 0:
            raise InvalidInput("entitlements.privacy_budget", f"must be a finite number >= 0, got {budget}")
        object.__setattr__(self, "privacy_budget", float(budget))
        if self.period not in PERIODS:
            raise InvalidInput("entitlements.period", f"must be one of {', '.join(PERIODS)}; got {self.period!r}")


_ENTITLEMENT_FIELDS = ("queries_per_period", "rows_per_period", "privacy_budget", "period")


def parse_entitlements(value: object) -> Entitlements:
    """Accept ``Entitlements`` or a mapping of its fields, naming any missing or unknown key."""
    if isinstance(value, Entitlements):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput("entitlements", "must be {queries_per_period, rows_per_period, privacy_budget}")
    unknown = sorted(str(k) for k in value if k not in _ENTITLEMENT_FIELDS)
    if unknown:
        raise InvalidInput("entitlements", f"unknown key {', '.join(unknown)}")
    for key in _ENTITLEMENT_FIELDS[:3]:
        if key not in value:
            raise InvalidInput(f"entitlements.{key}", "is required")
    return Entitlements(**{str(k): v for k, v in value.items()})


class SubscriptionStatus(Enum):
    PENDING = "pending"  # agreements not yet signed by both sides
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    TERMINATED = "terminated"


ENDED = frozenset({SubscriptionStatus.EXPIRED, SubscriptionStatus.TERMINATED})


class SubscriptionTerms(NamedTuple):
    """The facts of a subscription a use is checked against, taken at the time of use."""

    subscription_id: UUID
    status: SubscriptionStatus
    term_start: date
    term_end: date
    fields: tuple[str, ...]

    def check_usable(self, at: datetime) -> None:
        """Raise ``SubscriptionNotActive`` or ``OutsideTerm`` unless a use at ``at`` is allowed."""
        if self.status is not SubscriptionStatus.ACTIVE:
            raise SubscriptionNotActive(
                f"subscription is {self.status.value}, not active",
                subscription=self.subscription_id,
                status=self.status.value,
            )
        day = business_date(at)
        if not self.term_start <= day <= self.term_end:
            raise OutsideTerm(
                f"{day.isoformat()} is outside the term {self.term_start.isoformat()}"
                f" to {self.term_end.isoformat()}",
                subscription=self.subscription_id,
                day=day.isoformat(),
            )


# -- the subscription -------------------------------------------------------------------


class Subscription(Aggregate):
    """The licence of one unit to use one product under an approved application (art. 22)."""

    @staticmethod
    def create_id(application_id: UUID, product_id: UUID, **_: Any) -> UUID:
        """One subscription per application and product."""
        return uuid5(NAMESPACE_URL, f"shuyun/subscription/{application_id}/{product_id}")

    @classmethod
    def create(
        cls,
        *,
        application: DemandApplication,
        unit: ApplicationUnit,
        product_id: UUID,
        product_listed: bool,
        plan_ids: Collection[str],
        plan_id: str,
        entitlements: Entitlements | Mapping[str, Any],
        method: str,
        by: Actor,
    ) -> Subscription:
        """Check the facts of art. 22 and draft both agreements from the application."""
        if by.role.is_unit:
            raise PermissionDenied("a unit cannot license itself; the operator creates subscriptions")
        application.check_approved()
        if unit.id != application.unit_id:
            raise InvalidInput("unit", f"unit {unit.id} did not file application {application.id}")
        unit.check_qualified()
        item = application.scope_for(product_id)
        if not product_listed:
            raise ProductNotListed(f"product {product_id} is not listed", product=product_id)
        plan_id = require_text("plan_id", plan_id, max_length=200)
        if plan_id not in plan_ids:
            raise UnknownPlan(
                "plan_id",
                f"product {product_id} has no price plan {plan_id!r}"
                f" (plans: {', '.join(sorted(plan_ids)) or 'none'})",
                product=product_id,
            )
        entitlements = parse_entitlements(entitlements)
        method = require_text("method", method, max_length=2000)
        agreements = {
            kind.value: Agreement(
                kind=kind,
                purpose=application.purpose,
                scope=item.fields,
                method=method,
                term_start=application.period_start,
                term_end=application.period_end,
            )
            for kind in AgreementKind
        }
        return cls(
            application_id=application.id,
            product_id=product_id,
            unit_id=unit.id,
            purpose_class=application.purpose_class,
            fields=item.fields,
            term_start=application.period_start,
            term_end=application.period_end,
            plan_id=plan_id,
            entitlements=entitlements,
            agreements=agreements,
            by=by,
        )

    @event("Created")
    def __init__(
        self,
        *,
        application_id: UUID,
        product_id: UUID,
        unit_id: UUID,
        purpose_class: PurposeClass,
        fields: tuple[str, ...],
        term_start: date,
        term_end: date,
        plan_id: str,
        entitlements: Entitlements,
        agreements: dict[str, Agreement],
        by: Actor,
    ) -> None:
        self.application_id = application_id
        self.product_id = product_id
        self.unit_id = unit_id
        self.purpose_class = purpose_class
        self.fields: list[str] = list(fields)
        self.term_start = term_start
        self.term_end = term_end
        self.plan_id = plan_id
        self.entitlements = entitlements
        self.agreements: dict[str, Agreement] = dict(agreements)
        self.status = SubscriptionStatus.PENDING
        self.status_reason = ""

    # -- agreements (art. 22) -------------------------------------------------------
    def agreement(self, kind: AgreementKind | str) -> Agreement:
        return self.agreements[parse_enum("kind", AgreementKind, kind).value]

    def sign(self, *, kind: AgreementKind | str, by: Actor) -> SigningParty:
        """A unit admin of the unit signs for the unit; an operator admin for the operator."""
        kind = parse_enum("kind", AgreementKind, kind)
        self.check_status("sign an agreement of", SubscriptionStatus.PENDING)
        if by.role is Role.UNIT_ADMIN and by.unit_id == self.unit_id:
            party = SigningParty.UNIT
        elif by.role is Role.OPERATOR_ADMIN:
            party = SigningParty.OPERATOR
        else:
            raise PermissionDenied(
                "agreements are signed by a unit admin of the subscribing unit or an operator admin",
                subscription=self.id,
                user=by.user_id,
            )
        signed_by = self.agreement(kind).signed_by(party)
        if signed_by:
            raise AgreementAlreadySigned(
                f"the {kind.value} agreement is already signed for the {party.value} by {signed_by}",
                subscription=self.id,
            )
        self._agreement_signed(kind=kind, party=party, by=by)
        return party

    @event("AgreementSigned")
    def _agreement_signed(self, *, kind: AgreementKind, party: SigningParty, by: Actor) -> None:
        self.agreements[kind.value] = self.agreements[kind.value].with_signature(party, by.user_id)

    @property
    def missing_signatures(self) -> list[str]:
        """E.g. ``["service/operator", "confidentiality/unit"]``; empty when fully signed."""
        return [
            f"{kind.value}/{party.value}"
            for kind in AgreementKind
            for party in SigningParty
            if not self.agreement(kind).signed_by(party)
        ]

    def activate(self, *, by: Actor) -> None:
        """Only when both agreements carry both signatures (art. 22)."""
        self.check_status("activate", SubscriptionStatus.PENDING)
        missing = self.missing_signatures
        if missing:
            raise AgreementsNotSigned(
                f"agreements not fully signed: missing {', '.join(missing)}", subscription=self.id
            )
        self._activated(by=by)

    @event("Activated")
    def _activated(self, *, by: Actor) -> None:
        self.status = SubscriptionStatus.ACTIVE

    # -- supervision (art. 34) and lifecycle ----------------------------------------
    def suspend(self, *, reason: str, by: Actor) -> None:
        self.check_status("suspend", SubscriptionStatus.ACTIVE)
        self._suspended(reason=require_text("reason", reason), by=by)

    @event("Suspended")
    def _suspended(self, *, reason: str, by: Actor) -> None:
        self.status = SubscriptionStatus.SUSPENDED
        self.status_reason = reason

    def reinstate(self, *, reason: str, by: Actor) -> None:
        self.check_status("reinstate", SubscriptionStatus.SUSPENDED)
        self._reinstated(reason=require_text("reason", reason), by=by)

    @event("Reinstated")
    def _reinstated(self, *, reason: str, by: Actor) -> None:
        self.status = SubscriptionStatus.ACTIVE
        self.status_reason = reason

    def terminate(self, *, reason: str, by: Actor) -> None:
        self.check_not_ended()
        self._terminated(reason=require_text("reason", reason), by=by)

    @event("Terminated")
    def _terminated(self, *, reason: str, by: Actor) -> None:
        self.status = SubscriptionStatus.TERMINATED
        self.status_reason = reason

    def is_due_to_expire(self, at: datetime) -> bool:
        return not self.has_ended and business_date(at) > self.term_end

    def expire(self, *, at: datetime, by: Actor) -> None:
        """Only once the last day of the term has passed in Baotou."""
        self.check_not_ended()
        if not self.is_due_to_expire(at):
            raise TermNotOver(
                f"the term runs to {self.term_end.isoformat()}; it is {business_date(at).isoformat()}",
                subscription=self.id,
            )
        self._expired(on=business_date(at), by=by)

    @event("Expired")
    def _expired(self, *, on: date, by: Actor) -> None:
        self.status = SubscriptionStatus.EXPIRED
        self.status_reason = f"term ended {self.term_end.isoformat()}"

    def change_entitlements(self, *, entitlements: Entitlements | Mapping[str, Any], reason: str, by: Actor) -> None:
        self.check_not_ended()
        entitlements = parse_entitlements(entitlements)
        if entitlements == self.entitlements:
            raise InvalidInput("entitlements", "are the same as the current entitlements", subscription=self.id)
        self._entitlements_changed(
            entitlements=entitlements, reason=require_text("reason", reason, max_length=2000), by=by
        )

    @event("EntitlementsChanged")
    def _entitlements_changed(self, *, entitlements: Entitlements, reason: str, by: Actor) -> None:
        self.entitlements = entitlements

    # -- queries and guards -----------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self.status is SubscriptionStatus.ACTIVE

    @property
    def has_ended(self) -> bool:
        return self.status in ENDED

    @property
    def terms(self) -> SubscriptionTerms:
        return SubscriptionTerms(
            subscription_id=self.id,
            status=self.status,
            term_start=self.term_start,
            term_end=self.term_end,
            fields=tuple(self.fields),
        )

    def check_usable(self, at: datetime) -> None:
        """Art. 23: only an active subscription, only within its term."""
        self.terms.check_usable(at)

    def check_status(self, doing: str, *allowed: SubscriptionStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} a subscription that is {self.status.value}",
                subscription=self.id,
                status=self.status.value,
            )

    def check_not_ended(self) -> None:
        if self.has_ended:
            raise InvalidState(
                f"subscription is {self.status.value}", subscription=self.id, status=self.status.value
            )


# -- errors -----------------------------------------------------------------------------


class SubscriptionNotActive(InvalidState):
    code = "subscription_not_active"


class OutsideTerm(InvalidState):
    code = "outside_term"


class TermNotOver(InvalidState):
    code = "term_not_over"


class AgreementsNotSigned(InvalidState):
    code = "agreements_not_signed"


class AgreementAlreadySigned(AlreadyExists):
    code = "agreement_already_signed"


class ProductNotListed(InvalidState):
    code = "product_not_listed"


class UnknownPlan(InvalidInput):
    code = "unknown_plan"
