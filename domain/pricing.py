"""Pricing: price plans and caps of data products (art. 24 and the national rules).

Art. 24 forbids trading raw data and asks for lawful, inclusive, fair prices "with
public welfare in mind". The national rules that complement it make that concrete:

- public governance and public-welfare use is free; industry and commercial use may
  pay an operation service fee (``PurposeClass.is_free``);
- the fee is capped: the authority sets a price cap per product and the operator's
  actual prices must not exceed it (``check_plan_within_cap``);
- billing is per product, per period or per data call, and tiered schedules are
  cumulative (graduated): each band of units is charged at its own price
  (``PricePlan.charge``);
- an operator without a full year of operation charges trial prices (``PriceStage``).

The values here are immutable value objects carried by events of ``DataProduct``
(``domain.products``): every change of a plan or cap is an event with a reason, so the
price history *is* the event history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from domain.errors import DomainError, InvalidInput, InvalidState, parse_enum, require_text

#: Prices are money in yuan with fen precision.
CENT = Decimal("0.01")
#: A bound against typing errors (a misplaced comma), not an economic rule.
MAX_PRICE = Decimal("100000000.00")
#: A per-period plan bills months; ten years is beyond any agreement term.
MAX_PERIOD_MONTHS = 120
_PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class PurposeClass(Enum):
    """Why data is used; decides whether a fee may be charged at all (national rules)."""

    PUBLIC_GOVERNANCE = "public_governance"
    PUBLIC_WELFARE = "public_welfare"
    INDUSTRY = "industry"
    COMMERCIAL = "commercial"

    @property
    def is_free(self) -> bool:
        """Public governance and public-welfare use is always free of charge."""
        return self in (PurposeClass.PUBLIC_GOVERNANCE, PurposeClass.PUBLIC_WELFARE)


class BillingUnit(Enum):
    """What one unit of quantity is: a period of access, a data call, or the product once."""

    PER_PERIOD = "per_period"
    PER_CALL = "per_call"
    PER_PRODUCT = "per_product"


class PriceStage(Enum):
    """Trial prices until the operator has a full year of operation, formal prices after."""

    TRIAL = "trial"
    FORMAL = "formal"


def parse_money(field: str, value: object) -> Decimal:
    """A non-negative amount with at most two decimal places, as a ``Decimal`` with exactly two.

    Floats are accepted through their shortest text form (``0.1`` is 0.10, not
    0.1000000000000000055...), so a UI number input cannot smuggle in binary noise;
    anything finer than a fen is refused rather than silently rounded.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise InvalidInput(field, f"must be an amount of money, got {type(value).__name__}")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise InvalidInput(field, f"is not a number: {value!r}") from None
    if not amount.is_finite():
        raise InvalidInput(field, f"must be a finite amount, got {value!r}")
    if amount < 0:
        raise InvalidInput(field, f"must not be negative, got {amount}")
    if amount > MAX_PRICE:
        raise InvalidInput(field, f"must be at most {MAX_PRICE}, got {amount}")
    quantised = amount.quantize(CENT)
    if quantised != amount:
        raise InvalidInput(field, f"has more than two decimal places: {amount}")
    return quantised


def parse_quantity(field: str, value: object) -> int:
    """A whole, non-negative number of billing units."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput(field, f"must not be negative, got {value}")
    return value


def _prefixed(prefix: str, error: InvalidInput) -> InvalidInput:
    """The same problem, with the field path of the enclosing value (``tiers[1].unit_price``)."""
    problem = error.message.split(": ", 1)[1] if ": " in error.message else error.message
    return InvalidInput(f"{prefix}.{error.field}", problem)


@dataclass(frozen=True)
class Tier:
    """One band of a graduated schedule: units up to ``up_to`` (inclusive) cost ``unit_price``.

    ``up_to`` is cumulative (units 1..100, then 101..1000, ...); ``None`` means "and
    every unit beyond", which only the last band of a plan may say.
    """

    up_to: int | None
    unit_price: Decimal

    def __post_init__(self) -> None:
        if self.up_to is not None and (isinstance(self.up_to, bool) or not isinstance(self.up_to, int)):
            raise InvalidInput("up_to", f"must be a whole number of units or empty, got {self.up_to!r}")
        if self.up_to is not None and self.up_to < 1:
            raise InvalidInput("up_to", f"must be at least 1, got {self.up_to}")
        object.__setattr__(self, "unit_price", parse_money("unit_price", self.unit_price))


@dataclass(frozen=True)
class PricePlan:
    """A published price schedule of a product (art. 24); a product may offer several."""

    plan_id: str
    name: str
    billing_unit: BillingUnit
    tiers: tuple[Tier, ...]
    period_months: int | None = None
    stage: PriceStage = PriceStage.TRIAL

    def __post_init__(self) -> None:
        plan_id = self.plan_id.strip() if isinstance(self.plan_id, str) else self.plan_id
        if not isinstance(plan_id, str) or not _PLAN_ID.fullmatch(plan_id):
            raise InvalidInput(
                "plan_id", f"must be 1-40 lower-case letters, digits, '-' or '_', got {self.plan_id!r}"
            )
        object.__setattr__(self, "plan_id", plan_id)
        object.__setattr__(self, "name", require_text("name", self.name, max_length=200))
        unit = parse_enum("billing_unit", BillingUnit, self.billing_unit)
        object.__setattr__(self, "billing_unit", unit)
        object.__setattr__(self, "stage", parse_enum("stage", PriceStage, self.stage))
        object.__setattr__(self, "tiers", _parse_tiers(self.tiers))
        months = self.period_months
        if unit is BillingUnit.PER_PERIOD:
            if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_PERIOD_MONTHS:
                raise InvalidInput(
                    "period_months", f"a per-period plan needs 1 to {MAX_PERIOD_MONTHS} months, got {months!r}"
                )
        elif months is not None:
            raise InvalidInput("period_months", f"only a per-period plan has a period, not {unit.value}")

    @classmethod
    def parse(cls, value: PricePlan | Mapping[str, Any]) -> PricePlan:
        """Accept a plan or the plain mapping a form or API sends."""
        if isinstance(value, PricePlan):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInput("plan", f"must be a price plan, got {type(value).__name__}")
        known = {"plan_id", "name", "billing_unit", "tiers", "period_months", "stage"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidInput("plan", f"unknown keys {unknown}; allowed: {sorted(known)}")
        for key in ("plan_id", "name", "billing_unit", "tiers"):
            if key not in value:
                raise InvalidInput(f"plan.{key}", "is required")
        return cls(**value)

    def marginal_price(self, unit_number: int) -> Decimal:
        """The price of the ``unit_number``-th unit (1-based): the band it falls in."""
        if unit_number < 1:
            raise InvalidInput("unit_number", f"units are counted from 1, got {unit_number}")
        for tier in self.tiers:
            if tier.up_to is None or unit_number <= tier.up_to:
                return tier.unit_price
        raise AssertionError("the last tier is open-ended")  # guaranteed by _parse_tiers

    def charge(self, quantity: int) -> Decimal:
        """Graduated charge: each band of the ``quantity`` units is charged at its own price."""
        quantity = parse_quantity("quantity", quantity)
        total = Decimal("0.00")
        lower = 0
        for tier in self.tiers:
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            if upper > lower:
                total += (upper - lower) * tier.unit_price
            if tier.up_to is None or quantity <= tier.up_to:
                break
            lower = tier.up_to
        return total.quantize(CENT)

    @property
    def highest_unit_price(self) -> Decimal:
        return max(t.unit_price for t in self.tiers)


def _parse_tiers(value: object) -> tuple[Tier, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput("tiers", "must be a list of tiers")
    if not value:
        raise InvalidInput("tiers", "a plan needs at least one tier")
    tiers: list[Tier] = []
    for i, item in enumerate(value):
        try:
            if isinstance(item, Tier):
                tiers.append(item)
            elif isinstance(item, Mapping):
                if "unit_price" not in item:
                    raise InvalidInput("unit_price", "is required")
                tiers.append(Tier(up_to=item.get("up_to"), unit_price=item["unit_price"]))
            else:
                raise InvalidInput("tier", f"must be a tier, got {type(item).__name__}")
        except InvalidInput as e:
            raise _prefixed(f"tiers[{i}]", e) from None
    for i, tier in enumerate(tiers[:-1]):
        if tier.up_to is None:
            raise InvalidInput(f"tiers[{i}].up_to", "only the last tier may be open-ended")
        following = tiers[i + 1].up_to
        if following is not None and following <= tier.up_to:
            raise InvalidInput(
                f"tiers[{i + 1}].up_to", f"must be above the previous tier's {tier.up_to}, got {following}"
            )
    if tiers[-1].up_to is not None:
        raise InvalidInput(f"tiers[{len(tiers) - 1}].up_to", "the last tier must be open-ended (empty)")
    return tuple(tiers)


def check_plan_within_cap(plan: PricePlan, cap: Decimal) -> None:
    """Every unit price of ``plan`` must be at most the product's price cap (national rules)."""
    for i, tier in enumerate(plan.tiers):
        if tier.unit_price > cap:
            raise PriceAboveCap(
                f"plan {plan.plan_id!r} tier {i + 1} charges {tier.unit_price} per unit, "
                f"above the price cap of {cap}",
                plan=plan.plan_id, tier=i + 1, unit_price=tier.unit_price, cap=cap,
            )


class PriceAboveCap(DomainError):
    """A price above the cap the authority set for the product (national rules)."""

    code = "price_above_cap"


class PriceCapMissing(InvalidState):
    """Prices are checked against the cap, so a cap must exist before any plan."""

    code = "price_cap_missing"
