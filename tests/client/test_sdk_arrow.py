"""Results on the wire: the API's Arrow encoding and the SDK's decoding, without the store.

The API compresses IPC buffers only for a client that lists a codec in its ``Accept``
(``application/vnd.apache.arrow.stream; codecs="lz4"``); an old client gets the plain
stream it always got. Whatever was negotiated, whole or streamed batch by batch, the
frame the SDK returns is the frame the API released. A stream cut short or damaged in
transit never turns into a shorter frame: the SDK raises ``ResultUnreadable``.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import httpx
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from polars.testing.parametric import dataframes
from starlette.applications import Starlette

with warnings.catch_warnings():  # starlette's TestClient over httpx (not httpx2) warns on import
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.api import wire  # noqa: E402
from marketplace.api.wire import (  # noqa: E402
    ARROW_STREAM,
    arrow_chunks,
    arrow_codec,
    arrow_stream,
)
from marketplace.client import Client, ResultUnreadable, WorkspaceConfig  # noqa: E402
from marketplace.client.arrow import ACCEPT_ARROW, is_arrow, read_frame  # noqa: E402
from tests.client.arrow_support import (  # noqa: E402
    CODECS_ONLY,
    DISTRICTS,
    PRODUCT,
    app_serving,
    sdk_client,
    secret_in,
    serving,
)


def result(rows: int = 5000) -> pl.DataFrame:
    """A released result of the kinds the sandbox produces: categories, dates, counts, means, flags, nulls."""
    return pl.DataFrame({
        "district": pl.Series([DISTRICTS[i % 4] for i in range(rows)], dtype=pl.Categorical),
        "month": [date(2024, 1 + i % 12, 1) for i in range(rows)],
        "hour": [datetime(2024, 12, 1, i % 24) for i in range(rows)],
        "n": pl.Series(list(range(rows)), dtype=pl.UInt32),
        "kwh": [None if i % 17 == 0 else i * 0.25 for i in range(rows)],
        "label": [f"户{i}" for i in range(rows)],
        "weekend": [i % 7 in (5, 6) for i in range(rows)],
    })


# -- negotiation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "codec"), [
    (ARROW_STREAM, None),
    ("application/json", None),
    ("", None),
    (f'{ARROW_STREAM}; codecs="lz4"', "lz4"),
    (f'{ARROW_STREAM};codecs=zstd', "zstd"),
    (f'{ARROW_STREAM}; codecs="zstd, lz4", application/json;q=0.5', "zstd"),
    (f'{ARROW_STREAM}; codecs="brotli, lz4"', "lz4"),
    (f'{ARROW_STREAM}; codecs="brotli"', None),
    (f'application/json; codecs="lz4", {ARROW_STREAM}', None),
    ('APPLICATION/VND.APACHE.ARROW.STREAM; CODECS="LZ4"', "lz4"),
])
def test_codec_is_what_the_arrow_media_range_lists_first_and_the_api_supports(accept: str, codec: str | None) -> None:
    assert arrow_codec(accept) == codec


@given(st.text(max_size=80))
def test_any_accept_header_yields_a_supported_codec_or_none(accept: str) -> None:
    """Property: no header makes the API pick a codec it cannot write, or fail."""
    assert arrow_codec(accept) in (None, *wire.ARROW_CODECS)


def test_the_sdk_asks_for_lz4_and_reads_content_types_with_parameters() -> None:
    assert arrow_codec(ACCEPT_ARROW) == "lz4"
    assert is_arrow(ARROW_STREAM) and is_arrow(f"{ARROW_STREAM}; codecs=lz4") and not is_arrow("application/json")


# -- compressed and plain streams: the same frame ------------------------------------------------------


@pytest.mark.parametrize("rows", [0, 1, 5000])
@pytest.mark.parametrize("batch_bytes", [wire.BATCH_BYTES, 2048])  # whole, or streamed in many batches
def test_compressed_and_plain_streams_decode_to_the_same_frame(
    rows: int, batch_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "BATCH_BYTES", batch_bytes)
    frame = result(rows)
    with TestClient(app_serving(frame)) as http:
        plain = http.post("/q", headers={"Accept": ARROW_STREAM})
        packed = http.post("/q", headers={"Accept": CODECS_ONLY})
    assert plain.headers["content-type"] == ARROW_STREAM
    assert packed.headers["content-type"] == f"{ARROW_STREAM}; codecs=lz4"
    for response in (plain, packed):
        assert_frame_equal(read_frame([response.content], expected_rows=rows), frame)
        assert_frame_equal(pl.read_ipc_stream(response.content), frame)  # any Arrow reader, not only ours
    if rows == 5000:
        assert len(packed.content) < len(plain.content) / 2  # LZ4 buffers, not a relabelled plain stream
    streamed = batch_bytes == 2048 and rows == 5000
    assert ("content-length" not in plain.headers) is streamed  # chunked only when it is worth streaming


def test_an_old_client_gets_exactly_what_polars_wrote_before() -> None:
    """An old SDK (plain Accept, ``pl.read_ipc_stream``) reads the same frame as Polars' own writer gave it."""
    frame = result()
    with TestClient(app_serving(frame)) as http:
        response = http.post("/q", headers={"Accept": ARROW_STREAM})
    before = io.BytesIO()
    frame.write_ipc_stream(before)
    assert_frame_equal(pl.read_ipc_stream(response.content), pl.read_ipc_stream(before.getvalue()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=dataframes(max_cols=5, max_size=300, allowed_dtypes=[
    pl.Int64, pl.Int32, pl.UInt32, pl.Float64, pl.Boolean, pl.String, pl.Date, pl.Datetime("us"),
    pl.Categorical, pl.Decimal(12, 2), pl.Duration("us"),
]), codec=st.sampled_from([None, "lz4", "zstd"]), rows=st.integers(1, 120))
def test_any_result_frame_survives_the_wire_unchanged(frame: pl.DataFrame, codec: str | None, rows: int) -> None:
    """Property: for any frame of the dtypes results have, in slices of any size and with any codec, the
    SDK's decoding of the API's encoding is the identity, and so is Polars' own reader (old clients)."""
    chunks = list(arrow_chunks(frame, codec, rows=rows))
    assert_frame_equal(read_frame(chunks, expected_rows=frame.height), frame)
    assert_frame_equal(pl.read_ipc_stream(b"".join(chunks)), frame)


@pytest.mark.parametrize("size", [1, 7, 4096, 10**9])
def test_the_decoder_does_not_care_how_the_body_is_cut_into_chunks(size: int) -> None:
    frame = result()
    body = arrow_stream(frame, "lz4")
    assert_frame_equal(read_frame([body[i:i + size] for i in range(0, len(body), size)]), frame)


# -- through the SDK -------------------------------------------------------------------------------------


def sdk_over(app: Starlette, secret_file: Path, transport: httpx.BaseTransport | None = None) -> Client:
    return sdk_client(transport or TokenTransport(app), secret_file)


class TokenTransport(httpx.BaseTransport):
    """Answers the token endpoint and hands everything else to an ASGI app (through Starlette's TestClient)."""

    def __init__(self, app: Starlette) -> None:
        self.client = TestClient(app)
        self.accepts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 300})
        self.accepts.append(request.headers.get("accept", ""))
        answer = self.client.post("/q", headers={"Accept": request.headers.get("accept", "")})
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    return secret_in(tmp_path)


def test_the_sdk_negotiates_lz4_and_returns_the_released_frame(secret_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "BATCH_BYTES", 4096)
    frame = result()
    transport = TokenTransport(app_serving(frame))
    sy = sdk_over(app_serving(frame), secret_file, transport)
    assert_frame_equal(sy.query(PRODUCT).select(*frame.columns).collect(), frame)
    assert transport.accepts == [ACCEPT_ARROW]


def test_the_sdk_reads_a_plain_stream_from_an_api_that_ignores_codecs(secret_file: Path) -> None:
    frame = result()

    def old_api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 300})
        buffer = io.BytesIO()
        frame.write_ipc_stream(buffer)  # as the API wrote before it knew codecs
        return httpx.Response(200, content=buffer.getvalue(), headers={"content-type": ARROW_STREAM,
                                                                       "x-shuyun-rows-out": str(frame.height)})

    sy = sdk_over(app_serving(frame), secret_file, httpx.MockTransport(old_api))
    assert_frame_equal(sy.query(PRODUCT).select(*frame.columns).collect(), frame)


# -- truncated and corrupt streams -------------------------------------------------------------------------


class CutStream(httpx.SyncByteStream):
    """A body that breaks after ``keep`` bytes, as a connection dropped mid-body does."""

    def __init__(self, body: bytes, keep: int) -> None:
        self.body, self.keep = body, keep

    def __iter__(self) -> Iterator[bytes]:
        yield self.body[: self.keep]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def batches_of(frame: pl.DataFrame) -> tuple[bytes, list[int]]:
    """The LZ4 stream of ``frame`` in many batches, and the offsets where its messages end."""
    table = frame.to_arrow()
    sink = pa.BufferOutputStream()
    ends = []
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        ends.append(sink.tell())
        for batch in table.to_batches(max_chunksize=1000):
            writer.write_batch(batch)
            ends.append(sink.tell())
    return sink.getvalue().to_pybytes(), ends


def test_a_connection_cut_mid_body_raises_result_truncated(secret_file: Path) -> None:
    frame = result()
    body, _ = batches_of(frame)
    sy = sdk_over(app_serving(frame), secret_file, serving(CutStream(body, len(body) // 2), frame.height))
    with pytest.raises(ResultUnreadable) as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    assert caught.value.code == "result_truncated" and caught.value.use_id == "use-1"
    assert "was metered" in caught.value.detail and sy.last_result is None


def test_a_stream_cut_at_a_batch_boundary_is_caught_by_the_row_count(secret_file: Path) -> None:
    frame = result()
    body, ends = batches_of(frame)
    sy = sdk_over(app_serving(frame), secret_file, serving(body[: ends[2]], frame.height))  # two batches of 1000
    with pytest.raises(ResultUnreadable, match="after 2000 of the 5000 rows") as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    assert caught.value.code == "result_truncated"


@pytest.mark.parametrize("damage", ["garbage", "flipped", "cut_in_message", "trailing"])
def test_a_corrupt_stream_raises_result_corrupt_or_truncated(secret_file: Path, damage: str) -> None:
    frame = result()
    body, ends = batches_of(frame)
    if damage == "garbage":
        body = b"<html>502 Bad Gateway</html>" * 10
    elif damage == "flipped":  # the length of the first batch's metadata, overwritten
        body = body[: ends[0]] + b"\xff\xff\xff\xff\x7f\x7f\x7f\x7f" + body[ends[0] + 8:]
    elif damage == "cut_in_message":  # a clean end of body in the middle of a batch
        body = body[: ends[1] + 10]
    else:
        body = body + b"\x00" * 16
    sy = sdk_over(app_serving(frame), secret_file, serving(body, frame.height))
    with pytest.raises(ResultUnreadable) as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    assert caught.value.code in ("result_corrupt", "result_truncated")
    assert caught.value.detail and sy.last_result is None


def test_a_real_connection_dropped_mid_chunked_body_is_truncated_not_short(secret_file: Path) -> None:
    """Over a real socket: chunked body, the server dies after a batch, before the terminating chunk."""
    frame = result()
    body, ends = batches_of(frame)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):  # the token, then the query
            conn, _ = listener.accept()
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, rest = request.partition(b"\r\n\r\n")
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), b"0"))
            while len(rest) < length:
                rest += conn.recv(65536)
            if b"/oauth/token" in head:
                token = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 300}).encode()
                # A server that closes says so (``connection: close``); without it the client may
                # send the query on this socket before it sees the close, and gets a reset.
                conn.sendall(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(token)).encode() + b"\r\n\r\n" + token)
            else:
                part = body[: ends[2]]
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: " + ACCEPT_ARROW.split(";")[0].encode()
                             + b"\r\nx-shuyun-rows-out: 5000\r\ntransfer-encoding: chunked\r\n\r\n"
                             + f"{len(part):x}\r\n".encode() + part + b"\r\n")
            conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = WorkspaceConfig(api_url=f"http://127.0.0.1:{port}", client_id="c1", secret_file=secret_file)
    with Client(config) as sy, pytest.raises(ResultUnreadable) as caught:
        sy.query(PRODUCT).select(*frame.columns).collect()
    thread.join(10)
    assert caught.value.code == "result_truncated" and "cut" in caught.value.detail


def test_json_results_still_decode(secret_file: Path) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 300})
        return httpx.Response(200, json={"columns": ["d", "n"], "rows": [["青山区", 1]], "meta": {}},
                              headers={"x-shuyun-rows-out": "1"})

    sy = sdk_over(app_serving(result(1)), secret_file, httpx.MockTransport(api))
    assert sy.query(PRODUCT).agg(n="count").collect().to_dicts() == [{"d": "青山区", "n": 1}]
