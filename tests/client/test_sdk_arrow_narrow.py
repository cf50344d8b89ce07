"""Narrowed results on the wire: integer and temporal columns in the narrowest type, cast back by the SDK.

A client that says ``narrow=1`` on the Arrow media range gets integer and temporal
columns as the narrowest integer type that holds them (offsets from the minimum, in
steps of the largest common divisor for temporal columns), with the original schema and
each column's offset and scale in the stream's schema metadata. The SDK casts every
batch back: the frame it returns must be exactly the released frame, dtype for dtype and
value for value, for every dtype a result can have, with nulls and at the extremes. Any
other client gets what it got before. Damaged narrowing metadata never becomes a wrong
frame: the SDK raises ``ResultUnreadable``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import sys
import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from polars.testing.parametric import dataframes

with warnings.catch_warnings():  # starlette's TestClient over httpx (not httpx2) warns on import
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.api import wire  # noqa: E402
from marketplace.api.wire import (  # noqa: E402
    ARROW_STREAM,
    NARROWED_KEY,
    WireFrame,
    arrow_chunks,
    arrow_codec,
    arrow_narrow,
    arrow_stream,
    wire_table,
)
from marketplace.client import Client, ResultUnreadable, WorkspaceConfig  # noqa: E402
from marketplace.client import arrow as sdk_arrow  # noqa: E402
from marketplace.client.arrow import ACCEPT_ARROW, Restoration, read_frame  # noqa: E402
from marketplace.client.transport import READ_BYTES, LargeReads, LargeReadStream, with_large_reads  # noqa: E402
from tests.client.arrow_support import (  # noqa: E402
    CODECS_ONLY,
    DISTRICTS,
    PRODUCT,
    app_serving,
    sdk_client,
    secret_in,
    serving,
)

I64 = (-(2**63), 2**63 - 1)


def hourly(rows: int = 5000) -> pl.DataFrame:
    """A row-level result like the bus product's: hourly times, categories, small counts, a flag (random, as
    real rows are: narrowed, they barely compress)."""
    rng = np.random.default_rng(2023)
    start = datetime(2024, 12, 1, 5)
    return pl.DataFrame({
        "service_hour": [start + timedelta(hours=int(h)) for h in rng.integers(0, 744, rows)],
        "district": pl.Series([DISTRICTS[int(i)] for i in rng.integers(0, 4, rows)], dtype=pl.Categorical),
        "stop_seq": pl.Series(rng.integers(1, 40, rows), dtype=pl.Int64),
        "boardings": pl.Series(rng.poisson(30, rows), dtype=pl.Int64),
        "is_weekend": rng.random(rows) < 2 / 7,
    })


def extremes() -> pl.DataFrame:
    """Every dtype a result can have, with nulls, negatives and the limits of each type."""
    return pl.DataFrame({
        "i64_small": pl.Series([-128, 127, None, 0], dtype=pl.Int64),
        "i64_wide": pl.Series([I64[0], I64[1], None, 0], dtype=pl.Int64),
        "i64_offset": pl.Series([10**15, 10**15 + 200, None, 10**15 + 1], dtype=pl.Int64),
        "i64_negative": pl.Series([-70_000, -1, None, -65_000], dtype=pl.Int64),
        "i32": pl.Series([-(2**31), 2**31 - 1, None, 5], dtype=pl.Int32),
        "i16": pl.Series([-300, 300, None, 0], dtype=pl.Int16),
        "i8": pl.Series([-128, 127, None, 0], dtype=pl.Int8),
        "u64_top": pl.Series([2**64 - 1, 2**64 - 200, None, 2**64 - 2], dtype=pl.UInt64),
        "u64_wide": pl.Series([0, 2**64 - 1, None, 7], dtype=pl.UInt64),
        "u32": pl.Series([0, 2**32 - 1, None, 1], dtype=pl.UInt32),
        "u16": pl.Series([0, 255, None, 1], dtype=pl.UInt16),
        "f64": [1.5, None, -0.0, float("inf")],
        "text": ["户1", None, "", "a"],
        "flag": [True, None, False, True],
        "day": [date(1970, 1, 1), None, date(2024, 2, 29), date(9999, 12, 31)],
        "day_old": [date(1, 1, 1), None, date(2024, 2, 29), date(2024, 3, 1)],
        "hour_tz": pl.Series([datetime(2024, 12, 1, h) for h in (0, 5, 23, 1)]).dt.replace_time_zone("Asia/Shanghai"),
        "ms": pl.Series([datetime(2024, 1, 1), None, datetime(2024, 1, 1, 0, 0, 1), datetime(2023, 12, 31)],
                        dtype=pl.Datetime("ms")),
        "ns_odd": pl.Series([datetime(2024, 1, 1), None, datetime(2024, 1, 1, 0, 0, 0, 3), datetime(2024, 1, 2)],
                            dtype=pl.Datetime("ns")),
        "span": [timedelta(minutes=5), None, timedelta(minutes=-10), timedelta(days=3)],
        "clock": [time(0, 0), None, time(23, 59, 59, 999999), time(12, 30)],
        "category": pl.Series(["青山区", None, "东河区", "青山区"], dtype=pl.Categorical),
        "amount": pl.Series(["1.25", None, "-3.00", "0.01"]).str.to_decimal(scale=2),
        "all_null": pl.Series([None, None, None, None], dtype=pl.Int64),
    })


def narrowed_body(frame: pl.DataFrame, codec: str | None = None, rows: int | None = None) -> bytes:
    return b"".join(arrow_chunks(frame, codec, rows=rows, narrow=True))


def restored_by_polars(body: bytes) -> pl.DataFrame:
    """Polars' own reader plus the SDK's cast back (what the benchmark's local baseline does)."""
    restoration = Restoration.of(ipc.open_stream(body).schema)
    frame = pl.read_ipc_stream(body)
    return frame if restoration is None else restoration.apply(frame)


# -- negotiation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "narrow"), [
    (ARROW_STREAM, False),
    (CODECS_ONLY, False),
    (ACCEPT_ARROW, True),
    (f"{ARROW_STREAM}; narrow=1", True),
    (f'{ARROW_STREAM}; narrow="1"', True),
    (f"{ARROW_STREAM}; narrow=0", False),
    (f"application/json; narrow=1, {ARROW_STREAM}", False),
    (f"{ARROW_STREAM}; codecs=lz4; NARROW=1", True),
    ("", False),
])
def test_only_a_client_that_says_narrow_1_on_the_arrow_range_gets_narrowed_columns(accept: str, narrow: bool) -> None:
    assert arrow_narrow(accept) is narrow


@given(st.text(max_size=80))
def test_any_accept_header_yields_a_narrowing_answer_without_failing(accept: str) -> None:
    """Property: no header makes the API fail to decide."""
    assert arrow_narrow(accept) in (True, False)


def test_the_sdk_asks_for_narrowed_columns_and_lz4() -> None:
    assert arrow_narrow(ACCEPT_ARROW) and arrow_codec(ACCEPT_ARROW) == "lz4"


# -- what goes on the wire ------------------------------------------------------------------------------


def test_narrowing_sends_the_narrowest_integer_types_and_says_how_to_undo_them() -> None:
    frame = hourly()
    table = wire_table(frame, narrow=True)
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["service_hour"] == pa.uint16()  # hours since the first one
    assert types["stop_seq"] == pa.int8() and types["boardings"] == pa.int8()
    assert types["district"] == pa.dictionary(pa.uint8(), pa.large_string())
    assert types["is_weekend"] == pa.bool_()
    note = json.loads(table.schema.metadata[NARROWED_KEY])
    first = int(frame["service_hour"].min().timestamp() * 1_000_000)  # type: ignore[union-attr]
    assert note["columns"] == {"service_hour": [first, 3_600_000_000], "stop_seq": [0, 1], "boardings": [0, 1]}
    original = ipc.read_schema(pa.py_buffer(base64.b64decode(note["schema"])))
    assert original.field("service_hour").type == pa.timestamp("us")
    assert original.field("stop_seq").type == pa.int64()
    assert len(narrowed_body(frame)) < len(arrow_stream(frame)) / 2


def test_integers_that_fit_nowhere_narrower_stay_as_they_are() -> None:
    frame = extremes()
    types = dict(zip(frame.columns, wire_table(frame, narrow=True).schema.types, strict=True))
    assert types["i64_wide"] == pa.int64() and types["u64_wide"] == pa.uint64() and types["i32"] == pa.int32()
    assert types["i64_small"] == pa.int8() and types["u16"] == pa.uint8() and types["i16"] == pa.int16()
    assert types["i64_offset"] == pa.uint8() and types["u64_top"] == pa.uint8()  # offsets from the minimum
    assert types["i64_negative"] == pa.int32()
    assert types["f64"] == pa.float64() and types["all_null"] == pa.int64()


def test_a_step_the_sample_suggests_but_a_later_row_breaks_is_not_used() -> None:
    """The step is guessed from the first rows and checked on every row: one odd microsecond later keeps it exact."""
    stamps = [datetime(2024, 1, 1) + timedelta(minutes=i % 60) for i in range(10_000)]
    whole_minutes = wire_table(pl.DataFrame({"t": stamps}), narrow=True)
    assert whole_minutes.schema.field("t").type == pa.uint8()
    assert json.loads(whole_minutes.schema.metadata[NARROWED_KEY])["columns"]["t"][1] == 60_000_000
    stamps[9_000] += timedelta(microseconds=1)
    frame = pl.DataFrame({"t": stamps})
    table = wire_table(frame, narrow=True)
    note = json.loads(table.schema.metadata[NARROWED_KEY])
    assert note["columns"]["t"][1] == 1 and table.schema.field("t").type == pa.uint32()  # microseconds
    assert_frame_equal(read_frame([narrowed_body(frame, rows=3000)]), frame)


def test_a_categorical_over_a_wide_range_of_codes_still_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_DICTIONARY", 1)  # Polars' own export instead of the code range
    frame = extremes()
    assert_frame_equal(read_frame([narrowed_body(frame, rows=3)]), frame)


@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("codec", [None, "lz4"])
@pytest.mark.parametrize("max_dictionary", [wire.MAX_DICTIONARY, 1])
def test_art23_a_result_never_carries_categories_of_other_results(
    narrow: bool, codec: str | None, max_dictionary: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polars' categories are global to the API process: the code range of one result's column can hold
    categories another product's result registered. Only the categories of this result may travel."""
    monkeypatch.setattr(wire, "MAX_DICTIONARY", max_dictionary)
    another = pl.Series(["甲", "另一产品的机密类别", "乙", "ANOTHER-SECRET"], dtype=pl.Categorical)  # alive meanwhile
    frame = pl.DataFrame({"c": pl.Series(["甲", "乙", None, "甲", "乙"], dtype=pl.Categorical)})
    codes = another.to_physical().to_list()
    assert codes[0] < codes[1] < codes[2] or codes[2] < codes[1] < codes[0]  # the secret lies in between
    body = b"".join(arrow_chunks(frame, codec, rows=2, narrow=narrow))
    if codec is None:
        assert "机密".encode() not in body and b"SECRET" not in body
    for batch in ipc.open_stream(body):
        names = set(batch.column(0).dictionary.to_pylist()) - {None}
        assert names <= {"甲", "乙"}
    assert_frame_equal(read_frame([body], expected_rows=frame.height), frame)
    assert another.len() == 4


# -- the SDK gets exactly the released frame -----------------------------------------------------------


@pytest.mark.parametrize("codec", [None, "lz4", "zstd"])
@pytest.mark.parametrize("rows", [1, 3, 1000])
def test_extremes_and_nulls_of_every_dtype_come_back_identical(codec: str | None, rows: int) -> None:
    frame = extremes()
    body = narrowed_body(frame, codec, rows)
    assert_frame_equal(read_frame([body], expected_rows=frame.height), frame)
    assert_frame_equal(restored_by_polars(body), frame)


@pytest.mark.parametrize("rows", [0, 1, 4999, 5000])
def test_frames_of_any_length_and_batching_come_back_identical(rows: int) -> None:
    frame = hourly(rows)
    for batch in (7, 1000, 10_000):
        body = narrowed_body(frame, None, batch)
        assert_frame_equal(read_frame([body[i:i + 4096] for i in range(0, len(body), 4096)],
                                      expected_rows=rows), frame)
        assert_frame_equal(restored_by_polars(body), frame)


def test_a_frame_of_many_chunks_comes_back_identical() -> None:
    """Results are exported chunk for chunk; chunks and batches need not line up."""
    frame = pl.concat([hourly(700), hourly(1300), hourly(3)], rechunk=False)
    assert frame.n_chunks("all") != [1] * frame.width
    assert_frame_equal(read_frame([narrowed_body(frame, None, 500)]), frame)
    assert_frame_equal(read_frame([narrowed_body(frame, "lz4", 500)]), frame)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=dataframes(max_cols=5, max_size=300, allowed_dtypes=[
    pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float64, pl.Boolean,
    pl.String, pl.Date, pl.Datetime("us"), pl.Datetime("ms"), pl.Datetime("ns"), pl.Datetime("us", "Asia/Shanghai"),
    pl.Duration("us"), pl.Duration("ms"), pl.Time, pl.Categorical, pl.Decimal(12, 2),
]), codec=st.sampled_from([None, "lz4", "zstd"]), rows=st.integers(1, 120))
def test_any_result_frame_survives_narrowing_unchanged(frame: pl.DataFrame, codec: str | None, rows: int) -> None:
    """Property: for any frame of the dtypes results have (nulls, extremes included), in slices of any size
    and with any codec, the SDK's restoring of the API's narrowing is the identity."""
    body = narrowed_body(frame, codec, rows)
    assert_frame_equal(read_frame([body], expected_rows=frame.height), frame)
    assert_frame_equal(restored_by_polars(body), frame)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(*I64)), min_size=1, max_size=50),
       step=st.sampled_from([1, 7, 1000, 3_600_000_000, 86_400_000_000]))
def test_narrowing_rule_is_lossless_and_never_wider(values: list[int | None], step: int) -> None:
    """Property (the rule itself): whatever the integers (or timestamps in any step), the wire type is never
    wider than the original, and the values come back exactly."""
    scaled = [None if v is None else max(min(v * step, I64[1]), I64[0]) for v in values]
    frame = pl.DataFrame({"n": pl.Series(scaled, dtype=pl.Int64),
                          "t": pl.Series(scaled, dtype=pl.Int64).cast(pl.Datetime("us"))})
    table = wire_table(frame, narrow=True)
    present = [v for v in scaled if v is not None]
    if present:
        low, high = min(present), max(present)
        signed = next((t for t, bits in SIGNED_THEN_UNSIGNED if _holds(t, low, high)), None)
        by_offset = next((t for t in UNSIGNED if _holds(t, 0, high - low)), None) if high - low < 2**63 else None
        assert table.schema.field("n").type == (signed or by_offset or pa.int64())
        common = math.gcd(*(v - low for v in present)) or 1
        steps = next((t for t in UNSIGNED if _holds(t, 0, (high - low) // common)), None)
        fits_int64 = high - low < 2**63  # distances are computed in int64
        assert table.schema.field("t").type == (steps if fits_int64 and steps else pa.timestamp("us"))
    assert_frame_equal(read_frame([narrowed_body(frame, None, 7)]), frame)


UNSIGNED = (pa.uint8(), pa.uint16(), pa.uint32())
SIGNED_THEN_UNSIGNED = ((pa.int8(), 8), (pa.uint8(), 8), (pa.int16(), 16), (pa.uint16(), 16), (pa.int32(), 32),
                        (pa.uint32(), 32))


def _holds(kind: pa.DataType, low: int, high: int) -> bool:
    info = np.iinfo(kind.to_pandas_dtype())
    return int(info.min) <= low and high <= int(info.max)


# -- through HTTP and the SDK ------------------------------------------------------------------------------


def test_old_clients_get_exactly_what_they_got_before() -> None:
    """A plain client gets a plain stream, an SDK that only lists codecs gets LZ4: neither is narrowed."""
    frame = hourly()
    with TestClient(app_serving(frame)) as http:
        plain = http.post("/q", headers={"Accept": ARROW_STREAM})
        packed = http.post("/q", headers={"Accept": CODECS_ONLY})
    assert plain.headers["content-type"] == ARROW_STREAM
    assert packed.headers["content-type"] == f"{ARROW_STREAM}; codecs=lz4"
    for response in (plain, packed):
        assert NARROWED_KEY not in (ipc.open_stream(response.content).schema.metadata or {})
        assert_frame_equal(pl.read_ipc_stream(response.content), frame)
    before = io.BytesIO()
    frame.write_ipc_stream(before)
    assert_frame_equal(pl.read_ipc_stream(plain.content), pl.read_ipc_stream(before.getvalue()))


def test_the_sdk_gets_narrowed_columns_uncompressed_when_compression_does_not_pay() -> None:
    frame = hourly()
    with TestClient(app_serving(frame)) as http:
        response = http.post("/q", headers={"Accept": ACCEPT_ARROW})
    assert response.headers["content-type"] == f"{ARROW_STREAM}; narrow=1"
    assert not wire.compression_pays(WireFrame(frame, narrow=True), "lz4")
    assert_frame_equal(read_frame([response.content], expected_rows=frame.height), frame)


def test_the_sdk_gets_lz4_where_it_pays() -> None:
    frame = hourly().with_columns(note=pl.lit("公交客流 " * 8))
    with TestClient(app_serving(frame)) as http:
        response = http.post("/q", headers={"Accept": ACCEPT_ARROW})
    assert response.headers["content-type"] == f"{ARROW_STREAM}; codecs=lz4; narrow=1"
    assert_frame_equal(read_frame([response.content], expected_rows=frame.height), frame)


NARROWED = f"{ARROW_STREAM}; narrow=1"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    return secret_in(tmp_path)


def test_the_sdk_returns_the_released_frame_from_a_narrowed_stream(secret_file: Path) -> None:
    frame = extremes()
    sy = sdk_client(serving(narrowed_body(frame, None, 2), frame.height, NARROWED), secret_file)
    assert_frame_equal(sy.query(PRODUCT).select(*frame.columns).collect(), frame)


def with_note(body: bytes, change: dict[str, object]) -> bytes:
    """``body`` rewritten with its narrowing note changed."""
    reader = ipc.open_stream(body)
    note = json.loads(reader.schema.metadata[NARROWED_KEY])
    note.update(change)
    schema = reader.schema.with_metadata({NARROWED_KEY: json.dumps(note)})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema) as writer:
        for batch in reader:
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize("change", [
    {"schema": "not base64!"},
    {"schema": base64.b64encode(b"not a schema").decode()},
    {"columns": {"nowhere": [0, 1]}},
    {"columns": {"service_hour": [0, 0]}},
    {"columns": {"service_hour": ["x", 1]}},
    {"columns": ["service_hour"]},
    {"schema": base64.b64encode(pa.schema([("other", pa.int64())]).serialize().to_pybytes()).decode()},
    {"schema": base64.b64encode(pa.schema([(n, pa.float64()) for n in hourly(1).columns])
                                .serialize().to_pybytes()).decode()},
])
def test_damaged_narrowing_metadata_raises_result_corrupt(secret_file: Path, change: dict[str, object]) -> None:
    frame = hourly()
    sy = sdk_client(serving(with_note(narrowed_body(frame, None, 1000), change), frame.height, NARROWED),
                    secret_file)
    with pytest.raises(ResultUnreadable) as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    assert caught.value.code == "result_corrupt" and caught.value.use_id == "use-1"
    assert sy.last_result is None


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_narrowed_stream_cut_short_raises_and_never_returns_fewer_rows(secret_file: Path, keep: float) -> None:
    frame = hourly()
    body = narrowed_body(frame, None, 1000)
    sy = sdk_client(serving(body[: int(len(body) * keep)], frame.height, NARROWED), secret_file)
    with pytest.raises(ResultUnreadable) as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    assert caught.value.code in ("result_corrupt", "result_truncated") and sy.last_result is None


def test_a_failing_cast_back_is_result_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream whose narrowed columns cannot be cast back is corrupt, not a crash of the SDK."""
    frame = hourly()

    def broken(self: Restoration, batch: pl.DataFrame) -> pl.DataFrame:
        raise pl.exceptions.ComputeError("cannot cast")

    monkeypatch.setattr(Restoration, "apply", broken)
    with pytest.raises(ResultUnreadable) as caught:
        read_frame([narrowed_body(frame, None, 500)])
    assert caught.value.code == "result_corrupt"


def test_restoration_ignores_streams_that_were_not_narrowed() -> None:
    assert Restoration.of(ipc.open_stream(arrow_stream(hourly())).schema) is None
    assert_frame_equal(read_frame([arrow_stream(hourly(), "lz4")]), hourly())


# -- the SDK's transport --------------------------------------------------------------------------------


def test_the_default_client_reads_the_socket_in_large_pieces(secret_file: Path) -> None:
    config = WorkspaceConfig(api_url="http://127.0.0.1:9", client_id="c1", secret_file=secret_file)
    with Client(config) as sy:
        pool = sy._http._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, LargeReads)


def test_large_reads_keep_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's client is httpx's own, so HTTP(S)_PROXY still applies (a transport of our own would drop it)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    client = with_large_reads(httpx.Client(base_url="https://api.example"))
    assert any(transport is not None for transport in client._mounts.values())
    assert isinstance(client._transport._pool._network_backend, LargeReads)  # type: ignore[attr-defined]
    assert with_large_reads(client) is client  # wrapping twice does not stack
    assert not isinstance(client._transport._pool._network_backend._backend, LargeReads)  # type: ignore[attr-defined]
    client.close()


def test_a_large_read_stream_asks_for_at_least_read_bytes() -> None:
    asked: list[int] = []

    class Stream:
        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            asked.append(max_bytes)
            return b"x"

    stream = LargeReadStream(Stream())  # type: ignore[arg-type]
    assert stream.read(65536) == b"x" and stream.read(READ_BYTES * 2) == b"x"
    assert asked == [READ_BYTES, READ_BYTES * 2]


def test_sdk_decoder_module_constants_agree_with_the_api() -> None:
    assert sdk_arrow.NARROWED_KEY == NARROWED_KEY and sdk_arrow.ARROW_STREAM == ARROW_STREAM
