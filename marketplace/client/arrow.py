"""Reading a query result off the wire: Arrow IPC stream -> Polars, batch by batch as it arrives.

The SDK asks for compressed IPC buffers and narrowed columns (``Accept:
application/vnd.apache.arrow.stream; codecs="lz4, zstd"; narrow=1``). The API compresses
only where it pays, and narrows integer and temporal columns to the narrowest integer
type that holds them (``marketplace.api.wire.wire_table``), with the original schema
and each column's offset and scale in the stream's schema metadata; ``Restoration``
casts every batch back, so the frame has exactly the released dtypes and values. A
server that does not know the parameters sends a plain stream, which reads the same way
(the stream itself says how its buffers are compressed and whether it was narrowed).

pyarrow decodes (Polars' own IPC reader is several times slower on an in-memory stream
and does not decompress in parallel) and ``pl.from_arrow`` wraps its buffers without
copying. The body is parsed message by message as it arrives from the HTTP response, so
it is never held twice in memory; the narrowed columns are cast back once, over the
whole frame, when the stream has ended: casting each batch back in a worker thread as
it arrived cost a quarter more CPU (a Polars call and a thread hand-off per batch) and
made the result no sooner, as the client then competes for the cores the server is
encoding on (benchmarks/sdk_arrow.py).

A result either arrives whole or raises ``ResultUnreadable``: a connection cut mid-body,
bytes that are not Arrow, or fewer rows than the API said it released (a stream cut at a
batch boundary looks well-formed to an IPC reader, so the row count is checked too).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from marketplace.client.errors import ResultUnreadable

ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: What the SDK decodes: codecs fastest first (the server picks the first it supports), and
#: narrowed columns (``Restoration`` casts them back).
ACCEPT_ARROW = f'{ARROW_STREAM}; codecs="lz4, zstd"; narrow=1'
#: Schema metadata key of a narrowed stream (written by ``marketplace.api.wire.wire_table``).
NARROWED_KEY = b"shuyun:narrowed"


def is_arrow(content_type: str) -> bool:
    """Whether a ``Content-Type`` is an Arrow stream, with or without parameters (``; codecs=lz4``)."""
    return content_type.split(";", 1)[0].strip().lower() == ARROW_STREAM


def read_frame(chunks: Iterable[bytes], *, expected_rows: int | None = None, use_id: str = "") -> pl.DataFrame:
    """Decode an Arrow IPC stream given as byte chunks into a DataFrame, or raise ``ResultUnreadable``."""
    source = _ChunkFile(chunks)
    try:
        reader = ipc.open_stream(source)
        restoration = Restoration.of(reader.schema)
        table = reader.read_all()
        rows = table.num_rows
        frame = _frame(table)
        if restoration is not None:
            frame = restoration.apply(frame) if rows else restoration.empty()
    except (pa.ArrowException, OSError, ValueError, httpx.HTTPError, pl.exceptions.PolarsError) as error:
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
    if expected_rows is not None and rows != expected_rows:
        raise ResultUnreadable(
            f"the result stream ended after {rows} of the {expected_rows} rows the API released; "
            "the query was metered, running it again counts again", code="result_truncated", use_id=use_id,
        )
    assert isinstance(frame, pl.DataFrame)
    return frame


_INTEGERS: dict[pa.DataType, pl.DataType] = {
    pa.int16(): pl.Int16(), pa.int32(): pl.Int32(), pa.int64(): pl.Int64(),
    pa.uint16(): pl.UInt16(), pa.uint32(): pl.UInt32(), pa.uint64(): pl.UInt64(),
}


def _polars_type(kind: pa.DataType) -> pl.DataType:
    """The Polars dtype of a narrowed column's original Arrow type (the types the API narrows), or ValueError."""
    if kind in _INTEGERS:
        return _INTEGERS[kind]
    if kind == pa.date32():
        return pl.Date()
    if pa.types.is_timestamp(kind):
        return pl.Datetime(kind.unit, kind.tz)
    if pa.types.is_duration(kind):
        return pl.Duration(kind.unit)
    if kind == pa.time64("ns"):
        return pl.Time()
    raise ValueError(f"the stream says a column of type {kind} was narrowed; the API narrows no such type")


def _frame(data: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(data, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


class Restoration:
    """How a narrowed stream's columns turn back into the released ones: ``wire * scale + offset``, cast.

    Built from the stream's schema metadata (the original schema, serialized, and each
    narrowed column's ``[offset, scale]``); metadata that does not describe the stream's
    own columns raises ``ValueError`` (a corrupt stream).
    """

    def __init__(self, original: pa.Schema, columns: Mapping[str, tuple[int, int]]) -> None:
        self.original = original
        self.columns = dict(columns)
        self._exprs = [self._restored(field.name, _polars_type(field.type)) if field.name in self.columns
                       else pl.col(field.name) for field in original]

    @classmethod
    def of(cls, schema: pa.Schema) -> Restoration | None:
        """The restoration a stream's schema asks for, or None for a stream that was not narrowed."""
        note = (schema.metadata or {}).get(NARROWED_KEY)
        if note is None:
            return None
        try:
            parsed = json.loads(note)
            original = ipc.read_schema(pa.py_buffer(base64.b64decode(parsed["schema"], validate=True)))
            columns = {str(name): (int(offset), int(scale)) for name, (offset, scale) in parsed["columns"].items()}
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, pa.ArrowException) as error:
            raise ValueError(f"the stream's narrowing metadata is unreadable ({error})") from None
        if original.names != schema.names or not set(columns) <= set(schema.names):
            raise ValueError("the stream's narrowing metadata names other columns than the stream has")
        if any(scale < 1 for _, scale in columns.values()):
            raise ValueError("the stream's narrowing metadata has a scale below 1")
        return cls(original, columns)

    def _restored(self, name: str, dtype: pl.DataType) -> pl.Expr:
        column = pl.col(name)
        offset, scale = self.columns[name]
        if dtype.is_integer() and offset == 0 and scale == 1:
            return column.cast(dtype)
        exact = pl.UInt64 if dtype == pl.UInt64 else pl.Int64
        value = column.cast(exact)
        if scale != 1:
            value = value * pl.lit(scale, exact)
        if offset:
            value = value + pl.lit(offset, exact)
        return value.cast(dtype)

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (a narrowed batch, as Polars reads it) with the released dtypes and values."""
        return frame.select(self._exprs)

    def empty(self) -> pl.DataFrame:
        """The released frame of a result without rows."""
        return _frame(self.original.empty_table())


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
