"""Executing validated queries on Polars: correct answers, typed filters, rows, ordering, metadata."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from marketplace.sandbox import BuiltVersion, QueryContext, SchemaMismatch, run_query, watermark_id
from marketplace.sandbox.policy import FieldInfo, Noise, Policy, policy_for
from marketplace.sandbox.query import AggFn
from tests.sandbox.products import INCOME_BOUNDS, SECRET, bus_policy, context, people_policy

REL = 1e-10  # floats carry the watermark in their 12th significant digit


def ask(data: dict[str, Any], policy: Policy, version: BuiltVersion, **kwargs: Any) -> Any:
    return run_query(data, policy, pl.scan_parquet(version.path), context(version, **kwargs))


def test_art8_exact_policy_answers_equal_raw_polars(buses_version: BuiltVersion, buses: pl.DataFrame) -> None:
    result = ask({"dimensions": ["line"], "aggregates": [
        {"fn": "count", "alias": "n"}, {"fn": "sum", "column": "riders", "alias": "riders"},
        {"fn": "mean", "column": "fare", "alias": "fare_mean"}, {"fn": "min", "column": "fare", "alias": "fare_min"},
        {"fn": "max", "column": "riders", "alias": "riders_max"},
        {"fn": "quantile", "column": "fare", "q": 0.9, "alias": "fare_p90"},
        {"fn": "count_distinct", "column": "stop", "alias": "stops"},
        {"fn": "max", "column": "boarded_at", "alias": "last"},
    ]}, bus_policy(), buses_version)
    expected = buses.group_by("line").agg(
        pl.len().alias("n"), pl.col("riders").sum().alias("riders"), pl.col("fare").mean().alias("fare_mean"),
        pl.col("fare").min().alias("fare_min"), pl.col("riders").max().alias("riders_max"),
        pl.col("fare").quantile(0.9, interpolation="linear").alias("fare_p90"),
        pl.col("stop").n_unique().alias("stops"), pl.col("boarded_at").max().alias("last"),
    ).sort(pl.col("line").cast(pl.String))
    got = result.frame.sort(pl.col("line").cast(pl.String))
    assert got.columns == ["line", "n", "riders", "fare_mean", "fare_min", "riders_max", "fare_p90", "stops", "last"]
    assert got["line"].cast(pl.String).to_list() == expected["line"].cast(pl.String).to_list()
    for name in ("n", "riders", "riders_max", "stops", "last"):
        assert got[name].to_list() == expected[name].to_list(), name
    for name in ("fare_mean", "fare_min", "fare_p90"):
        assert got[name].to_list() == pytest.approx(expected[name].to_list(), rel=REL), name
    assert result.groups_suppressed == 0 and result.epsilon_spent == 0 and result.noise == "none"


FILTERS: list[tuple[dict[str, Any], pl.Expr]] = [
    ({"column": "line", "op": "eq", "value": "L2"}, pl.col("line") == "L2"),
    ({"column": "line", "op": "in", "value": ["L1", "L3"]}, pl.col("line").cast(pl.String).is_in(["L1", "L3"])),
    ({"column": "stop", "op": "ne", "value": "S01"}, pl.col("stop") != "S01"),
    ({"column": "stop", "op": "between", "value": ["S05", "S10"]},
     pl.col("stop").is_between(pl.lit("S05"), pl.lit("S10"))),
    ({"column": "riders", "op": "gt", "value": 30}, pl.col("riders") > 30),
    ({"column": "riders", "op": "lte", "value": 12.5}, pl.col("riders") <= 12.5),
    ({"column": "fare", "op": "gte", "value": 2}, pl.col("fare") >= 2),
    ({"column": "fare", "op": "lt", "value": 1.25}, pl.col("fare") < 1.25),
    ({"column": "weekend", "op": "eq", "value": True}, pl.col("weekend")),
    ({"column": "boarded_at", "op": "between", "value": ["2024-05-02T00:00:00", "2024-05-03T12:00:00"]},
     pl.col("boarded_at").is_between(datetime(2024, 5, 2), datetime(2024, 5, 3, 12))),
    ({"column": "boarded_at", "op": "in", "value": ["2024-05-01T06:00:00"]},
     pl.col("boarded_at") == datetime(2024, 5, 1, 6)),
]


@pytest.mark.parametrize(("filt", "expr"), FILTERS)
def test_art8_each_filter_operator_selects_the_right_rows(
    filt: dict[str, Any], expr: pl.Expr, buses_version: BuiltVersion, buses: pl.DataFrame
) -> None:
    result = ask({"aggregates": [{"fn": "count"}], "filters": [filt]}, bus_policy(), buses_version)
    assert result.frame["count"].to_list() == [buses.filter(expr).height]


def test_art8_order_by_and_limit_apply_to_the_released_groups(
    buses_version: BuiltVersion, buses: pl.DataFrame
) -> None:
    result = ask({"dimensions": ["stop"], "aggregates": [{"fn": "sum", "column": "riders", "alias": "r"}],
                  "order_by": [{"column": "r", "desc": True}], "limit": 3}, bus_policy(), buses_version)
    expected = buses.group_by("stop").agg(pl.col("riders").sum().alias("r")).sort(["r", "stop"],
                                                                                   descending=[True, False])
    assert result.frame.rows() == expected.head(3).rows()
    assert result.truncated and result.rows_out == 3


def test_art8_no_dimensions_gives_one_total_row(buses_version: BuiltVersion, buses: pl.DataFrame) -> None:
    result = ask({"aggregates": [{"fn": "count"}, {"fn": "sum", "column": "riders"}]}, bus_policy(), buses_version)
    assert result.frame.rows() == [(buses.height, buses["riders"].sum())]


def test_art22_row_level_output_for_open_product(buses_version: BuiltVersion, buses: pl.DataFrame) -> None:
    result = ask({"mode": "rows", "columns": ["stop", "riders", "fare"],
                  "filters": [{"column": "line", "op": "eq", "value": "L1"}],
                  "order_by": [{"column": "riders", "desc": True}, {"column": "stop"}], "limit": 50},
                 bus_policy(), buses_version)
    expected = buses.filter(pl.col("line") == "L1").select("stop", "riders", "fare").sort(
        ["riders", "stop"], descending=[True, False], maintain_order=True).head(50)
    assert result.frame.columns == ["stop", "riders", "fare"] and result.rows_out == 50 and result.truncated
    assert result.frame["stop"].to_list() == expected["stop"].to_list()
    assert result.frame["riders"].to_list() == expected["riders"].to_list()
    assert result.frame["fare"].to_list() == pytest.approx(expected["fare"].to_list(), rel=REL)


def test_art22_noisy_answers_stay_plausible(people_version: BuiltVersion, people: pl.DataFrame) -> None:
    result = ask({"dimensions": ["district"], "aggregates": [
        {"fn": "count", "alias": "n"}, {"fn": "mean", "column": "income", "alias": "m"},
        {"fn": "count_distinct", "column": "person_id", "alias": "persons"}]}, people_policy(), people_version)
    truth = people.group_by("district").agg(pl.len().alias("n")).filter(pl.col("n") >= 10)
    got = result.frame.join(truth, on="district", suffix="_true")
    assert got.height == truth.height == result.rows_out
    assert ((got["n"] - got["n_true"]).abs() <= 40).all()
    assert got["m"].is_between(*INCOME_BOUNDS).all() and (got["persons"] >= 0).all()
    assert result.noise == "perturbation" and result.epsilon_spent == 0


def test_art22_metadata_reports_what_the_ledger_records(people_version: BuiltVersion) -> None:
    result = ask({"dimensions": ["district"], "aggregates": [{"fn": "count"}]}, people_policy("general_4"),
                 people_version, budget=3.0)
    meta = result.metadata()
    assert meta["rows_out"] == result.frame.height and meta["groups_suppressed"] is None
    assert meta["epsilon_spent"] == pytest.approx(1.0) and meta["budget_remaining"] == pytest.approx(2.0)
    assert meta["watermark_id"] == watermark_id(SECRET, "sub-0001")
    assert meta["noise"] == "differential_privacy" and len(meta["fingerprint"]) == 64


def test_art22_differential_privacy_needs_the_remaining_budget(people_version: BuiltVersion) -> None:
    with pytest.raises(ValueError, match="remaining budget"):
        ask({"aggregates": [{"fn": "count"}]}, people_policy("general_4"), people_version)


def test_version_missing_a_policy_column_is_a_platform_error(buses_version: BuiltVersion) -> None:
    frame = pl.scan_parquet(buses_version.path).drop("fare")
    with pytest.raises(SchemaMismatch) as info:
        run_query({"aggregates": [{"fn": "max", "column": "fare"}]}, bus_policy(), frame, context(buses_version))
    assert info.value.ids["column"] == "fare" and info.value.status == 500


def test_art8_time_zone_aware_columns_are_filtered_in_utc() -> None:
    moments = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(24)]
    frame = pl.DataFrame({"t": moments}).with_columns(pl.col("t").dt.convert_time_zone("Asia/Shanghai")).lazy()
    policy = policy_for("general_1", ["sandbox_aggregate"], [("t", "datetime", False)])
    ctx = QueryContext("s", "v", SECRET)
    # 08:00 in Shanghai is 00:00 UTC: hours 0..3 UTC inclusive
    result = run_query({"aggregates": [{"fn": "count"}], "filters": [
        {"column": "t", "op": "between", "value": ["2024-01-01T08:00:00+08:00", "2024-01-01T03:00:00Z"]}]},
        policy, frame, ctx)
    assert result.frame["count"].to_list() == [4]
    naive = run_query({"aggregates": [{"fn": "count"}], "filters": [
        {"column": "t", "op": "lt", "value": "2024-01-01T02:00:00"}]}, policy, frame, ctx)
    assert naive.frame["count"].to_list() == [2]


def test_art22_hand_built_policy_runs() -> None:
    frame = pl.DataFrame({"g": ["a"] * 12 + ["b"] * 3, "x": list(range(15))}).lazy()
    policy = Policy(
        grade="general_3", fields=(FieldInfo("g", "string"), FieldInfo("x", "integer")),
        dimension_columns=frozenset({"g"}), filter_columns=frozenset({"g"}),
        aggregate_functions={"x": frozenset({AggFn.MAX})}, never_output=frozenset(), min_group_size=10,
    )
    result = run_query({"dimensions": ["g"], "aggregates": [{"fn": "max", "column": "x"}]}, policy, frame,
                       QueryContext("s", "v", SECRET))
    assert result.frame.rows() == [("a", 11)] and result.groups_suppressed == 1
    assert replace(policy, noise=Noise.NONE) == policy


@pytest.mark.parametrize("query", [
    {"filters": [{"column": "line", "op": "eq", "value": "L1"}], "order_by": [{"column": "riders", "desc": True}]},
    {"filters": [{"column": "line", "op": "ne", "value": "L1"}]},
    {"order_by": [{"column": "stop"}, {"column": "riders", "desc": True}]},
])
def test_a_row_level_result_of_a_version_in_memory_says_which_rows_it_released(
    buses_version: BuiltVersion, buses: pl.DataFrame, query: dict[str, Any]
) -> None:
    """The API narrows a version's columns once and takes each row-level result's from them
    (``marketplace.api.wire.VersionWire``): the rows it names must be exactly the released ones, in order."""
    result = run_query({"mode": "rows", "columns": ["stop", "line", "riders", "fare"], "limit": 40, **query},
                       bus_policy(), buses, context(buses_version))
    rows = result.source_rows
    assert isinstance(rows, pl.Series) and rows.len() == result.rows_out == 40
    assert rows.n_unique() == 40 and result.frame.columns == ["stop", "line", "riders", "fare"]
    taken = buses[rows.to_list()]
    for name in ("stop", "line", "riders"):  # the version's own values
        assert result.frame[name].to_list() == taken[name].to_list()
    assert result.frame["fare"].to_list() == pytest.approx(taken["fare"].to_list(), rel=REL)  # watermarked


def test_an_unfiltered_unordered_row_level_result_is_the_versions_first_rows(
    buses_version: BuiltVersion, buses: pl.DataFrame
) -> None:
    result = run_query({"mode": "rows", "columns": ["riders", "stop"], "limit": 25}, bus_policy(), buses,
                       context(buses_version))
    assert result.source_rows == range(25)
    assert result.frame.rows() == buses.select("riders", "stop").head(25).rows()


def test_a_row_level_result_of_a_scanned_version_names_no_rows(buses_version: BuiltVersion) -> None:
    """A version too large to hold is scanned from its file: nothing was narrowed for it."""
    result = ask({"mode": "rows", "columns": ["stop"], "limit": 5}, bus_policy(), buses_version)
    assert result.source_rows is None and result.rows_out == 5
    aggregated = run_query({"dimensions": ["line"], "aggregates": [{"fn": "count"}]}, bus_policy(),
                           pl.read_parquet(buses_version.path), context(buses_version))
    assert aggregated.source_rows is None
