"""Query policies derived from grade and delivery mode (art. 12, 22, 35) and validation against them."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from marketplace.sandbox.policy import (
    Noise,
    Policy,
    PolicyViolation,
    policy_for,
    validate,
)
from marketplace.sandbox.privacy import laplace_epsilon, threshold_privacy
from marketplace.sandbox.query import AggFn, Mode, QueryError, parse
from tests.sandbox.products import BUS_FIELDS, PEOPLE_FIELDS, bus_policy, people_policy


def check(policy: Policy, data: dict[str, Any]) -> Any:
    return validate(parse(data), policy)


def refused(policy: Policy, data: dict[str, Any]) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        check(policy, data)
    return info.value


COUNT = [{"fn": "count"}]

# --- derivation --------------------------------------------------------------------------


def test_art22_open_general_1_with_row_level_file_allows_rows_exactly() -> None:
    policy = bus_policy()
    assert policy.row_level and policy.noise is Noise.NONE and policy.min_group_size == 1
    assert policy.row_columns == {name for name, _, _ in BUS_FIELDS}


def test_art22_row_level_needs_the_row_level_delivery_mode() -> None:
    assert not bus_policy(modes=["sandbox_aggregate"]).row_level


def test_art22_conditional_openness_never_gets_rows() -> None:
    assert not bus_policy(openness="conditional").row_level


@pytest.mark.parametrize(("grade", "k", "noise"), [
    ("general_2", 5, Noise.PERTURBATION), ("general_3", 10, Noise.PERTURBATION),
    ("general_4", 20, Noise.DIFFERENTIAL_PRIVACY),
])
def test_art12_stricter_grades_get_larger_groups_and_noise(grade: str, k: int, noise: Noise) -> None:
    policy = people_policy(grade, modes=["sandbox_aggregate", "row_level_file"])
    assert policy.min_group_size == k and policy.noise is noise
    assert (policy.dp is not None) == (noise is Noise.DIFFERENTIAL_PRIVACY)


def test_art22_general_3_never_row_level_even_if_declared() -> None:
    assert not people_policy("general_3", modes=["sandbox_aggregate", "row_level_file"]).row_level
    assert not policy_for("general_3", ["row_level_file"], BUS_FIELDS).row_level


def test_art35_personal_fields_are_never_output_nor_dimensions() -> None:
    policy = people_policy("general_2", modes=["sandbox_aggregate", "row_level_file"])
    for name in ("age", "income", "person_id"):
        assert name in policy.never_output
        assert name not in policy.dimension_columns | policy.filter_columns | policy.row_columns
    assert policy.aggregate_functions["income"] == {AggFn.SUM, AggFn.MEAN}
    assert policy.aggregate_functions["person_id"] == {AggFn.COUNT_DISTINCT}
    assert "age" not in policy.aggregate_functions  # personal and without bounds: nothing


def test_art22_noisy_policies_allow_sums_only_with_clamping_bounds() -> None:
    policy = policy_for("general_3", ["sandbox_aggregate"], BUS_FIELDS)
    assert AggFn.SUM not in policy.aggregate_functions["riders"]
    bounded = policy_for("general_3", ["sandbox_aggregate"], BUS_FIELDS, bounds={"riders": (0, 60)})
    assert AggFn.SUM in bounded.aggregate_functions["riders"]


def test_art22_differential_privacy_allows_no_single_row_statistics() -> None:
    policy = people_policy("general_4")
    assert all(not ({AggFn.MIN, AggFn.MAX, AggFn.QUANTILE} & fns) for fns in policy.aggregate_functions.values())


@pytest.mark.parametrize("grade", ["core", "important"])
def test_art12_core_and_important_data_is_not_operated(grade: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        policy_for(grade, ["sandbox_aggregate"], BUS_FIELDS)
    assert info.value.rule == "grade_not_operable"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"grade": "general_9"}, "grade"),
    ({"delivery_modes": ["email"]}, "delivery_modes"),
    ({"delivery_modes": []}, "delivery_modes"),
    ({"fields": []}, "fields"),
    ({"fields": [("a", "blob", False)]}, "fields[0].dtype"),
    ({"fields": [("a", "string", "yes")]}, "fields[0].personal"),
    ({"fields": [("a", "string")]}, "fields[0]"),
    ({"fields": [("a", "string", False), ("a", "integer", False)]}, "fields"),
    ({"identifiers": ["nope"]}, "identifiers"),
    ({"bounds": {"stop": (0, 1)}}, "bounds.stop"),
    ({"bounds": {"riders": (5, 1)}}, "bounds.riders"),
])
def test_policy_for_names_the_bad_argument(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"grade": "general_1", "delivery_modes": ["sandbox_aggregate"], "fields": BUS_FIELDS}
    args |= kwargs
    with pytest.raises(InvalidInput) as info:
        policy_for(args.pop("grade"), args.pop("delivery_modes"), args.pop("fields"), **args)
    assert info.value.field == field


class FakeGrade(Enum):
    GENERAL_3 = "general_3"


class FakeFieldType(Enum):
    FLOAT = "float"


class FakeDeliveryMode(Enum):
    SANDBOX_AGGREGATE = "sandbox_aggregate"


class FakeFieldSpec:
    def __init__(self, name: str, dtype: Enum, personal: bool, **extra: Any) -> None:
        self.name, self.dtype, self.personal = name, dtype, personal
        self.__dict__.update(extra)


def test_policy_for_accepts_domain_enums_and_field_specs() -> None:
    policy = policy_for(FakeGrade.GENERAL_3, [FakeDeliveryMode.SANDBOX_AGGREGATE],
                        [FakeFieldSpec("income", FakeFieldType.FLOAT, True)], bounds={"income": (0, 1)})
    assert policy.grade == "general_3" and policy.column_info("income") is not None


def test_policy_for_reads_identifier_and_bounds_declared_on_field_objects() -> None:
    policy = policy_for(FakeGrade.GENERAL_3, ["sandbox_aggregate"], [
        FakeFieldSpec("income", FakeFieldType.FLOAT, True, bounds=(0, 5000)),
        FakeFieldSpec("pid", FakeFieldType.FLOAT, True, identifier=True)])
    assert policy.aggregate_functions["income"] == {AggFn.SUM, AggFn.MEAN}
    assert policy.aggregate_functions["pid"] == {AggFn.COUNT_DISTINCT}
    with pytest.raises(InvalidInput) as info:
        policy_for("general_3", ["sandbox_aggregate"], [FakeFieldSpec("x", FakeFieldType.FLOAT, False, bounds=5)])
    assert info.value.field == "fields[0].bounds"


def test_policy_describes_itself_in_plain_words() -> None:
    text = " ".join(people_policy("general_4").describe()["summary"])
    assert "at least 20 rows" in text and "epsilon" in text and "no row" in text


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize("grade", ["general_3", "general_4"])
def test_art22_row_level_request_on_aggregate_only_product_is_refused(grade: str) -> None:
    v = refused(people_policy(grade), {"mode": "rows", "columns": ["district"]})
    assert v.rule == "row_level_not_allowed" and v.code == "policy_violation" and v.status == 403


def test_art22_row_request_without_row_level_mode_is_refused() -> None:
    assert refused(bus_policy(modes=["sandbox_aggregate"]), {"mode": "rows", "columns": ["stop"]}).rule == \
        "row_level_not_allowed"


@pytest.mark.parametrize(("data", "rule", "column"), [
    ({"dimensions": ["age"], "aggregates": COUNT}, "personal_field", "age"),
    ({"dimensions": ["income"], "aggregates": COUNT}, "personal_field", "income"),
    ({"aggregates": COUNT, "filters": [{"column": "age", "op": "gt", "value": 90}]}, "personal_field", "age"),
    ({"aggregates": [{"fn": "max", "column": "income"}]}, "personal_field", "income"),
    ({"aggregates": [{"fn": "quantile", "column": "income", "q": 0.5}]}, "personal_field", "income"),
    ({"aggregates": [{"fn": "count_distinct", "column": "income"}]}, "personal_field", "income"),
    ({"dimensions": ["person_id"], "aggregates": COUNT}, "identifier", "person_id"),
    ({"aggregates": COUNT, "filters": [{"column": "person_id", "op": "eq", "value": "x"}]}, "identifier",
     "person_id"),
    ({"aggregates": [{"fn": "min", "column": "person_id"}]}, "identifier", "person_id"),
    ({"dimensions": ["nope"], "aggregates": COUNT}, "unknown_column", "nope"),
    ({"aggregates": [{"fn": "sum", "column": "nope"}]}, "unknown_column", "nope"),
    ({"aggregates": [{"fn": "sum", "column": "district"}]}, "function_not_allowed", "district"),
    ({"aggregates": [{"fn": "mean", "column": "fee"}]}, "function_not_allowed", "fee"),
    ({"aggregates": COUNT, "limit": 1_000_000}, "max_rows", ""),
])
def test_art35_policy_refuses_with_the_rule_and_column(data: dict[str, Any], rule: str, column: str) -> None:
    v = refused(people_policy("general_3"), data)
    assert (v.rule, v.column) == (rule, column)
    assert v.as_dict()["rule"] == rule


def test_art35_personal_field_as_row_column_is_refused() -> None:
    policy = people_policy("general_1", modes=["sandbox_aggregate", "row_level_file"])
    assert policy.row_level
    v = refused(policy, {"mode": "rows", "columns": ["district", "income"]})
    assert (v.rule, v.column) == ("personal_field", "income")


def test_never_output_columns_are_refused_everywhere_but_aggregates() -> None:
    policy = policy_for("general_1", ["sandbox_aggregate", "row_level_file"], BUS_FIELDS, never_output=["fare"])
    for data in ({"mode": "rows", "columns": ["fare"]}, {"dimensions": ["fare"], "aggregates": COUNT},
                 {"aggregates": COUNT, "filters": [{"column": "fare", "op": "gt", "value": 1}]}):
        assert refused(policy, data).rule == "never_output"
    assert refused(policy, {"aggregates": [{"fn": "max", "column": "fare"}]}).rule == "function_not_allowed"
    check(policy, {"aggregates": [{"fn": "sum", "column": "fare"}]})


def test_identifier_serves_count_distinct() -> None:
    vq = check(people_policy(), {"aggregates": [{"fn": "count_distinct", "column": "person_id"}]})
    assert [m.name for m in vq.measures] == ["distinct:person_id", "n"]


def test_art8_filter_values_are_converted_to_the_column_type() -> None:
    vq = check(bus_policy(), {"aggregates": COUNT, "filters": [
        {"column": "boarded_at", "op": "gte", "value": "2024-05-02T08:00:00"},
        {"column": "weekend", "op": "eq", "value": False},
        {"column": "riders", "op": "between", "value": [1, 10.5]},
    ]})
    assert vq.filters[0].value == datetime(2024, 5, 2, 8)
    vq = check(people_policy(), {"aggregates": COUNT, "filters": [
        {"column": "visit_date", "op": "in", "value": ["2024-01-02", "2024-01-01"]}]})
    assert vq.filters[0].value == (date(2024, 1, 1), date(2024, 1, 2))


@pytest.mark.parametrize(("filt", "path"), [
    ({"column": "riders", "op": "eq", "value": "ten"}, "filters[0].value"),
    ({"column": "stop", "op": "eq", "value": 3}, "filters[0].value"),
    ({"column": "weekend", "op": "eq", "value": 1}, "filters[0].value"),
    ({"column": "weekend", "op": "gt", "value": "x"}, "filters[0].op"),
    ({"column": "boarded_at", "op": "lt", "value": "yesterday"}, "filters[0].value"),
    ({"column": "boarded_at", "op": "in", "value": ["2024-05-01T00:00:00", "soon"]}, "filters[0].value[1]"),
])
def test_art8_filter_value_of_the_wrong_type_names_the_path(filt: dict[str, Any], path: str) -> None:
    with pytest.raises(QueryError) as info:
        check(bus_policy(), {"aggregates": COUNT, "filters": [filt]})
    assert info.value.field == path


def test_art22_differential_privacy_spends_exactly_the_epsilon_per_query_per_opendp() -> None:
    policy = people_policy("general_4", epsilon_per_query=0.8)
    vq = check(policy, {"dimensions": ["district"], "aggregates": [
        {"fn": "count"}, {"fn": "mean", "column": "income"}, {"fn": "count_distinct", "column": "person_id"}]})
    assert {m.name for m in vq.measures} == {"n", "sum:income", "nn:income", "distinct:person_id"}
    assert vq.epsilon == pytest.approx(0.8, rel=1e-9)
    assert 0 < vq.delta <= 1e-6
    # recomputed independently from OpenDP's maps
    total = sum(laplace_epsilon(m.scale, m.sensitivity) for m in vq.measures if m.name != "n")
    n = next(m for m in vq.measures if m.name == "n")
    eps_n, delta_n = threshold_privacy(n.scale, vq.threshold)
    assert total + eps_n == pytest.approx(vq.epsilon) and delta_n == vq.delta
    assert vq.threshold >= policy.min_group_size


def test_art22_exact_policies_spend_no_epsilon() -> None:
    vq = check(bus_policy(), {"dimensions": ["line"], "aggregates": COUNT})
    assert vq.epsilon == 0 and vq.measures == ()


def test_art22_fingerprint_ignores_aliases_order_and_limit_but_not_filters() -> None:
    policy = people_policy("general_4")
    a = check(policy, {"dimensions": ["district", "sex"], "aggregates": [
        {"fn": "count", "alias": "n"}, {"fn": "sum", "column": "income"}], "limit": 5})
    b = check(policy, {"dimensions": ["sex", "district"], "aggregates": [
        {"fn": "sum", "column": "income", "alias": "s"}, {"fn": "count"}], "order_by": [{"column": "s"}]})
    c = check(policy, {"dimensions": ["sex", "district"], "aggregates": [
        {"fn": "sum", "column": "income"}, {"fn": "count"}], "filters": [
        {"column": "sex", "op": "eq", "value": "F"}]})
    assert a.fingerprint == b.fingerprint != c.fingerprint


# --- properties --------------------------------------------------------------------------

people_columns = [name for name, _, _ in PEOPLE_FIELDS] + ["ghost"]


@st.composite
def random_queries(draw: st.DrawFn) -> dict[str, Any]:
    fn = st.sampled_from([f.value for f in AggFn])
    aggs = []
    for i in range(draw(st.integers(1, 3))):
        f = draw(fn)
        agg: dict[str, Any] = {"fn": f, "alias": f"a{i}"}
        if f != "count":
            agg["column"] = draw(st.sampled_from(people_columns))
        if f == "quantile":
            agg["q"] = 0.5
        aggs.append(agg)
    filters = [{"column": draw(st.sampled_from(people_columns)), "op": "ne", "value": draw(st.sampled_from(
        ["x", 1, True]))} for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        return {"mode": "rows", "columns": draw(st.lists(st.sampled_from(people_columns), min_size=1, max_size=3,
                                                          unique=True)), "filters": filters}
    return {"dimensions": draw(st.lists(st.sampled_from(people_columns), max_size=2, unique=True)),
            "aggregates": aggs, "filters": filters}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(random_queries(), st.sampled_from(["general_1", "general_2", "general_3", "general_4"]))
def test_art35_whatever_is_asked_an_accepted_query_touches_only_allowed_columns(
    data: dict[str, Any], grade: str
) -> None:
    policy = people_policy(grade, modes=["sandbox_aggregate", "row_level_file"])
    try:
        vq = check(policy, data)
    except (PolicyViolation, QueryError):
        return
    q = vq.query
    outputs = set(q.dimensions) | set(q.columns)
    assert not outputs & policy.never_output
    assert outputs <= policy.dimension_columns | policy.row_columns
    assert {f.column for f in q.filters} <= policy.filter_columns
    if q.mode is Mode.ROWS:
        assert policy.row_level and grade in ("general_1", "general_2")
    for agg in q.aggregates:
        if agg.column is not None:
            assert agg.fn in policy.aggregate_functions[agg.column]
            if agg.column == "person_id":
                assert agg.fn is AggFn.COUNT_DISTINCT
