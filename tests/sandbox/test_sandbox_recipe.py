"""Product recipes (art. 22 "processed"; art. 8 traceable): declarative steps, checked, deterministic builds."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.sandbox import RecipeError, build_version, parse_recipe
from marketplace.sandbox.recipe import plan_recipe
from tests.sandbox.products import HASH_KEY, PEOPLE_RECIPE, people_source


def people() -> pl.DataFrame:
    return pl.DataFrame({
        "pid": ["a1", "a2", "a3", None],
        "age": [7, 34, 95, None],
        "seen": [datetime(2024, 1, 1, 8, 59), datetime(2024, 1, 1, 9, 1), datetime(2024, 2, 3, 23, 0),
                 datetime(2024, 2, 3, 23, 30)],
        "day": [date(2024, 1, 15), date(2024, 1, 31), date(2024, 2, 1), date(2024, 3, 9)],
        "income": [1000.5, 250_000.0, 42.0, None],
        "district": ["东河区", "青山区", "东河区", "九原区"],
    })


def districts() -> pl.DataFrame:
    return pl.DataFrame({"name": ["东河区", "青山区"], "population": [300_000, 200_000]})


def run(steps: list[dict[str, Any]], **kwargs: Any) -> pl.DataFrame:
    recipe = {"source": "people", "steps": steps}
    sources = {"people": people().lazy(), "districts": districts().lazy()}
    return plan_recipe(recipe, sources, **kwargs).collect()


# --- the steps ---------------------------------------------------------------------------


def test_art22_select_drop_and_filter() -> None:
    out = run([{"op": "filter", "where": {"all": [{"column": "age", "op": "gte", "value": 18},
                                                  {"not": {"column": "district", "op": "eq", "value": "九原区"}}]}},
               {"op": "select", "columns": ["pid", "age", "income"]}, {"op": "drop", "columns": ["income"]}])
    assert out.rows() == [("a2", 34), ("a3", 95)]


@pytest.mark.parametrize(("where", "expected"), [
    ({"column": "age", "op": "in", "value": [7, 95]}, ["a1", "a3"]),
    ({"column": "age", "op": "not_in", "value": [7, 95]}, ["a2"]),
    ({"column": "age", "op": "between", "value": [30, 100]}, ["a2", "a3"]),
    ({"column": "age", "op": "is_null"}, [None]),
    ({"column": "income", "op": "is_not_null"}, ["a1", "a2", "a3"]),
    ({"column": "day", "op": "lt", "value": "2024-02-01"}, ["a1", "a2"]),
    ({"column": "seen", "op": "gt", "value": "2024-01-01T09:00:00"}, ["a2", "a3", None]),
    ({"column": "district", "op": "between", "value": ["pid", "seen"]}, []),  # text, never column names
    ({"any": [{"column": "age", "op": "lt", "value": 10}, {"column": "age", "op": "gt", "value": 90}]},
     ["a1", "a3"]),
])
def test_art22_filter_conditions(where: dict[str, Any], expected: list[str | None]) -> None:
    assert run([{"op": "filter", "where": where}])["pid"].to_list() == expected


def test_art22_derive_expressions() -> None:
    out = run([
        {"op": "derive", "column": "label", "expr": {"concat": [{"col": "district"}, {"col": "pid"}], "sep": "/"}},
        {"op": "derive", "column": "monthly", "expr": {"round": {"div": [{"col": "income"}, {"lit": 12}]},
                                                        "digits": 1}},
        {"op": "derive", "column": "month", "expr": {"part": "month", "of": {"col": "day"}}},
        {"op": "derive", "column": "adult", "expr": {"if": {"column": "age", "op": "gte", "value": 18},
                                                      "then": {"lit": True}, "else": {"lit": False}}},
        {"op": "derive", "column": "age_or_0", "expr": {"coalesce": [{"col": "age"}, {"lit": 0}]}},
        {"op": "derive", "column": "age_text", "expr": {"cast": {"col": "age"}, "to": "string"}},
        {"op": "derive", "column": "gap", "expr": {"abs": {"sub": [{"lit": 40}, {"col": "age"}]}}},
        {"op": "derive", "column": "twice", "expr": {"mul": [{"col": "age"}, {"lit": 2}]}},
        {"op": "derive", "column": "older", "expr": {"add": [{"col": "age"}, {"lit": 1}]}},
    ])
    assert out["label"].to_list()[0] == "东河区/a1"
    assert out["monthly"].to_list()[:2] == [83.4, 20833.3]
    assert out["month"].to_list() == [1, 1, 2, 3]
    assert out["adult"].to_list() == [False, True, True, False]
    assert out["age_or_0"].to_list() == [7, 34, 95, 0]
    assert out["age_text"].to_list() == ["7", "34", "95", None]
    assert out["gap"].to_list() == [33, 6, 55, None]
    assert out["twice"].to_list() == [14, 68, 190, None] and out["older"].to_list() == [8, 35, 96, None]


def test_art22_generalise_age_band_with_top_coding() -> None:
    out = run([{"op": "generalise", "column": "age", "method": "age_band", "width": 10, "top": 90, "as": "band"}])
    assert out["band"].to_list() == ["0-9", "30-39", "90+", None]
    assert out["age"].to_list() == [7, 34, 95, None]  # "as" keeps the original until dropped


def test_art22_generalise_time_bucket_and_top_code() -> None:
    out = run([
        {"op": "generalise", "column": "seen", "method": "time", "unit": "hour"},
        {"op": "generalise", "column": "day", "method": "time", "unit": "month", "as": "month"},
        {"op": "generalise", "column": "income", "method": "bucket", "width": 1000, "as": "bucket"},
        {"op": "generalise", "column": "age", "method": "bucket", "width": 5, "as": "age5"},
        {"op": "generalise", "column": "income", "method": "top_code", "upper": 100_000},
    ])
    assert out["seen"].to_list()[:2] == [datetime(2024, 1, 1, 8), datetime(2024, 1, 1, 9)]
    assert out["month"].to_list() == [date(2024, 1, 1), date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]
    assert out["bucket"].to_list() == [1000.0, 250_000.0, 0.0, None]
    assert out["age5"].to_list() == [5, 30, 95, None]
    assert out["income"].to_list() == [1000.5, 100_000.0, 42.0, None]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 130), st.sampled_from([1, 5, 10, 20]))
def test_art22_age_band_always_contains_the_age(age: int, width: int) -> None:
    top = width * 5
    frame = pl.DataFrame({"age": [age]}).lazy()
    label = plan_recipe({"source": "p", "steps": [{"op": "generalise", "column": "age", "method": "age_band",
                                                   "width": width, "top": top}]}, {"p": frame}).collect().item()
    if age >= top:
        assert label == f"{top}+"
    else:
        lo, hi = (int(x) for x in label.split("-"))
        assert lo <= age <= hi and hi - lo == width - 1


def test_art22_hash_is_keyed_hmac_sha256_and_keeps_nulls() -> None:
    out = run([{"op": "hash", "columns": ["pid"]}], hash_key=b"key-1")
    assert out["pid"].to_list()[:3] == [hmac.new(b"key-1", v.encode(), hashlib.sha256).hexdigest()
                                        for v in ("a1", "a2", "a3")]
    assert out["pid"].to_list()[3] is None
    assert run([{"op": "hash", "columns": ["pid"]}], hash_key=b"key-2")["pid"][0] != out["pid"][0]


def test_art22_joins_inner_and_left() -> None:
    inner = run([{"op": "join", "source": "districts", "left_on": ["district"], "right_on": ["name"]}])
    assert inner["pid"].to_list() == ["a1", "a2", "a3"] and inner["population"].to_list() == [300_000, 200_000,
                                                                                              300_000]
    left = run([{"op": "join", "source": "districts", "left_on": ["district"], "right_on": ["name"],
                 "how": "left", "columns": ["population"]}])
    assert left["pid"].to_list() == ["a1", "a2", "a3", None] and left["population"].to_list()[3] is None


# --- errors name the step and field ------------------------------------------------------

STRUCTURE_ERRORS: list[tuple[Any, str, str]] = [
    ([], "recipe", "must be an object"),
    ({"source": "p"}, "steps", "is required"),
    ({"source": "p", "steps": [], "code": "x"}, "code", "unknown field"),
    ({"source": "p", "steps": [{"op": "sql", "query": "select *"}]}, "steps[0].op", "unknown step 'sql'"),
    ({"source": "p", "steps": [{"op": "select"}]}, "steps[0].columns", "is required"),
    ({"source": "p", "steps": [{"op": "select", "columns": []}]}, "steps[0].columns", "at least one"),
    ({"source": "p", "steps": [{"op": "drop", "columns": ["a", "a"]}]}, "steps[0].columns", "listed twice"),
    ({"source": "p", "steps": [{"op": "select", "columns": ["a"]}, {"op": "generalise", "column": "age",
                                                                    "method": "blur"}]},
     "steps[1].method", "unknown method 'blur'"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "age", "method": "age_band", "width": 0}]},
     "steps[0].width", "above zero"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "age", "method": "age_band", "top": 85}]},
     "steps[0].top", "multiple of the width"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "t", "method": "time", "unit": "week"}]},
     "steps[0].unit", "must be one of"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "t", "method": "time", "unit": "day", "width": 2}]},
     "steps[0].width", "not a parameter of 'time'"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "x", "method": "top_code"}]}, "steps[0].upper",
     "needs 'upper'"),
    ({"source": "p", "steps": [{"op": "generalise", "column": "x", "method": "top_code", "lower": 5, "upper": 1}]},
     "steps[0].lower", "below 'upper'"),
    ({"source": "p", "steps": [{"op": "filter", "where": {"column": "a", "op": "like", "value": "%"}}]},
     "steps[0].where.op", "unknown operator 'like'"),
    ({"source": "p", "steps": [{"op": "filter", "where": {"all": [{"column": "a", "op": "eq"}]}}]},
     "steps[0].where.all[0].value", "is required"),
    ({"source": "p", "steps": [{"op": "filter", "where": {"column": "a", "op": "is_null", "value": 1}}]},
     "steps[0].where.value", "takes no value"),
    ({"source": "p", "steps": [{"op": "derive", "column": "b", "expr": {"eval": "__import__('os')"}}]},
     "steps[0].expr", "unknown expression 'eval'"),
    ({"source": "p", "steps": [{"op": "derive", "column": "b", "expr": {"add": [{"col": "a"}]}}]},
     "steps[0].expr.add", "two values"),
    ({"source": "p", "steps": [{"op": "derive", "column": "b", "expr": {"cast": {"col": "a"}, "to": "blob"}}]},
     "steps[0].expr.to", "unknown type"),
    ({"source": "p", "steps": [{"op": "derive", "column": "b c", "expr": {"lit": 1}}]}, "steps[0].column",
     "column name"),
    ({"source": "p", "steps": [{"op": "join", "source": "q", "how": "cross", "on": ["a"]}]}, "steps[0].how",
     "'inner' or 'left'"),
    ({"source": "p", "steps": [{"op": "join", "source": "q"}]}, "steps[0].on", "is required"),
    ({"source": "p", "steps": [{"op": "join", "source": "q", "left_on": ["a", "b"], "right_on": ["a"]}]},
     "steps[0].right_on", "as many keys"),
]


@pytest.mark.parametrize(("data", "path", "problem"), STRUCTURE_ERRORS)
def test_art22_malformed_recipe_names_the_step_and_field(data: Any, path: str, problem: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe(data)
    assert info.value.field == path and problem in info.value.message
    assert info.value.code == "invalid_recipe"


SCHEMA_ERRORS: list[tuple[list[dict[str, Any]], str, str]] = [
    ([{"op": "select", "columns": ["pid", "nope"]}], "steps[0].columns[1]", "unknown column 'nope'"),
    ([{"op": "drop", "columns": ["age"]}, {"op": "filter", "where": {"column": "age", "op": "gt", "value": 1}}],
     "steps[1].where.column", "unknown column 'age'"),
    ([{"op": "derive", "column": "x", "expr": {"col": "ghost"}}], "steps[0].expr.col", "unknown column"),
    ([{"op": "generalise", "column": "district", "method": "bucket", "width": 2}], "steps[0].column",
     "needs numbers"),
    ([{"op": "generalise", "column": "day", "method": "time", "unit": "hour"}], "steps[0].unit", "cannot cut"),
    ([{"op": "filter", "where": {"column": "day", "op": "eq", "value": "yesterday"}}], "steps[0].where.value",
     "not an ISO date"),
    ([{"op": "hash", "columns": ["pid"]}], "steps[0].columns", "needs the hash key"),
    ([{"op": "join", "source": "nowhere", "on": ["pid"]}], "steps[0].source", "unknown source 'nowhere'"),
    ([{"op": "join", "source": "districts", "left_on": ["district"], "right_on": ["nope"]}],
     "steps[0].right_on[0]", "has no column 'nope'"),
    ([{"op": "join", "source": "districts", "left_on": ["age"], "right_on": ["name"]}], "steps[0].right_on[0]",
     "'age' is"),
    ([{"op": "derive", "column": "population", "expr": {"lit": 1}},
      {"op": "join", "source": "districts", "left_on": ["district"], "right_on": ["name"]}],
     "steps[1].columns[0]", "exists on both sides"),
    ([{"op": "drop", "columns": ["pid", "age", "seen", "day", "income", "district"]}], "steps[0].columns",
     "every column"),
    ([{"op": "derive", "column": "x", "expr": {"add": [{"col": "district"}, {"col": "seen"}]}}], "steps[0]",
     "does not apply"),
]


@pytest.mark.parametrize(("steps", "path", "problem"), SCHEMA_ERRORS)
def test_art22_recipe_that_does_not_fit_the_data_names_the_step(
    steps: list[dict[str, Any]], path: str, problem: str
) -> None:
    with pytest.raises(RecipeError) as info:
        run(steps)
    assert info.value.field == path and problem in info.value.message


def test_art22_recipe_main_source_must_be_given(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        build_version({"source": "people", "steps": []}, {"other": people().lazy()}, tmp_path)
    assert info.value.field == "source"


# --- building versions -------------------------------------------------------------------


def test_art10_build_is_content_addressed_and_deterministic(tmp_path: Path) -> None:
    sources = {"residents": people_source().lazy()}
    first = build_version(PEOPLE_RECIPE, sources, tmp_path / "a", hash_key=HASH_KEY)
    second = build_version(PEOPLE_RECIPE, {"residents": people_source().lazy()}, tmp_path / "b", hash_key=HASH_KEY)
    assert first.content_hash == second.content_hash
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.path.name == f"{first.content_hash}.parquet"
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.content_hash
    assert first.row_count == pl.read_parquet(first.path).height == 4043
    assert dict(first.schema) == {"district": "category", "sex": "string", "age": "integer", "income": "float",
                                  "person_id": "string", "visit_date": "date", "fee": "float", "visits": "integer",
                                  "age_band": "string"}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [first.path.name]  # no temporary left behind


def test_art10_rebuilding_into_the_same_directory_keeps_one_file(tmp_path: Path) -> None:
    a = build_version({"source": "p", "steps": []}, {"p": people().lazy()}, tmp_path)
    b = build_version({"source": "p", "steps": []}, {"p": people().lazy()}, tmp_path)
    assert a == b and len(list(tmp_path.iterdir())) == 1


def test_art10_different_inputs_or_keys_give_different_versions(tmp_path: Path) -> None:
    base = build_version(PEOPLE_RECIPE, {"residents": people_source().lazy()}, tmp_path, hash_key=HASH_KEY)
    other_key = build_version(PEOPLE_RECIPE, {"residents": people_source().lazy()}, tmp_path, hash_key=b"other")
    fewer = build_version(PEOPLE_RECIPE, {"residents": people_source().head(100).lazy()}, tmp_path,
                          hash_key=HASH_KEY)
    assert len({base.content_hash, other_key.content_hash, fewer.content_hash}) == 3


def test_art10_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: pl.DataFrame, file: Any, **_: Any) -> None:
        Path(file).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        build_version({"source": "p", "steps": []}, {"p": people().lazy()}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_art22_recipe_round_trips_through_its_canonical_form() -> None:
    recipe = parse_recipe(PEOPLE_RECIPE | {"steps": PEOPLE_RECIPE["steps"] + [
        {"op": "filter", "where": {"any": [{"column": "fee", "op": "between", "value": [1, 2]},
                                           {"not": {"column": "sex", "op": "is_null"}}]}},
        {"op": "derive", "column": "x", "expr": {"if": {"column": "visits", "op": "in", "value": [1, 2]},
                                                  "then": {"cast": {"lit": 1}, "to": "float"},
                                                  "else": {"coalesce": [{"col": "fee"}, {"lit": None}]}}},
        {"op": "generalise", "column": "fee", "method": "bucket", "width": 10},
        {"op": "generalise", "column": "visit_date", "method": "time", "unit": "month"},
        {"op": "join", "source": "d", "on": ["district"], "how": "left", "columns": ["population"]},
    ]})
    assert parse_recipe(recipe.to_dict()) == recipe
    assert recipe.sources == ("residents", "d")


json_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6),
              st.sampled_from(["select", "filter", "derive", "generalise", "join", "hash", "age_band", "col"])),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(
        ["op", "source", "steps", "columns", "where", "column", "expr", "method", "value", "col", "lit", "all",
         "not", "add", "width", "on", "how"]), c, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_junk)
def test_art22_random_junk_recipe_fails_only_with_recipe_errors(data: Any) -> None:
    try:
        parse_recipe(data)
    except RecipeError as exc:
        assert exc.message.startswith(f"{exc.field}: ")
