"""A large result streamed: each next piece is encoded while this one is on the wire, and nothing outlives the client.

The API encodes one record batch ahead (``marketplace.api.wire.encoded_ahead``), so
that narrowing and writing the next batch overlap with sending this one and the client
decoding it. A client that goes away stops the encoding after the piece in hand; a
failure while encoding a later piece cuts the chunked body, which the SDK reports as
truncated, never as a shorter frame. A categorical column's dictionary travels once
however many batches the result has.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from polars.testing import assert_frame_equal
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.api import wire  # noqa: E402
from marketplace.api.wire import arrow_chunks, arrow_media_type, arrow_response, encoded_ahead  # noqa: E402
from marketplace.client import Client, ResultUnreadable, WorkspaceConfig  # noqa: E402
from marketplace.client.arrow import read_frame  # noqa: E402
from tests.client.arrow_support import DISTRICTS, PRODUCT, secret_in  # noqa: E402


def result(rows: int = 20_000) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame({
        "district": pl.Series(DISTRICTS, dtype=pl.Categorical).gather(rng.integers(0, len(DISTRICTS), rows)),
        "boardings": rng.poisson(30, rows).astype(np.int64),
    })


class Pieces:
    """An iterator of byte pieces that records, with a clock, when each piece was asked for."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.asked: list[tuple[int, float]] = []

    def __iter__(self) -> Iterator[bytes]:
        for index in range(self.count):
            self.asked.append((index, time.monotonic()))
            if index == self.fail_at:
                raise RuntimeError("the encoder failed on this piece")
            yield b"piece %d;" % index


def test_the_next_piece_is_encoded_while_this_one_is_being_sent() -> None:
    pieces = Pieces(5)

    async def consume() -> list[bytes]:
        received = []
        async for piece in encoded_ahead(iter(pieces)):
            received.append(piece)
            await asyncio.sleep(0.2)  # sending this piece takes a while
            index = len(received)  # the piece after this one
            assert index >= pieces.count or any(asked == index for asked, _ in pieces.asked), \
                f"piece {index} was not started while piece {index - 1} was being sent"
        return received

    assert asyncio.run(consume()) == [b"piece %d;" % i for i in range(5)]


def test_a_client_that_leaves_stops_the_encoding_after_the_piece_in_hand() -> None:
    pieces = Pieces(100)

    async def consume_two() -> None:
        stream = encoded_ahead(iter(pieces))
        assert await anext(stream) == b"piece 0;"
        assert await anext(stream) == b"piece 1;"
        await stream.aclose()  # type: ignore[attr-defined]  # what Starlette does when the client disconnects

    asyncio.run(consume_two())
    time.sleep(0.2)
    assert [index for index, _ in pieces.asked] in ([0, 1], [0, 1, 2])  # at most the one started ahead


def test_a_failure_while_encoding_is_raised_where_the_piece_is_awaited() -> None:
    async def consume() -> list[bytes]:
        return [piece async for piece in encoded_ahead(iter(Pieces(5, fail_at=3)))]

    with pytest.raises(RuntimeError, match="the encoder failed"):
        asyncio.run(consume())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uvicorn(app: Starlette) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    return server, thread, f"http://127.0.0.1:{port}"


def _api(query: Callable[[Request], Awaitable[Response]]) -> Starlette:
    """A token endpoint and ``query`` at the query path the SDK calls."""
    async def token(request: Request) -> Response:
        return Response(b'{"access_token": "t", "token_type": "Bearer", "expires_in": 300}',
                        media_type="application/json")

    return Starlette(routes=[Route("/oauth/token", token, methods=["POST"]),
                             Route("/v1/products/{product_id}/query", query, methods=["POST"])])


def _sdk(url: str, tmp_path: Path) -> Client:
    return Client(WorkspaceConfig(api_url=url, client_id="c1", secret_file=secret_in(tmp_path)))


def test_the_sdk_reads_a_large_result_streamed_by_a_real_server(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "BATCH_BYTES", 16_384)  # many batches, streamed (chunked)
    frame = result()

    async def query(request: Request) -> Response:
        response = arrow_response(frame, request.headers["accept"], {"X-Shuyun-Rows-Out": str(frame.height)})
        assert isinstance(response, StreamingResponse)
        return response

    server, thread, url = _uvicorn(_api(query))
    try:
        with _sdk(url, tmp_path) as sy:
            assert_frame_equal(sy.query(PRODUCT).select(*frame.columns).collect(), frame)
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_failure_after_some_batches_reaches_the_sdk_as_a_truncated_result(tmp_path: Path) -> None:
    """The server has sent whole batches when encoding the next one fails: the chunked body ends without its
    terminator, and the SDK says the result was cut, never returns the batches it got as the result."""
    frame = result()
    good = list(arrow_chunks(frame, rows=1000))  # schema + first batch, then a batch a piece

    def failing() -> Iterator[bytes]:
        yield from good[:4]
        raise RuntimeError("the encoder failed on this piece")

    async def query(request: Request) -> Response:
        return StreamingResponse(encoded_ahead(failing()), 200, {"X-Shuyun-Rows-Out": str(frame.height)},
                                 arrow_media_type(None))

    server, thread, url = _uvicorn(_api(query))
    try:
        with _sdk(url, tmp_path) as sy, pytest.raises(ResultUnreadable) as caught:
            sy.query(PRODUCT).select(*frame.columns).collect()
        assert caught.value.code == "result_truncated" and sy.last_result is None
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("narrow", [False, True])
def test_a_categorical_dictionary_travels_once_however_many_batches(narrow: bool) -> None:
    frame = result()
    body = b"".join(arrow_chunks(frame, rows=1000, narrow=narrow))
    reader = ipc.MessageReader.open_stream(pa.py_buffer(body))
    kinds = [message.type for message in reader]
    assert kinds.count("dictionary") == 1 and kinds.count("record batch") == 20
    assert_frame_equal(read_frame([body], expected_rows=frame.height), frame)


@given(hnp.arrays(np.uint8, st.integers(0, 300)), st.integers(1, 40))
def test_which_codes_occur_is_found_exactly(indices: np.ndarray, spread: int) -> None:
    width = max(spread, int(indices.max()) + 1 if indices.size else 1)
    expected = np.isin(np.arange(width), indices)
    assert wire._present(indices, width).tolist() == expected.tolist()
    wide = indices.astype(np.uint16) * 3
    wide_width = max(width * 3, int(wide.max()) + 1 if wide.size else 1)
    assert wire._present(wide, wide_width).tolist() == np.isin(np.arange(wide_width), wide).tolist()
