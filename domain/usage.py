"""Usage: every use of a product, metered against the subscription (art. 8, 23, 26).

Usage is the high-volume stream, so it goes to many small aggregates: one
``UsageLedger`` per subscription and calendar month (Baotou time). Each use is checked
against the subscription's status, term and scope (art. 23) and the period's quotas and
privacy budget before it is recorded; a refused use is recorded too (art. 8: the whole
process is traceable) but never counts against the quota. A retried use (same
``use_id``) is counted once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InvalidInput, InvalidState, PermissionDenied, parse_enum, require_text
from domain.identity import Actor
from domain.licensing import (
    Entitlements,
    OutsideTerm,
    SubscriptionNotActive,
    SubscriptionTerms,
    business_date,
    parse_entitlements,
)

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
#: A query is stored as canonical JSON; beyond this it is not a query but a payload.
MAX_QUERY_CHARS = 100_000
#: Privacy budget sums are rounded so that 0.1 + 0.2 fits a budget of 0.3.
BUDGET_DIGITS = 12


# -- periods ---------------------------------------------------------------------------


def parse_period(value: object, field: str = "period") -> tuple[int, int]:
    """``"YYYY-MM"`` -> ``(year, month)``; years 0001-9998 so the next period exists."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text like 2025-01, got {value!r}")
    match = _PERIOD.match(value)
    if not match:
        raise InvalidInput(field, f"must look like YYYY-MM, got {value!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise InvalidInput(field, f"month must be 01-12, got {value!r}")
    if not 1 <= year <= 9998:
        raise InvalidInput(field, f"year must be 0001-9998, got {value!r}")
    return year, month


def format_period(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def period_of(at: datetime | date) -> str:
    """The metering period of an instant (Baotou calendar) or of a calendar day."""
    day = business_date(at) if isinstance(at, datetime) else at
    return format_period(day.year, day.month)


def period_start(period: str) -> date:
    year, month = parse_period(period)
    return date(year, month, 1)


def next_period_start(period: str) -> date:
    """The day quotas reset: the first day of the following month."""
    year, month = parse_period(period)
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


# -- read-side value -------------------------------------------------------------------


class UsageKind(Enum):
    QUERY = "query"
    WORKSPACE_SESSION = "workspace_session"
    FILE_DOWNLOAD = "file_download"

    @property
    def is_call(self) -> bool:
        """Queries and downloads are calls against the quota; a workspace session is time, recorded only."""
        return self is not UsageKind.WORKSPACE_SESSION


class Remaining(NamedTuple):
    """What is left of a period's entitlements and when it resets."""

    period: str
    queries: int
    rows: int
    budget: float
    reset_on: date

    @classmethod
    def full(cls, entitlements: Entitlements, period: str) -> Remaining:
        """Nothing used yet (no ledger for the period)."""
        return cls(
            period=period,
            queries=entitlements.queries_per_period,
            rows=entitlements.rows_per_period,
            budget=entitlements.privacy_budget,
            reset_on=next_period_start(period),
        )


def canonical_query(query: object) -> str:
    """The query as canonical JSON text.

    Stored as text, not as an object, because a user's JSON could otherwise collide
    with the store's own type tags (``{"_type_": …, "_data_": …}``) and poison the ledger.
    """
    if not isinstance(query, Mapping):
        raise InvalidInput("query", f"must be a JSON object, got {type(query).__name__}")
    if not all(isinstance(k, str) for k in query):
        raise InvalidInput("query", "object keys must be text")
    try:
        text = json.dumps(query, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidInput("query", f"is not plain JSON: {error}") from None
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput("query", f"is {len(text)} characters; at most {MAX_QUERY_CHARS}")
    return text


def _parse_fields(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput("fields", "must be a list of field names")
    return tuple(require_text(f"fields[{i}]", f, max_length=200) for i, f in enumerate(value))


def _parse_count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput(field, f"must not be negative, got {value}")
    return value


def _parse_budget(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(field, f"must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(field, f"must be a finite number >= 0, got {value}")
    return float(value)


def _parse_version(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput("product_version", f"must be a version number or text, got {value!r}")
    return require_text("product_version", str(value), max_length=100)


def add_budget(used: float, spent: float) -> float:
    return round(used + spent, BUDGET_DIGITS)


# -- the ledger ------------------------------------------------------------------------


class UsageLedger(Aggregate):
    """Every use of one subscription in one month, with the running totals (art. 8, 23)."""

    grows = True

    @staticmethod
    def create_id(subscription_id: UUID, period: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/usage/{subscription_id}/{period}")

    @classmethod
    def open(
        cls,
        *,
        subscription_id: UUID,
        period: str,
        unit_id: UUID,
        product_id: UUID,
        entitlements: Entitlements | Mapping[str, Any],
        by: Actor,
    ) -> UsageLedger:
        parse_period(period)
        return cls(
            subscription_id=subscription_id,
            period=period,
            unit_id=unit_id,
            product_id=product_id,
            entitlements=parse_entitlements(entitlements),
            by=by,
        )

    @event("Opened")
    def __init__(
        self,
        *,
        subscription_id: UUID,
        period: str,
        unit_id: UUID,
        product_id: UUID,
        entitlements: Entitlements,
        by: Actor,
    ) -> None:
        self.subscription_id = subscription_id
        self.period = period
        self.unit_id = unit_id
        self.product_id = product_id
        self.entitlements = entitlements
        self.queries_used = 0
        self.rows_used = 0
        self.budget_used = 0.0
        self.refusals = 0
        #: use_id -> kind of every counted use, so a retried use is not counted twice.
        self.uses: dict[str, str] = {}

    # -- recording uses (art. 23) -----------------------------------------------------
    def record_use(
        self,
        *,
        use_id: str,
        user_id: str,
        kind: UsageKind | str,
        product_version: int | str,
        query: Mapping[str, Any],
        fields: Iterable[str],
        rows_out: int,
        budget_spent: float,
        at: datetime,
        terms: SubscriptionTerms,
        by: Actor,
    ) -> bool:
        """Check and count one use; ``False`` when ``use_id`` was already counted.

        Refuses with ``SubscriptionNotActive``, ``OutsideTerm``, ``OutOfScope``,
        ``QuotaExceeded`` or ``PrivacyBudgetExhausted`` (all in ``USE_REFUSALS``), after
        ``InvalidInput`` for malformed arguments and ``WrongPeriod`` for the wrong ledger.
        """
        use_id = require_text("use_id", use_id, max_length=200)
        if use_id in self.uses:
            return False
        user_id = require_text("user_id", user_id, max_length=200)
        kind = parse_enum("kind", UsageKind, kind)
        version = _parse_version(product_version)
        query_json = canonical_query(query)
        names = _parse_fields(fields)
        rows_out = _parse_count("rows_out", rows_out)
        budget_spent = _parse_budget("budget_spent", budget_spent)
        self.check_period(at)
        if terms.subscription_id != self.subscription_id:
            raise InvalidInput("terms", f"are of subscription {terms.subscription_id}, not {self.subscription_id}")
        terms.check_usable(at)
        outside = [f for f in names if f not in terms.fields]
        if outside:
            raise OutOfScope(
                f"field {', '.join(outside)} is not in the subscription's scope",
                subscription=self.subscription_id,
                fields=",".join(outside),
            )
        ent = self.entitlements
        if kind.is_call and self.queries_used + 1 > ent.queries_per_period:
            raise QuotaExceeded(
                "queries", self.queries_used, ent.queries_per_period, self.reset_on, self.subscription_id
            )
        if self.rows_used + rows_out > ent.rows_per_period:
            raise QuotaExceeded("rows", self.rows_used, ent.rows_per_period, self.reset_on, self.subscription_id)
        if add_budget(self.budget_used, budget_spent) > ent.privacy_budget:
            raise PrivacyBudgetExhausted(
                f"privacy budget of {ent.privacy_budget} this {ent.period} would be exceeded "
                f"({self.budget_used} used, {budget_spent} asked); resets on {self.reset_on.isoformat()}",
                subscription=self.subscription_id,
                reset_on=self.reset_on.isoformat(),
            )
        self._use_recorded(
            use_id=use_id,
            user_id=user_id,
            kind=kind,
            product_version=version,
            query=query_json,
            fields=names,
            rows_out=rows_out,
            budget_spent=budget_spent,
            at=at,
            by=by,
        )
        return True

    @event("UseRecorded")
    def _use_recorded(
        self,
        *,
        use_id: str,
        user_id: str,
        kind: UsageKind,
        product_version: str,
        query: str,
        fields: tuple[str, ...],
        rows_out: int,
        budget_spent: float,
        at: datetime,
        by: Actor,
    ) -> None:
        self.uses[use_id] = kind.value
        if kind.is_call:
            self.queries_used += 1
        self.rows_used += rows_out
        self.budget_used = add_budget(self.budget_used, budget_spent)

    def record_refusal(
        self,
        *,
        use_id: str,
        user_id: str,
        query: Mapping[str, Any],
        reason: str,
        at: datetime,
        by: Actor,
        message: str = "",
    ) -> None:
        """Record a refused use: traceable (art. 8), but it consumes nothing."""
        use_id = require_text("use_id", use_id, max_length=200)
        if use_id in self.uses:
            raise InvalidState(
                f"use {use_id} was already counted; it cannot also be refused",
                ledger=self.id,
                use=use_id,
            )
        self._use_refused(
            use_id=use_id,
            user_id=require_text("user_id", user_id, max_length=200),
            query=canonical_query(query),
            reason=require_text("reason", reason, max_length=100),
            message=message[:2000] if isinstance(message, str) else "",
            at=self._in_period(at),
            by=by,
        )

    @event("UseRefused")
    def _use_refused(
        self, *, use_id: str, user_id: str, query: str, reason: str, message: str, at: datetime, by: Actor
    ) -> None:
        self.refusals += 1

    def adopt_entitlements(self, *, entitlements: Entitlements | Mapping[str, Any], by: Actor) -> None:
        """Follow a change of the subscription's entitlements for the rest of the period."""
        entitlements = parse_entitlements(entitlements)
        if entitlements == self.entitlements:
            raise InvalidInput("entitlements", "are the same as the ledger's", ledger=self.id)
        self._entitlements_adopted(entitlements=entitlements, by=by)

    @event("EntitlementsAdopted")
    def _entitlements_adopted(self, *, entitlements: Entitlements, by: Actor) -> None:
        self.entitlements = entitlements

    # -- queries ----------------------------------------------------------------------
    @property
    def reset_on(self) -> date:
        return next_period_start(self.period)

    @property
    def queries_remaining(self) -> int:
        return self.remaining().queries

    @property
    def rows_remaining(self) -> int:
        return self.remaining().rows

    @property
    def budget_remaining(self) -> float:
        return self.remaining().budget

    def remaining(self, entitlements: Entitlements | None = None) -> Remaining:
        """What is left this period, under ``entitlements`` if they changed and were not adopted yet."""
        ent = entitlements or self.entitlements
        return Remaining(
            period=self.period,
            queries=max(0, ent.queries_per_period - self.queries_used),
            rows=max(0, ent.rows_per_period - self.rows_used),
            budget=max(0.0, round(ent.privacy_budget - self.budget_used, BUDGET_DIGITS)),
            reset_on=self.reset_on,
        )

    def check_period(self, at: datetime) -> None:
        self._in_period(at)

    def _in_period(self, at: datetime) -> datetime:
        if not isinstance(at, datetime):
            raise InvalidInput("at", f"must be a date and time, got {type(at).__name__}")
        if period_of(at) != self.period:
            raise WrongPeriod(
                f"a use at {at.isoformat()} belongs to period {period_of(at)}, not {self.period}",
                ledger=self.id,
            )
        return at


# -- errors ----------------------------------------------------------------------------


class QuotaExceeded(DomainError):
    """The period's query or row quota would be exceeded; it resets on ``reset_on``."""

    code = "quota_exceeded"
    status = 429

    def __init__(self, quota: str, used: int, allowed: int, reset_on: date, subscription: UUID) -> None:
        super().__init__(
            f"{quota} quota of {allowed} per period would be exceeded ({used} used);"
            f" resets on {reset_on.isoformat()}",
            quota=quota,
            used=used,
            allowed=allowed,
            reset_on=reset_on.isoformat(),
            subscription=subscription,
        )
        self.quota = quota
        self.reset_on = reset_on


class PrivacyBudgetExhausted(DomainError):
    code = "privacy_budget_exhausted"
    status = 429


class OutOfScope(PermissionDenied):
    """Art. 23: data may be used only as agreed; the field is not in the subscription."""

    code = "out_of_scope"


class WrongPeriod(InvalidState):
    code = "wrong_period"


#: Refusals of a well-formed use by the rules; these are recorded on the ledger.
USE_REFUSALS: tuple[type[DomainError], ...] = (
    SubscriptionNotActive,
    OutsideTerm,
    OutOfScope,
    QuotaExceeded,
    PrivacyBudgetExhausted,
)
