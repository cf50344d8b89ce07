"""Reading a query result off the wire: Arrow IPC stream -> Polars, batch by batch as it arrives.

The SDK asks for compressed IPC buffers (``Accept: application/vnd.apache.arrow.stream;
codecs="lz4, zstd"``); a server that does not know the parameter sends a plain stream,
which reads the same way (the stream itself says how its buffers are compressed).

pyarrow decodes (Polars' own IPC reader is several times slower on an in-memory stream
and does not decompress in parallel) and ``pl.from_arrow`` wraps its buffers without
copying. The body is read from the HTTP response as it arrives, so one batch is decoded
while the next is still on the wire, and the body is never held twice in memory.

A result either arrives whole or raises ``ResultUnreadable``: a connection cut mid-body,
bytes that are not Arrow, or fewer rows than the API said it released (a stream cut at a
batch boundary looks well-formed to an IPC reader, so the row count is checked too).
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Iterator

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from marketplace.client.errors import ResultUnreadable

ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: What the SDK decodes, fastest first (the server picks the first it supports).
ACCEPT_ARROW = f'{ARROW_STREAM}; codecs="lz4, zstd"'


def is_arrow(content_type: str) -> bool:
    """Whether a ``Content-Type`` is an Arrow stream, with or without parameters (``; codecs=lz4``)."""
    return content_type.split(";", 1)[0].strip().lower() == ARROW_STREAM


def read_frame(chunks: Iterable[bytes], *, expected_rows: int | None = None, use_id: str = "") -> pl.DataFrame:
    """Decode an Arrow IPC stream given as byte chunks into a DataFrame, or raise ``ResultUnreadable``."""
    source = _ChunkFile(chunks)
    try:
        table = ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError, ValueError, httpx.HTTPError) as error:
        if source.failure is not None:
            raise ResultUnreadable(
                f"the result stream was cut after {source.consumed} bytes ({source.failure}); the query was "
                "metered, running it again counts again", code="result_truncated", use_id=use_id,
            ) from None
        raise ResultUnreadable(
            f"the result is not a valid Arrow IPC stream ({error}); the query was metered, running it again "
            "counts again", code="result_corrupt", use_id=use_id,
        ) from None
    if source.leftover:
        raise ResultUnreadable(
            f"the result stream has {source.leftover} bytes after its end marker", code="result_corrupt",
            use_id=use_id,
        )
    if expected_rows is not None and table.num_rows != expected_rows:
        raise ResultUnreadable(
            f"the result stream ended after {table.num_rows} of the {expected_rows} rows the API released; "
            "the query was metered, running it again counts again", code="result_truncated", use_id=use_id,
        )
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


class _ChunkFile(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (an HTTP body as it arrives).

    pyarrow asks for exact message sizes; a request is served from the chunks already
    received plus as many new ones as needed, joined once. A transport failure is kept
    in ``failure`` so that it can be told apart from bytes that are not Arrow.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending: deque[bytes] = deque()
        self._offset = 0  # into the first pending chunk: a large chunk is never re-sliced
        self._buffered = 0
        self.consumed = 0
        self.failure: Exception | None = None
        self._ended = False

    def readable(self) -> bool:
        return True

    def _fill(self, wanted: int) -> None:
        while self._buffered < wanted and not self._ended:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._ended = True
                return
            except httpx.HTTPError as error:
                self.failure = error
                self._ended = True
                raise OSError(str(error)) from error
            if chunk:
                self._pending.append(chunk)
                self._buffered += len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self._fill(2**62)
            size = self._buffered
        else:
            self._fill(size)
        size = min(size, self._buffered)
        parts: list[bytes | memoryview] = []
        missing = size
        while missing:
            head = self._pending[0]
            available = len(head) - self._offset
            if available <= missing:
                parts.append(memoryview(head)[self._offset:] if self._offset else head)
                self._pending.popleft()
                self._offset = 0
                missing -= available
            else:
                parts.append(memoryview(head)[self._offset:self._offset + missing])
                self._offset += missing
                missing = 0
        self._buffered -= size
        self.consumed += size
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def leftover(self) -> int:
        """Bytes after the stream's end marker (there should be none)."""
        try:
            self._fill(1)
        except OSError:
            return 0
        return self._buffered
