"""A row-level result narrowed from its version's columns, made once (``VersionWire``), arrives exactly as released.

The API narrows a version's integer, temporal and categorical columns the first time a
row-level result of it goes to the SDK, and takes each later result's columns from
there (a slice or a gather of the result's rows) instead of deciding and converting
them again. The SDK must still get exactly the released frame, and a result's
dictionary must name no category of a row it did not release.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from polars.testing.parametric import dataframes

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.api.wire import ReleasedRows, VersionWire, WireFrame, wire_chunks  # noqa: E402
from marketplace.client.arrow import read_frame  # noqa: E402
from tests.client.test_sdk_arrow_narrow import extremes, hourly, restored_by_polars  # noqa: E402

DTYPES = [
    pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float64, pl.Boolean,
    pl.String, pl.Date, pl.Datetime("us"), pl.Datetime("ms"), pl.Datetime("ns"), pl.Datetime("us", "Asia/Shanghai"),
    pl.Duration("us"), pl.Duration("ms"), pl.Time, pl.Categorical, pl.Decimal(12, 2),
]


def released(version: pl.DataFrame, rows: range | pl.Series) -> pl.DataFrame:
    """What the sandbox releases for those rows: the version's values, floats watermarked (changed)."""
    taken = version.slice(rows.start, len(rows)) if isinstance(rows, range) else version[rows.to_list()]
    return taken.with_columns(pl.col(pl.Float64) * 1.000001)


def body_of(result: pl.DataFrame, source: ReleasedRows | None, *, codec: str | None = None, rows: int = 1000
            ) -> bytes:
    return b"".join(wire_chunks(WireFrame(result, narrow=True, source=source), codec, rows=rows))


def assert_arrives_as_released(result: pl.DataFrame, body: bytes) -> None:
    assert_frame_equal(read_frame([body], expected_rows=result.height), result)
    assert_frame_equal(restored_by_polars(body), result)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=dataframes(max_cols=5, min_size=1, max_size=200, allowed_dtypes=DTYPES), data=st.data(),
       codec=st.sampled_from([None, "lz4"]), batch=st.integers(1, 80))
def test_any_rows_of_any_version_arrive_exactly_as_released(
    version: pl.DataFrame, data: st.DataObject, codec: str | None, batch: int
) -> None:
    """Property: whatever the version (nulls, extremes, every dtype results have) and whichever of its rows a
    result released (its first rows, or any rows in any order), taking the narrowed columns from the
    version is the identity on the released frame."""
    height = version.height
    if data.draw(st.booleans(), label="first rows"):
        rows: range | pl.Series = range(data.draw(st.integers(0, height), label="how many"))
    else:
        picked = data.draw(st.lists(st.integers(0, height - 1), unique=True, max_size=height), label="rows")
        rows = pl.Series("row", picked, dtype=pl.UInt32)
    result = released(version, rows)
    assert_arrives_as_released(result, body_of(result, ReleasedRows(VersionWire(version), rows), codec=codec,
                                               rows=batch))


@pytest.mark.parametrize("rows", [range(0), range(1), range(3), pl.Series([3, 0, 2], dtype=pl.UInt32)])
def test_extremes_of_every_dtype_taken_from_the_version_arrive_as_released(rows: range | pl.Series) -> None:
    version = extremes()
    result = released(version, rows)
    assert_arrives_as_released(result, body_of(result, ReleasedRows(VersionWire(version), rows), rows=2))


def test_a_result_uses_the_versions_wire_types_and_offsets() -> None:
    """Bounds and steps are the version's: a result of a few rows gets the version's types, not its own."""
    version = hourly(5000)
    rows = pl.Series([10, 3, 4000], dtype=pl.UInt32)
    result = released(version, rows)
    taken = WireFrame(result, narrow=True, source=ReleasedRows(VersionWire(version), rows))
    own = WireFrame(result, narrow=True)
    assert taken.schema.metadata == WireFrame(version, narrow=True).schema.metadata
    assert taken.schema.metadata != own.schema.metadata  # its own minimum hour differs
    assert taken.schema.field("service_hour").type == pa.uint16()


def test_art23_a_result_taken_from_its_version_names_only_its_own_categories() -> None:
    """The version's dictionary names every district it has; a result of one district's rows must name
    that district only (and never a category another product registered in the process)."""
    another = pl.Series(["甲", "另一产品的机密类别", "乙", "丙"], dtype=pl.Categorical)  # alive meanwhile
    version = pl.DataFrame({"district": pl.Series(["甲", "乙", None, "丙", "甲"] * 40, dtype=pl.Categorical),
                            "n": pl.Series(range(200), dtype=pl.Int64)})
    wire = VersionWire(version)
    rows = pl.Series([i for i in range(200) if i % 5 in (0, 2, 4)], dtype=pl.UInt32)  # 甲 and nulls only
    result = released(version, rows)
    body = body_of(result, ReleasedRows(wire, rows), rows=7)
    assert "乙".encode() not in body and "丙".encode() not in body and "机密".encode() not in body
    for batch in ipc.open_stream(body):
        assert set(batch.column(0).dictionary.to_pylist()) - {None} == {"甲"}
    assert_arrives_as_released(result, body)
    first = released(version, range(4))  # 甲 乙 null 丙
    assert_arrives_as_released(first, body_of(first, ReleasedRows(wire, range(4))))
    assert another.len() == 4


def test_a_column_the_version_did_not_prepare_is_narrowed_from_the_result() -> None:
    """Floats (watermarked), columns of another type than the version's, or of a length other than the rows
    named, are the result's own: never taken from the version."""
    version = hourly(300).with_columns(fare=pl.lit(2.5))
    wire = VersionWire(version)
    rows = range(50)
    result = released(version, rows)
    assert wire.column(result["fare"], rows) is None
    assert wire.column(result["boardings"].cast(pl.Int32), rows) is None
    assert wire.column(result["boardings"], range(49)) is None
    assert wire.column(result["boardings"], rows) is not None
    retyped = result.with_columns(pl.col("boardings").cast(pl.Int32) * 1000)
    assert_arrives_as_released(retyped, body_of(retyped, ReleasedRows(wire, rows)))


def test_rows_beyond_the_version_are_refused() -> None:
    version = hourly(10)
    with pytest.raises(ValueError, match="not a run of the version's 10 rows"):
        VersionWire(version).column(hourly(20)["boardings"], range(20))
