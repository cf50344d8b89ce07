"""The sandbox query language (art. 8, 22): strict JSON parsing, canonical form, no crash on junk."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.sandbox.query import (
    MAX_LIMIT,
    AggFn,
    FilterOp,
    Mode,
    Query,
    QueryError,
    canonical_json,
    parse,
    parse_json,
)

# --- examples ----------------------------------------------------------------------------


def test_art8_query_defaults_are_filled_in_canonical_form() -> None:
    q = parse({"dimensions": ["district"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "fee"},
                                                           {"fn": "quantile", "column": "fee", "q": 0.5}]})
    assert q.mode is Mode.AGGREGATE
    assert [a.alias for a in q.aggregates] == ["count", "sum_fee", "p50_fee"]
    assert q.output_columns == ("district", "count", "sum_fee", "p50_fee")
    assert q.to_dict() == {
        "mode": "aggregate", "dimensions": ["district"], "columns": [], "filters": [],
        "aggregates": [
            {"fn": "count", "column": None, "alias": "count", "q": None},
            {"fn": "sum", "column": "fee", "alias": "sum_fee", "q": None},
            {"fn": "quantile", "column": "fee", "alias": "p50_fee", "q": 0.5},
        ],
        "order_by": [], "limit": None,
    }


def test_art8_in_lists_are_sorted_and_unique_and_integral_floats_become_ints() -> None:
    q = parse({"aggregates": [{"fn": "count"}],
               "filters": [{"column": "a", "op": "in", "value": [3, 1.0, 2, 1, 3]},
                           {"column": "b", "op": "eq", "value": 2.0}]})
    assert q.filters[0].value == (1, 2, 3)
    assert q.filters[1].value == 2 and isinstance(q.filters[1].value, int)


def test_art8_rows_mode_selects_columns() -> None:
    q = parse({"mode": "rows", "columns": ["stop", "riders"], "order_by": [{"column": "riders", "desc": True}],
               "limit": 10})
    assert q.mode is Mode.ROWS and q.output_columns == ("stop", "riders") and q.limit == 10


def test_art8_query_text_parses_like_its_json() -> None:
    data = {"dimensions": ["x"], "aggregates": [{"fn": "count"}]}
    assert parse_json(json.dumps(data)) == parse(data)


BAD: list[tuple[Any, str, str]] = [
    ([], "query", "must be an object"),
    ({"aggregates": [{"fn": "count"}], "select": "*"}, "select", "unknown field"),
    ({"aggregates": [{"fn": "count"}, {"fn": "median2", "column": "x"}]}, "aggregates[1].fn",
     "unknown function 'median2'"),
    ({"aggregates": []}, "aggregates", "at least one aggregate"),
    ({"aggregates": [{"fn": "count", "column": "x"}]}, "aggregates[0].column", "takes no column"),
    ({"aggregates": [{"fn": "sum"}]}, "aggregates[0].column", "is required"),
    ({"aggregates": [{"fn": "quantile", "column": "x"}]}, "aggregates[0].q", "is required"),
    ({"aggregates": [{"fn": "quantile", "column": "x", "q": 1.5}]}, "aggregates[0].q", "strictly between"),
    ({"aggregates": [{"fn": "sum", "column": "x", "q": 0.5}]}, "aggregates[0].q", "only for 'quantile'"),
    ({"aggregates": [{"fn": "count"}, {"fn": "count"}]}, "aggregates[1].alias", "already used"),
    ({"dimensions": ["n"], "aggregates": [{"fn": "count", "alias": "n"}]}, "aggregates[0].alias",
     "already used by dimensions[0]"),
    ({"aggregates": [{"fn": "sum", "column": "x; DROP TABLE t"}]}, "aggregates[0].column", "not a column name"),
    ({"aggregates": [{"fn": "count", "alias": "__n"}]}, "aggregates[0].alias", "not a column name"),
    ({"dimensions": ["^.*$"], "aggregates": [{"fn": "count"}]}, "dimensions[0]", "not a column name"),
    ({"dimensions": ["a", "a"], "aggregates": [{"fn": "count"}]}, "dimensions[1]", "listed twice"),
    ({"dimensions": "a", "aggregates": [{"fn": "count"}]}, "dimensions", "must be a list"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "like", "value": "x%"}]},
     "filters[0].op", "unknown value 'like'"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "eq"}]}, "filters[0].value", "is required"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "between", "value": [1]}]},
     "filters[0].value", "[low, high]"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "between", "value": [5, 1]}]},
     "filters[0].value", "above high"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "in", "value": []}]},
     "filters[0].value", "at least one"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "in", "value": [1, "x"]}]},
     "filters[0].value", "one kind"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "gt", "value": True}]},
     "filters[0].value", "cannot be compared"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "eq", "value": {"$gt": 1}}]},
     "filters[0].value", "must be text, a number"),
    ({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "eq", "value": 2**60}]},
     "filters[0].value", "out of range"),
    ({"aggregates": [{"fn": "count"}], "columns": ["a"]}, "columns", "only for mode 'rows'"),
    ({"mode": "rows", "columns": ["a"], "dimensions": ["a"]}, "dimensions", "not allowed in mode 'rows'"),
    ({"mode": "rows", "columns": []}, "columns", "at least one column"),
    ({"mode": "sql", "aggregates": [{"fn": "count"}]}, "mode", "unknown value 'sql'"),
    ({"aggregates": [{"fn": "count"}], "order_by": [{"column": "x"}]}, "order_by[0].column",
     "not a column of the result"),
    ({"aggregates": [{"fn": "count"}], "order_by": [{"column": "count", "desc": "yes"}]}, "order_by[0].desc",
     "true or false"),
    ({"aggregates": [{"fn": "count"}], "limit": 0}, "limit", "between 1"),
    ({"aggregates": [{"fn": "count"}], "limit": MAX_LIMIT + 1}, "limit", "between 1"),
    ({"aggregates": [{"fn": "count"}], "limit": True}, "limit", "whole number"),
    ({"aggregates": [{"fn": "count"}], "limit": 2.5}, "limit", "whole number"),
]


@pytest.mark.parametrize(("data", "path", "problem"), BAD)
def test_art8_malformed_query_is_refused_naming_the_offending_path(data: Any, path: str, problem: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(data)
    assert info.value.field == path
    assert problem in info.value.message
    assert info.value.message.startswith(f"{path}: ")
    assert info.value.code == "invalid_query"


@pytest.mark.parametrize("text", ["", "{", "NaN", '{"limit": Infinity}', "[1, 2", '{"a": 1} x'])
def test_art8_malformed_json_text_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_json(text)
    assert info.value.field in ("query", "limit")


def test_art8_non_finite_numbers_are_refused() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(QueryError, match="finite"):
            parse({"aggregates": [{"fn": "count"}], "filters": [{"column": "a", "op": "eq", "value": value}]})


# --- properties --------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
texts = st.text(max_size=20)
numbers = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False,
                                                              min_value=-1e300, max_value=1e300))
scalars = st.one_of(texts, numbers, st.booleans())


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from([o.value for o in FilterOp]))
    column = draw(names)
    if op == "in":
        kind = draw(st.sampled_from([texts, numbers, st.booleans()]))
        return {"column": column, "op": op, "value": draw(st.lists(kind, min_size=1, max_size=5))}
    if op == "between":
        kind = draw(st.sampled_from([texts, numbers]))
        a, b = draw(kind), draw(kind)
        return {"column": column, "op": op, "value": sorted([a, b])}
    if op in ("gt", "gte", "lt", "lte"):
        return {"column": column, "op": op, "value": draw(st.one_of(texts, numbers))}
    return {"column": column, "op": op, "value": draw(scalars)}


@st.composite
def aggregates(draw: st.DrawFn) -> dict[str, Any]:
    fn = draw(st.sampled_from([f.value for f in AggFn]))
    agg: dict[str, Any] = {"fn": fn}
    if fn != "count":
        agg["column"] = draw(names)
    if fn == "quantile":
        agg["q"] = draw(st.floats(min_value=0.01, max_value=0.99))
    if draw(st.booleans()):
        agg["alias"] = draw(names)
    return agg


@st.composite
def valid_queries(draw: st.DrawFn) -> dict[str, Any]:
    """Queries that should parse (those that collide on aliases are filtered by the caller)."""
    rows = draw(st.booleans())
    q: dict[str, Any] = {"filters": draw(st.lists(filters(), max_size=4))}
    if rows:
        q["mode"] = "rows"
        q["columns"] = draw(st.lists(names, min_size=1, max_size=5, unique=True))
        outputs = q["columns"]
    else:
        q["dimensions"] = draw(st.lists(names, max_size=3, unique=True))
        q["aggregates"] = draw(st.lists(aggregates(), min_size=1, max_size=4))
        outputs = q["dimensions"] + [a.get("alias", "") for a in q["aggregates"]]
    if draw(st.booleans()):
        q["order_by"] = [{"column": c, "desc": draw(st.booleans())}
                         for c in draw(st.lists(st.sampled_from(outputs), max_size=2, unique=True)) if c]
    if draw(st.booleans()):
        q["limit"] = draw(st.integers(1, MAX_LIMIT))
    return q


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_queries())
def test_art8_parse_round_trips_through_canonical_json(data: dict[str, Any]) -> None:
    try:
        q = parse(data)
    except QueryError as exc:  # generated aliases may collide: that must be the reason
        assert "already used" in exc.message or "not a column of the result" in exc.message
        return
    assert parse(q.to_dict()) == q
    text = q.canonical_json()
    assert parse_json(text) == q
    assert parse_json(text).canonical_json() == text
    assert canonical_json(json.loads(text)) == text


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.sampled_from(["count", "sum", "quantile", "eq", "in", "between", "rows", "aggregate", "x", "fn"]),
)
junk = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(
            ["mode", "dimensions", "columns", "filters", "aggregates", "order_by", "limit", "fn", "column", "op",
             "value", "alias", "q", "desc"]), st.text(max_size=5), st.integers()), children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(junk)
def test_art8_random_junk_never_crashes_the_parser(data: Any) -> None:
    try:
        result = parse(data)
    except QueryError as exc:
        assert exc.field and exc.message.startswith(exc.field)
    else:
        assert isinstance(result, Query)


@st.composite
def mutated_queries(draw: st.DrawFn) -> Any:
    """A valid query with one part replaced by junk: exercises the deep paths of the parser."""
    q = draw(valid_queries())
    key = draw(st.sampled_from(sorted(q)))
    value = q[key]
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        item = value[i]
        if isinstance(item, dict) and item:
            sub = draw(st.sampled_from(sorted(item)))
            item[sub] = draw(junk)
        else:
            value[i] = draw(junk)
    else:
        q[key] = draw(junk)
    return q


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_queries())
def test_art8_mutated_queries_fail_only_with_query_errors(data: Any) -> None:
    try:
        parse(data)
    except QueryError as exc:
        assert exc.message.startswith(f"{exc.field}: ")


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_art8_random_text_never_crashes_parse_json(text: str) -> None:
    with contextlib.suppress(QueryError):
        parse_json(text)
