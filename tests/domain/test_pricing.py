"""Pricing value objects (art. 24 and the national pricing rules): plans, tiers, money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.pricing import (
    BillingUnit,
    PriceAboveCap,
    PricePlan,
    PriceStage,
    PurposeClass,
    Tier,
    check_plan_within_cap,
    parse_money,
)

prices = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def plans(draw: st.DrawFn, max_price: Decimal | None = None) -> PricePlan:
    """Any valid graduated plan: strictly increasing bounds, the last open-ended."""
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=300), max_size=4)))
    top = max_price if max_price is not None else Decimal(10_000)
    price = st.decimals(min_value=0, max_value=top, places=2, allow_nan=False, allow_infinity=False)
    tiers = [Tier(up_to=b, unit_price=draw(price)) for b in bounds] + [Tier(up_to=None, unit_price=draw(price))]
    return PricePlan("p", "Plan", BillingUnit.PER_CALL, tuple(tiers))


def plan(**overrides: Any) -> PricePlan:
    values: dict[str, Any] = {
        "plan_id": "basic",
        "name": "Basic",
        "billing_unit": "per_call",
        "tiers": [{"up_to": 100, "unit_price": "2.00"}, {"up_to": None, "unit_price": "1.00"}],
        "period_months": None,
        "stage": "trial",
    }
    values.update(overrides)
    return PricePlan.parse(values)


# -- purposes --------------------------------------------------------------------------------


def test_art24_public_governance_and_welfare_purposes_are_free_and_others_not() -> None:
    assert {p for p in PurposeClass if p.is_free} == {PurposeClass.PUBLIC_GOVERNANCE, PurposeClass.PUBLIC_WELFARE}


# -- money -----------------------------------------------------------------------------------


@given(prices)
def test_art24_money_with_two_places_round_trips_through_text(amount: Decimal) -> None:
    assert parse_money("price", str(amount)) == amount
    assert parse_money("price", amount).as_tuple().exponent == -2


@given(st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False))
def test_art24_money_finer_than_a_fen_is_refused_not_rounded(amount: Decimal) -> None:
    if amount == amount.quantize(Decimal("0.01")):
        assert parse_money("price", amount) == amount
    else:
        with pytest.raises(InvalidInput, match="more than two decimal places"):
            parse_money("price", amount)


@pytest.mark.parametrize("bad", ["-0.01", "abc", "NaN", "Infinity", True, None, [1]])
def test_art24_money_rejects_negative_non_numeric_and_non_finite(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_money("cap", bad)
    assert info.value.field == "cap"


def test_art24_money_reads_floats_by_their_shortest_text() -> None:
    assert parse_money("price", 0.1) == Decimal("0.10")


# -- plan validation -------------------------------------------------------------------------


def test_art24_plan_parses_from_mapping_with_decimal_prices() -> None:
    p = plan()
    assert p.tiers == (Tier(100, Decimal("2.00")), Tier(None, Decimal("1.00")))
    assert p.billing_unit is BillingUnit.PER_CALL and p.stage is PriceStage.TRIAL


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"plan_id": "Basic Plan"}, "plan_id"),
        ({"name": " "}, "name"),
        ({"billing_unit": "per_year"}, "billing_unit"),
        ({"stage": "beta"}, "stage"),
        ({"tiers": []}, "tiers"),
        ({"tiers": "cheap"}, "tiers"),
        ({"tiers": [{"up_to": 10, "unit_price": "1"}]}, "tiers[0].up_to"),
        ({"tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]}, "tiers[0].up_to"),
        (
            {"tiers": [{"up_to": 10, "unit_price": "1"}, {"up_to": 10, "unit_price": "1"},
                       {"up_to": None, "unit_price": "1"}]},
            "tiers[1].up_to",
        ),
        ({"tiers": [{"up_to": 0, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]}, "tiers[0].up_to"),
        ({"tiers": [{"up_to": None, "unit_price": "-1"}]}, "tiers[0].unit_price"),
        ({"tiers": [{"up_to": None, "unit_price": "1.001"}]}, "tiers[0].unit_price"),
        ({"tiers": [{"up_to": None}]}, "tiers[0].unit_price"),
        ({"billing_unit": "per_period", "period_months": None}, "period_months"),
        ({"billing_unit": "per_period", "period_months": 0}, "period_months"),
        ({"billing_unit": "per_product", "period_months": 12}, "period_months"),
        ({"colour": "red"}, "plan"),
    ],
)
def test_art24_plan_validation_names_the_bad_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        plan(**overrides)
    assert info.value.field == field


def test_art24_plan_needs_its_required_keys() -> None:
    with pytest.raises(InvalidInput) as info:
        PricePlan.parse({"plan_id": "x", "name": "X", "billing_unit": "per_call"})
    assert info.value.field == "plan.tiers"


def test_art24_per_period_plan_records_its_period() -> None:
    assert plan(billing_unit="per_period", period_months=12).period_months == 12


# -- graduated (cumulative) tiers ---------------------------------------------------------


def test_art24_tiers_are_cumulative_each_band_at_its_own_price() -> None:
    p = plan(tiers=[{"up_to": 100, "unit_price": "2"}, {"up_to": 1000, "unit_price": "1"},
                    {"up_to": None, "unit_price": "0.50"}])
    assert p.charge(0) == Decimal("0.00")
    assert p.charge(100) == Decimal("200.00")
    assert p.charge(101) == Decimal("201.00")
    assert p.charge(1000) == Decimal("1100.00")
    assert p.charge(1002) == Decimal("1101.00")


@given(plans(), st.integers(min_value=0, max_value=400))
def test_art24_charge_equals_sum_of_marginal_prices(p: PricePlan, quantity: int) -> None:
    assert p.charge(quantity) == sum((p.marginal_price(n) for n in range(1, quantity + 1)), Decimal("0.00"))


@given(plans(), st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=400))
def test_art24_charge_is_monotone_in_quantity(p: PricePlan, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert p.charge(low) <= p.charge(high)


@given(prices, st.data(), st.integers(min_value=0, max_value=400))
def test_art24_charge_never_exceeds_cap_times_quantity(cap: Decimal, data: st.DataObject, quantity: int) -> None:
    p = data.draw(plans(max_price=cap))
    check_plan_within_cap(p, cap)
    assert p.charge(quantity) <= cap * quantity


@given(plans(), st.integers(min_value=-1000, max_value=-1))
def test_art24_negative_quantity_is_refused(p: PricePlan, quantity: int) -> None:
    with pytest.raises(InvalidInput) as info:
        p.charge(quantity)
    assert info.value.field == "quantity"


def test_art24_price_above_cap_names_plan_tier_and_cap() -> None:
    with pytest.raises(PriceAboveCap) as info:
        check_plan_within_cap(plan(), Decimal("1.50"))
    assert info.value.ids == {"plan": "basic", "tier": "1", "unit_price": "2.00", "cap": "1.50"}
