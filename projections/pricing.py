"""Pricing review for the operator: caps, plans and every price change with its reason (art. 24).

The tables hold the facts events give: each product's cap, its plans on offer now and the
full history of cap and plan changes (each with its reason and who made it, art. 24 and
the national pricing rules: prices are public and every change is accountable). Revenue
is derived at read time by ``views`` from usage x prices, using ``domain.pricing`` for the
arithmetic so it is the same arithmetic ``DataProduct.quote`` uses:

- a subscription pays under its plan (``Subscription.plan_id``), per metering period
  (its usage ledger, one per calendar month in Baotou);
- ``per_call`` plans charge the period's counted queries on the graduated (cumulative)
  tiers, restarting every period; ``per_period`` plans charge one unit for each period
  in which the subscription was used; ``per_product`` plans charge one unit, in the
  subscription's first period of use;
- public governance and public-welfare use is free (``PurposeClass.is_free``);
- the prices are those of the plan as it stood when the period's ledger was opened (its
  first use): a price change applies from the next period on, never retroactively, and
  a retired plan keeps charging its last prices to subscriptions still holding it.

``ALLOWED_MAX_REVENUE_PER_YEAR`` is the operator's maximum allowed revenue approved by the
price authority (national rules: revenue above it is deducted from the next period).
It is a setting of this module, overridable per call in ``views`` (``allowed_max=``);
the default is 1,000,000 yuan per calendar year.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from projections.base import (
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    Delete,
    HandlerProjection,
    Insert,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
)

#: The operator's maximum allowed revenue per calendar year, in yuan (see the module doc).
ALLOWED_MAX_REVENUE_PER_YEAR = Decimal("1000000.00")

PRODUCTS = Table(
    "rm_pricing_products",
    {
        "product_id": TEXT,
        "name": TEXT,
        "cap": FLOAT,
        "cap_text": TEXT,
        "cap_reason": TEXT,
        "cap_set_by": TEXT,
        "cap_set_at": TIMESTAMP,
    },
    key=("product_id",),
)

PLANS = Table(
    "rm_pricing_plans",
    {
        "product_id": TEXT,
        "plan_id": TEXT,
        "name": TEXT,
        "billing_unit": TEXT,
        "stage": TEXT,
        "period_months": INT,
        "tiers": TEXT,
        "plan": TEXT,
        "lowest_unit_price": FLOAT,
        "highest_unit_price": FLOAT,
        "set_id": INT,
        "set_at": TIMESTAMP,
    },
    key=("product_id", "plan_id"),
)

HISTORY = Table(
    "rm_pricing_history",
    {
        "product_id": TEXT,
        "notification_id": INT,
        "change": TEXT,
        "plan_id": TEXT,
        "cap": FLOAT,
        "plan": TEXT,
        "stage": TEXT,
        "billing_unit": TEXT,
        "lowest_unit_price": FLOAT,
        "highest_unit_price": FLOAT,
        "reason": TEXT,
        "by_user": TEXT,
        "by_role": TEXT,
        "at": TIMESTAMP,
    },
    key=("product_id", "notification_id"),
)


def plan_json(plan: Mapping[str, Any]) -> str:
    """A plan as canonical JSON: prices stay decimal text, so no float ever touches money."""
    return json.dumps(plan, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def tiers_text(plan: Mapping[str, Any]) -> str:
    """``1-1000 @ 2.00; 1001-10000 @ 1.20; 10001+ @ 0.80``: the graduated schedule, readable."""
    parts = []
    lower = 1
    for tier in plan["tiers"]:
        up_to = tier["up_to"]
        band = f"{lower}+" if up_to is None else f"{lower}-{up_to}"
        parts.append(f"{band} @ {tier['unit_price']}")
        if up_to is not None:
            lower = up_to + 1
    return "; ".join(parts)


def _prices(plan: Mapping[str, Any]) -> tuple[float, float]:
    prices = [Decimal(t["unit_price"]) for t in plan["tiers"]]
    return float(min(prices)), float(max(prices))


def _actor(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    by = data.get("by")
    if not isinstance(by, dict):
        return None, None
    return by.get("user_id"), by.get("role")


def _built(e: Recorded) -> Sequence[Op]:
    return (Upsert(PRODUCTS.name, {"product_id": e.originator_id, "name": e.data["name"]}),)


def _cap_set(e: Recorded) -> Sequence[Op]:
    d = e.data
    user, role = _actor(d)
    cap = d["cap"]
    pid = e.originator_id
    return (
        Update(PRODUCTS.name, {"product_id": pid}, {
            "cap": float(Decimal(cap)), "cap_text": cap, "cap_reason": d["reason"], "cap_set_by": user,
            "cap_set_at": d["timestamp"],
        }),
        Insert(HISTORY.name, (pid, e.notification_id, "cap_set", None, float(Decimal(cap)), None, None, None,
                              None, None, d["reason"], user, role, d["timestamp"])),
    )


def _plan_set(e: Recorded) -> Sequence[Op]:
    d = e.data
    plan = d["plan"]
    user, role = _actor(d)
    pid = e.originator_id
    low, high = _prices(plan)
    text = plan_json(plan)
    return (
        Upsert(PLANS.name, {
            "product_id": pid, "plan_id": plan["plan_id"], "name": plan["name"],
            "billing_unit": plan["billing_unit"], "stage": plan["stage"], "period_months": plan["period_months"],
            "tiers": tiers_text(plan), "plan": text, "lowest_unit_price": low, "highest_unit_price": high,
            "set_id": e.notification_id, "set_at": d["timestamp"],
        }),
        Insert(HISTORY.name, (pid, e.notification_id, "plan_set", plan["plan_id"], None, text, plan["stage"],
                              plan["billing_unit"], low, high, d["reason"], user, role, d["timestamp"])),
    )


def _plan_retired(e: Recorded) -> Sequence[Op]:
    d = e.data
    user, role = _actor(d)
    pid = e.originator_id
    return (
        Delete(PLANS.name, {"product_id": pid, "plan_id": d["plan_id"]}),
        Insert(HISTORY.name, (pid, e.notification_id, "plan_retired", d["plan_id"], None, None, None, None,
                              None, None, d["reason"], user, role, d["timestamp"])),
    )


_P = "domain.products:DataProduct."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _P + "Built": _built,
    _P + "PriceCapSet": _cap_set,
    _P + "PricePlanSet": _plan_set,
    _P + "PricePlanRetired": _plan_retired,
}


class PricingProjection(HandlerProjection):
    """Price caps, plans on offer and the full price-change history of every product."""

    name = "pricing"
    version = 1
    handlers = HANDLERS
    tables = (PRODUCTS, PLANS, HISTORY)
