"""Restoration attacks on the sandbox, one per defence (art. 8, 22, 23, 35).

Every attack targets the planted person of ``conftest``: the only resident of 石拐区 aged
90 or over, income 150,000. Each defence is shown twice where it can be: the attack
succeeding against an undefended (exact) policy — so the test can fail — and failing
against the real one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.sandbox import (
    BudgetExhausted,
    BuiltVersion,
    PolicyViolation,
    QueryError,
    QueryResult,
    run_query,
)
from marketplace.sandbox.policy import Noise, Policy
from tests.sandbox.products import (
    TARGET_DISTRICT,
    TARGET_INCOME,
    TINY_DISTRICT,
    context,
    people_policy,
)

TRIALS = 200  # independent subscriptions: each gets its own noise


def ask(data: dict[str, Any], policy: Policy, version: BuiltVersion, subscription: str = "sub-0001",
        **kwargs: Any) -> QueryResult:
    return run_query(data, policy, pl.scan_parquet(version.path), context(version, subscription, **kwargs))


def exact(policy: Policy) -> Policy:
    """The same policy without noise: what an exact clean room with k suppression would answer."""
    return replace(policy, noise=Noise.NONE, dp=None)


def undefended(policy: Policy) -> Policy:
    """No noise and no minimum group size: the attack's baseline."""
    return replace(policy, noise=Noise.NONE, dp=None, min_group_size=1)


def cell(result: QueryResult, column: str, **dims: str) -> Any:
    frame = result.frame
    for name, value in dims.items():
        frame = frame.filter(pl.col(name).cast(pl.String) == value)
    return frame[column].item() if frame.height else None


# --- row-level requests and forbidden columns ----------------------------------------------


@pytest.mark.parametrize("grade", ["general_3", "general_4"])
def test_art22_no_row_of_an_aggregate_only_product_is_ever_returned_on_request(
    grade: str, people_version: BuiltVersion
) -> None:
    policy = people_policy(grade, modes=["sandbox_aggregate", "row_level_file"])
    for columns in (["district"], ["district", "sex", "age_band", "visit_date", "fee", "visits"]):
        with pytest.raises(PolicyViolation) as info:
            ask({"mode": "rows", "columns": columns, "limit": 1}, policy, people_version, budget=10.0)
        assert info.value.rule == "row_level_not_allowed"


@pytest.mark.parametrize(("data", "rule"), [
    ({"dimensions": ["age"], "aggregates": [{"fn": "count"}]}, "personal_field"),
    ({"dimensions": ["person_id"], "aggregates": [{"fn": "count"}]}, "identifier"),
    ({"aggregates": [{"fn": "max", "column": "income"}]}, "personal_field"),
    ({"aggregates": [{"fn": "min", "column": "age"}]}, "personal_field"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "income", "op": "gt", "value": 149999}]},
     "personal_field"),
])
def test_art35_personal_fields_cannot_be_output_grouped_or_filtered(
    data: dict[str, Any], rule: str, people_version: BuiltVersion
) -> None:
    with pytest.raises(PolicyViolation) as info:
        ask(data, people_policy("general_1", modes=["sandbox_aggregate", "row_level_file"]), people_version)
    assert info.value.rule == rule


def test_art8_filter_values_never_name_columns(people_version: BuiltVersion) -> None:
    """A text value equal to a column's name is compared as text, never read as that column."""
    result = ask({"aggregates": [{"fn": "count"}], "filters": [
        {"column": "sex", "op": "between", "value": ["income", "person_id"]}]},
        undefended(people_policy("general_1")), people_version)
    assert result.frame["count"].to_list() == [0]


# --- k suppression -----------------------------------------------------------------------


def test_art22_groups_below_k_are_suppressed_and_only_counted(
    people_version: BuiltVersion, people: pl.DataFrame
) -> None:
    result = ask({"dimensions": ["district", "age_band"], "aggregates": [{"fn": "count"}]},
                 people_policy("general_3"), people_version)
    truth = people.group_by(pl.col("district").cast(pl.String), "age_band").len()
    small = truth.filter(pl.col("len") < 10)
    assert result.groups_suppressed == small.height > 0
    released = result.frame.with_columns(pl.col("district").cast(pl.String)).join(
        truth, on=["district", "age_band"], how="left")
    assert released.height == truth.height - small.height
    assert (released["len"] >= 10).all()
    assert cell(result, "count", district=TARGET_DISTRICT, age_band="90+") is None


# --- tiny filters ------------------------------------------------------------------------


@pytest.mark.parametrize(("filters", "rule"), [
    ([{"column": "district", "op": "eq", "value": TINY_DISTRICT}], "min_population"),
    ([{"column": "district", "op": "eq", "value": TARGET_DISTRICT},
      {"column": "age_band", "op": "eq", "value": "90+"}], "min_population"),
    ([{"column": "district", "op": "ne", "value": TINY_DISTRICT}], "min_excluded_population"),
    ([{"column": "district", "op": "in", "value": ["nowhere"]}], "min_population"),
])
def test_art22_tiny_filter_is_refused(
    filters: list[dict[str, Any]], rule: str, people_version: BuiltVersion
) -> None:
    data = {"aggregates": [{"fn": "count"}, {"fn": "sum", "column": "income"}], "filters": filters}
    with pytest.raises(PolicyViolation) as info:
        ask(data, people_policy("general_3"), people_version)
    assert info.value.rule == rule
    exact = ask(data, undefended(people_policy("general_1")), people_version)  # the attack, undefended
    assert exact.rows_out == 1


def test_art22_tiny_filter_yields_nothing_under_differential_privacy(people_version: BuiltVersion) -> None:
    data = {"aggregates": [{"fn": "count"}], "filters": [
        {"column": "district", "op": "eq", "value": TARGET_DISTRICT},
        {"column": "age_band", "op": "eq", "value": "90+"}]}
    for i in range(50):
        assert ask(data, people_policy("general_4"), people_version, f"sub-{i}", budget=10.0).rows_out == 0


# --- differencing ------------------------------------------------------------------------

BY_DISTRICT = {"dimensions": ["district"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "income"}]}
WITHOUT_90 = BY_DISTRICT | {"filters": [{"column": "age_band", "op": "ne", "value": "90+"}]}


def _difference(policy: Policy, version: BuiltVersion, subscription: str) -> tuple[int, float]:
    """Attack: (all residents) minus (residents under 90) in the target district = the target."""
    a = ask(BY_DISTRICT, policy, version, subscription)
    b = ask(WITHOUT_90, policy, version, subscription)
    return (cell(a, "count", district=TARGET_DISTRICT) - cell(b, "count", district=TARGET_DISTRICT),
            cell(a, "sum_income", district=TARGET_DISTRICT) - cell(b, "sum_income", district=TARGET_DISTRICT))


def test_art22_differencing_works_against_an_exact_clean_room(people_version: BuiltVersion) -> None:
    count, income = _difference(exact(people_policy("general_3")), people_version, "sub-0001")
    assert count == 1 and income == pytest.approx(TARGET_INCOME, rel=1e-9)


def test_art22_differencing_two_queries_does_not_reveal_the_one_person_group(people_version: BuiltVersion) -> None:
    results = [_difference(people_policy("general_3"), people_version, f"sub-{i}") for i in range(TRIALS)]
    counts = np.array([r[0] for r in results])
    incomes = np.array([r[1] for r in results])
    assert np.mean(counts == 1) < 0.2  # a guess "one person" is right rarely
    assert np.std(counts) > 2.5  # the estimate spreads over many values
    assert np.mean(np.abs(incomes - TARGET_INCOME) < 0.1 * TARGET_INCOME) < 0.1
    assert np.median(np.abs(incomes - TARGET_INCOME)) > TARGET_INCOME / 2


def test_art22_margin_minus_released_cells_does_not_reveal_a_suppressed_cell(people_version: BuiltVersion) -> None:
    """Attack on suppression: the 90+ total minus the released 90+ cells = the suppressed one-person cell."""
    def estimate(policy: Policy, subscription: str) -> int:
        margin = ask({"dimensions": ["age_band"], "aggregates": [{"fn": "count"}]}, policy, people_version,
                     subscription)
        cells = ask({"dimensions": ["age_band", "district"], "aggregates": [{"fn": "count"}]}, policy,
                    people_version, subscription)
        released = cells.frame.filter(pl.col("age_band") == "90+")["count"].sum()
        return int(cell(margin, "count", age_band="90+") - released)

    assert estimate(exact(people_policy("general_3")), "sub-0001") == 1  # the attack, without noise
    guesses = np.array([estimate(people_policy("general_3"), f"sub-{i}") for i in range(TRIALS)])
    assert np.mean(guesses == 1) < 0.2 and np.std(guesses) > 4


# --- averaging ---------------------------------------------------------------------------


def test_art22_repeating_a_query_returns_identical_noise(people_version: BuiltVersion) -> None:
    first = ask(BY_DISTRICT, people_policy("general_3"), people_version)
    for _ in range(20):
        assert ask(BY_DISTRICT, people_policy("general_3"), people_version).frame.equals(first.frame)


def test_art22_rewriting_a_query_returns_the_same_noise(people_version: BuiltVersion) -> None:
    policy = people_policy("general_3")
    base = ask({"dimensions": ["district", "sex"], "aggregates": [{"fn": "count"}, {
        "fn": "sum", "column": "income"}], "filters": [
        {"column": "visits", "op": "gte", "value": 2},
        {"column": "age_band", "op": "in", "value": ["30-39", "40-49"]}]},
        policy, people_version)
    rewritten = ask({"dimensions": ["sex", "district"], "aggregates": [
        {"fn": "sum", "column": "income", "alias": "s"}, {"fn": "count", "alias": "n"}, {
            "fn": "count_distinct", "column": "person_id"}],
        "filters": [{"column": "age_band", "op": "in", "value": ["40-49", "30-39", "40-49"]},
                    {"column": "visits", "op": "gte", "value": 2.0}],
        "order_by": [{"column": "n", "desc": True}], "limit": 1000}, policy, people_version)
    joined = base.frame.join(rewritten.frame, on=["district", "sex"])
    assert joined.height == base.rows_out > 0
    assert joined["count"].to_list() == joined["n"].to_list()
    assert joined["sum_income"].to_list() == joined["s"].to_list()


def test_art22_averaging_fresh_noise_would_restore_but_seeded_noise_does_not(people_version: BuiltVersion) -> None:
    """Averaging 200 answers: with fresh noise (one per subscription) the truth appears; with repeats, never."""
    policy = people_policy("general_3")
    truth = cell(ask(BY_DISTRICT, exact(policy), people_version), "count", district=TARGET_DISTRICT)
    fresh = [cell(ask(BY_DISTRICT, policy, people_version, f"sub-{i}"), "count", district=TARGET_DISTRICT)
             for i in range(TRIALS)]
    assert abs(np.mean(fresh) - truth) < 1.0  # why the seed matters: fresh noise averages away
    repeated = [cell(ask(BY_DISTRICT, policy, people_version, "sub-0001"), "count", district=TARGET_DISTRICT)
                for _ in range(TRIALS)]
    assert len(set(repeated)) == 1  # averaging repeats gains nothing


def test_art22_noise_differs_between_subscriptions_and_versions(people_version: BuiltVersion) -> None:
    policy = people_policy("general_3")
    a = ask(BY_DISTRICT, policy, people_version, "sub-a").frame
    b = ask(BY_DISTRICT, policy, people_version, "sub-b").frame
    other_version = run_query(BY_DISTRICT, policy, pl.scan_parquet(people_version.path),
                              replace(context(people_version, "sub-a"), version="another-version")).frame
    assert not a.equals(b) and not a.equals(other_version)


# --- differential privacy budget ---------------------------------------------------------


def test_art22_privacy_budget_bounds_distinct_queries_and_reports_remaining(people_version: BuiltVersion) -> None:
    policy = people_policy("general_4", epsilon_per_query=1.0, epsilon_budget=3.0)
    remaining = 3.0
    readouts = []
    for i in range(3):
        data = BY_DISTRICT | {"filters": [{"column": "visits", "op": "gte", "value": i}]}
        result = ask(data, policy, people_version, budget=remaining)
        assert result.budget_remaining is not None
        remaining = result.budget_remaining
        readouts.append(remaining)
    assert readouts == pytest.approx([2.0, 1.0, 0.0])
    with pytest.raises(BudgetExhausted) as info:
        ask(BY_DISTRICT | {"filters": [{"column": "visits", "op": "gte", "value": 9}]}, policy, people_version,
            budget=remaining)
    assert info.value.code == "privacy_budget_exhausted" and info.value.needed == pytest.approx(1.0)


def test_art22_small_groups_never_pass_the_noisy_threshold(people_version: BuiltVersion) -> None:
    data = {"dimensions": ["district", "age_band"], "aggregates": [{"fn": "count"}]}
    for i in range(100):
        result = ask(data, people_policy("general_4"), people_version, f"sub-{i}", budget=10.0)
        districts = set(result.frame["district"].cast(pl.String).to_list())
        assert TINY_DISTRICT not in districts
        assert cell(result, "count", district=TARGET_DISTRICT, age_band="90+") is None
        assert result.groups_suppressed is None  # even that count would be data


# --- no raw row of a general_3 product in any response -----------------------------------

DIMS = ["district", "sex", "age_band", "visit_date", "fee", "visits"]


@st.composite
def g3_queries(draw: st.DrawFn) -> dict[str, Any]:
    aggs: list[dict[str, Any]] = [{"fn": "count"}]
    for fn, column in draw(st.lists(st.sampled_from([
        ("sum", "income"), ("mean", "income"), ("count_distinct", "person_id"), ("max", "fee"), ("min", "visits"),
        ("quantile", "fee")]), max_size=3, unique=True)):
        agg: dict[str, Any] = {"fn": fn, "column": column, "alias": f"{fn}_{column}"}
        if fn == "quantile":
            agg["q"] = draw(st.sampled_from([0.1, 0.5, 0.99]))
        aggs.append(agg)
    filters = []
    for column in draw(st.lists(st.sampled_from(["district", "sex", "age_band", "visits"]), max_size=2, unique=True)):
        if column == "visits":
            filters.append({"column": column, "op": draw(st.sampled_from(["gt", "lt", "eq"])),
                            "value": draw(st.integers(0, 20))})
        else:
            value = draw(st.sampled_from({"district": [TARGET_DISTRICT, TINY_DISTRICT, "青山区"], "sex": ["F", "M"],
                                          "age_band": ["90+", "0-9", "50-59"]}[column]))
            filters.append({"column": column, "op": draw(st.sampled_from(["eq", "ne"])), "value": value})
    return {"dimensions": draw(st.lists(st.sampled_from(DIMS), max_size=3, unique=True)), "aggregates": aggs,
            "filters": filters}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=g3_queries())
def test_art22_no_general_3_response_ever_stands_for_fewer_than_k_rows(
    data: dict[str, Any], people_version: BuiltVersion, people: pl.DataFrame
) -> None:
    policy = people_policy("general_3")
    try:
        result = ask(data, policy, people_version)
    except (PolicyViolation, QueryError):
        return
    assert not set(result.frame.columns) & policy.never_output
    truth = people
    for f in data["filters"]:
        col = pl.col(f["column"]).cast(pl.String) if f["column"] == "district" else pl.col(f["column"])
        ops = {"eq": col == f["value"], "ne": col != f["value"], "gt": col > f["value"], "lt": col < f["value"]}
        truth = truth.filter(ops[f["op"]])
    assert truth.height >= policy.min_group_size  # the tiny-filter defence let it through
    dims = data["dimensions"]
    if not dims:
        assert result.rows_out <= 1
        return
    sizes = truth.with_columns(pl.col("district").cast(pl.String)).group_by(dims).len()
    released = result.frame.with_columns(pl.col("district").cast(pl.String)) if "district" in dims else result.frame
    joined = released.join(sizes, on=dims, how="left")
    assert joined.height == result.rows_out
    assert (joined["len"] >= policy.min_group_size).all()


def test_art22_differencing_under_differential_privacy_does_not_reveal_the_person(
    people_version: BuiltVersion,
) -> None:
    policy = people_policy("general_4")
    results = []
    for i in range(TRIALS):
        a = ask(BY_DISTRICT, policy, people_version, f"sub-{i}", budget=10.0)
        b = ask(WITHOUT_90, policy, people_version, f"sub-{i}", budget=10.0)
        with_target = cell(a, "sum_income", district=TARGET_DISTRICT)
        without = cell(b, "sum_income", district=TARGET_DISTRICT)
        if with_target is not None and without is not None:  # else the attacker learns nothing at all
            results.append(with_target - without)
    assert len(results) > TRIALS / 2
    errors = np.abs(np.array(results) - TARGET_INCOME)
    assert np.mean(errors < 0.1 * TARGET_INCOME) < 0.1 and np.median(errors) > TARGET_INCOME
