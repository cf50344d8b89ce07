"""Watermarks (art. 23, 34): a leaked result names the subscription it came from, and no one else."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.sandbox import BuiltVersion, QueryResult, read_leak, run_query, trace, watermark_id
from marketplace.sandbox.watermark import (
    DEFAULT_ALPHA,
    binomial_tail,
    float_parts,
    mark_float,
    mark_int,
    mark_key,
    observations,
)
from tests.sandbox.products import SECRET, bus_policy, context, people_policy

CANDIDATES = [f"sub-{i:04d}" for i in range(50)]
LEAKER = CANDIDATES[37]
GROUPS = {"dimensions": ["district", "age_band", "sex"], "aggregates": [
    {"fn": "count", "alias": "n"}, {"fn": "mean", "column": "income", "alias": "income_mean"}]}


def leaked(version: BuiltVersion, subscription: str = LEAKER, data: dict[str, Any] | None = None,
           grade: str = "general_3") -> QueryResult:
    return run_query(data or GROUPS, people_policy(grade), pl.scan_parquet(version.path),
                     context(version, subscription, budget=10.0))


# --- the mark itself ---------------------------------------------------------------------

KEY = mark_key(SECRET, "sub-x")


@given(st.integers(-(10**12), 10**12))
def test_art23_integer_mark_moves_by_at_most_one_and_is_stable(value: int) -> None:
    marked = mark_int(value, KEY)
    assert abs(marked - value) <= 1
    assert mark_int(marked, KEY) == marked


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300).filter(
    lambda v: v == 0 or abs(v) > 1e-290)


@given(finite)
def test_art23_float_mark_is_a_12_digit_rounding_and_stable(value: float) -> None:
    marked = mark_float(value, KEY)
    assert marked == value or abs(marked - value) <= abs(value) * 2.1e-11
    assert mark_float(marked, KEY) == marked
    parts = float_parts(marked)
    if parts is not None:
        assert 10**11 <= abs(parts[1]) < 10**12


@given(finite)
def test_art23_float_mark_survives_text(value: float) -> None:
    marked = mark_float(value, KEY)
    assert float(repr(marked)) == marked and float_parts(float(str(marked))) == float_parts(marked)


def test_art23_watermark_ids_are_short_stable_and_distinct() -> None:
    ids = {watermark_id(SECRET, c) for c in CANDIDATES}
    assert len(ids) == 50 and watermark_id(SECRET, LEAKER) == watermark_id(SECRET, LEAKER)
    assert all(len(i) == 16 for i in ids)


def test_binomial_tail_is_exact() -> None:
    assert binomial_tail(10, 10) == pytest.approx(1 / 1024)
    assert binomial_tail(3, 2) == pytest.approx(0.5)
    assert binomial_tail(5, 0) == 1.0 and binomial_tail(5, 6) == 0.0


# --- tracing leaks -----------------------------------------------------------------------


def _csv(frame: pl.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "leak.csv"
    frame.write_csv(path)
    return path


def test_art34_result_leaked_as_csv_is_traced_to_its_subscription_among_50(
    people_version: BuiltVersion, tmp_path: Path
) -> None:
    result = leaked(people_version)
    found = trace(read_leak(_csv(result.frame, tmp_path)), CANDIDATES, SECRET)
    assert found.subscription_id == LEAKER
    assert found.confidence >= 1 - DEFAULT_ALPHA and found.observations >= 60
    assert found.scores[LEAKER] == 1.0
    others = [s for c, s in found.scores.items() if c != LEAKER]
    assert max(others) < 0.75 and 0.35 < sum(others) / len(others) < 0.65


@pytest.mark.parametrize("fmt", ["parquet", "json", "ndjson", "arrow", "pandas_csv", "pandas_json"])
def test_art34_mark_survives_other_formats(fmt: str, people_version: BuiltVersion, tmp_path: Path) -> None:
    frame = leaked(people_version).frame
    if fmt == "pandas_csv":
        buffer = io.StringIO()
        frame.to_pandas().to_csv(buffer, index=False)
        back = pl.from_pandas(pd.read_csv(io.StringIO(buffer.getvalue())))
    elif fmt == "pandas_json":
        back = pl.from_pandas(pd.read_json(io.StringIO(frame.to_pandas().to_json(orient="records"))))
    else:
        path = tmp_path / f"leak.{fmt}"
        if fmt == "parquet":
            frame.write_parquet(path)
        elif fmt == "json":
            frame.write_json(path)
        elif fmt == "ndjson":
            frame.write_ndjson(path)
        else:
            frame.write_ipc(path)
        back = read_leak(path)
    assert trace(back, CANDIDATES, SECRET).subscription_id == LEAKER


def test_art34_mark_survives_renaming_reordering_and_cutting(people_version: BuiltVersion, tmp_path: Path) -> None:
    frame = leaked(people_version).frame
    rows = list(range(frame.height))
    random.Random(3).shuffle(rows)
    doctored = frame[rows[: frame.height // 2]].rename({"n": "people", "income_mean": "avg"}).select(
        "avg", "sex", "people", "district", "age_band")
    found = trace(read_leak(_csv(doctored, tmp_path)), CANDIDATES, SECRET)
    assert found.subscription_id == LEAKER


def test_art34_result_of_a_subscription_outside_the_candidates_is_not_attributed(
    people_version: BuiltVersion,
) -> None:
    for outsider in ("sub-9998", "sub-9999", "someone-else"):
        found = trace(leaked(people_version, outsider).frame, CANDIDATES, SECRET)
        assert found.subscription_id is None and found.p_value > DEFAULT_ALPHA


def test_art34_false_accusation_rate_is_bounded_on_unmarked_data() -> None:
    rng = random.Random(5)
    accusations = 0
    for _ in range(100):
        frame = pl.DataFrame({"a": [rng.randint(0, 10**6) for _ in range(60)],
                              "b": [rng.uniform(0, 1e5) for _ in range(60)]})
        found = trace(frame, CANDIDATES, SECRET)
        accusations += found.subscription_id is not None
        assert found.observations >= 100
    assert accusations == 0


def test_art34_differentially_private_results_are_traced_too(people_version: BuiltVersion) -> None:
    frame = leaked(people_version, grade="general_4").frame
    assert trace(frame, CANDIDATES, SECRET).subscription_id == LEAKER


def test_art34_open_row_level_floats_are_traced(buses_version: BuiltVersion) -> None:
    result = run_query({"mode": "rows", "columns": ["stop", "fare"], "limit": 200}, bus_policy(),
                       pl.scan_parquet(buses_version.path), context(buses_version, LEAKER))
    assert trace(result.frame, CANDIDATES, SECRET).subscription_id == LEAKER


def test_art34_exact_integer_counts_of_open_data_carry_no_mark(buses_version: BuiltVersion) -> None:
    """A documented limit: exact counts of open data are not perturbed, so nothing can be traced."""
    result = run_query({"dimensions": ["stop"], "aggregates": [{"fn": "count"}]}, bus_policy(),
                       pl.scan_parquet(buses_version.path), context(buses_version, LEAKER))
    assert trace(result.frame, CANDIDATES, SECRET).subscription_id is None


def test_art34_observations_skip_text_and_use_numbers_in_text() -> None:
    frame = pl.DataFrame({"name": ["a", "b"], "value": ["12.5", " 7 "], "n": [3, 4]})
    labels = observations(frame)
    assert any(lb.startswith("f:") for lb in labels) and any(lb.startswith("i:") for lb in labels)
    assert not observations(pl.DataFrame({"name": ["x", "y"]}))


def test_read_leak_reads_each_format(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": [0.5, math.pi]})
    for suffix, write in (("csv", frame.write_csv), ("parquet", frame.write_parquet), ("json", frame.write_json),
                          ("jsonl", frame.write_ndjson), ("feather", frame.write_ipc)):
        path = tmp_path / f"x.{suffix}"
        write(path)
        assert read_leak(path).equals(frame), suffix
