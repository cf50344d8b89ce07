"""How a released result goes on the wire: an Arrow IPC stream, narrowed and compressed for the SDK.

A client that lists IPC buffer codecs in its ``Accept`` header (``application/vnd.apache.arrow.stream;
codecs="lz4"``, the convention of the Arrow project's HTTP examples) gets the body
buffers compressed with the first of them the API supports; one that also says
``narrow=1`` (the SDK) gets integer and temporal columns in the narrowest integer type
that holds them, with what it takes to cast them back in the schema metadata
(``WireFrame``), and compression only where it pays. Any other client gets a plain
stream, as before. Large results are streamed as record batches, so the client decodes
one batch while the next is narrowed, compressed and in flight (benchmarks/sdk_arrow.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from threading import Lock

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from starlette.responses import Response, StreamingResponse

ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: IPC buffer codecs the API writes when a client asks for them. LZ4 frame: on a 1M-row
#: result it compresses 36 MB to 13 MB at about 1 GB/s and decodes fastest; ZSTD makes
#: it smaller (5 MB) but takes 3x as long to write and read (measured, benchmarks/sdk_arrow.py).
ARROW_CODECS = ("lz4", "zstd")
#: Record batches of about this many (uncompressed, before narrowing) bytes: large enough
#: that per-batch overhead vanishes, small enough that encoding, transfer and decoding overlap.
BATCH_BYTES = 4 * 2**20
#: For a client that restores narrowed columns, a requested codec is used only if it shrinks
#: a sample of the result by at least this much: LZ4 writes about 0.7 GB/s on one core here,
#: so a smaller saving costs more time than it saves on a gigabit or faster link (narrowed
#: integers barely compress: random counts as int8 shrink by 3%).
MIN_SAVING = 0.2
SAMPLE_ROWS = 2048
#: Schema metadata key of a narrowed stream: the original schema and each narrowed column's
#: offset and scale (``marketplace.client.arrow.Restoration`` reads it).
NARROWED_KEY = b"shuyun:narrowed"
#: A categorical column goes out as its own category codes and a dictionary of the code range
#: they span, when that range is at most this wide (else Polars' slower export remaps them).
MAX_DICTIONARY = 4096
_BLOCK = 131072
#: Temporal types narrowed besides timestamps and durations: those Polars exports (dates, times of day).
_TEMPORAL = (pa.date32(), pa.time64("ns"))
_NARROWER = ((pa.int8(), -(2**7), 2**7 - 1), (pa.uint8(), 0, 2**8 - 1), (pa.int16(), -(2**15), 2**15 - 1),
             (pa.uint16(), 0, 2**16 - 1), (pa.int32(), -(2**31), 2**31 - 1), (pa.uint32(), 0, 2**32 - 1))


def arrow_codec(accept: str) -> str | None:
    """The IPC buffer codec an ``Accept`` header asks for, or ``None`` for a plain stream.

    ``codecs`` is a parameter of the Arrow media range (``application/vnd.apache.arrow.stream;
    codecs="zstd, lz4"``); the client's first codec the API supports wins. Commas inside the
    quoted list do not split media ranges.
    """
    for value in _arrow_params(accept, "codecs"):
        for codec in value.split(","):
            if codec.strip().lower() in ARROW_CODECS:
                return codec.strip().lower()
    return None


def arrow_narrow(accept: str) -> bool:
    """Whether the client restores narrowed columns (``narrow=1`` on the Arrow media range).

    Only a client that says so gets them: any other Arrow reader would return the narrow
    types (``Int8`` counts, offsets instead of timestamps) as if they were the result.
    """
    return any(value.strip() == "1" for value in _arrow_params(accept, "narrow"))


def _arrow_params(accept: str, wanted: str) -> Iterator[str]:
    """The values (unquoted) of parameter ``wanted`` on every Arrow media range of ``accept``."""
    for media_range in _split_outside_quotes(accept, ","):
        media_type, *params = _split_outside_quotes(media_range, ";")
        if media_type.strip().lower() != ARROW_STREAM:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == wanted:
                yield value.strip().strip('"')


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def arrow_media_type(codec: str | None, narrowed: bool = False) -> str:
    """``Content-Type`` of a stream: codec and narrowing are named for whoever debugs it (the stream says it too)."""
    media_type = ARROW_STREAM if codec is None else f"{ARROW_STREAM}; codecs={codec}"
    return f"{media_type}; narrow=1" if narrowed else media_type


def arrow_response(
    frame: pl.DataFrame, accept: str, headers: Mapping[str, str], source: ReleasedRows | None = None
) -> Response:
    """The result as an Arrow IPC stream, narrowed and compressed as ``accept`` allows.

    ``source``: the version rows a row-level result released, whose columns the version
    has already narrowed (``VersionWire``); narrowed columns are then taken from there.

    For a client that restores narrowed columns, the requested codec is used only where
    it pays (``MIN_SAVING`` on a sample); the ``Content-Type`` says what was done. A
    result of one batch is encoded here and sent whole (with a ``Content-Length``); a
    larger one is streamed batch by batch (chunked): each next batch is narrowed and
    written in an encoder thread while the previous one is on the wire and being decoded
    (``encoded_ahead``). A stream cut short by a failure mid-way lacks the chunked terminator, so the
    client sees an incomplete body, never a well-formed shorter result.
    """
    narrow = arrow_narrow(accept)
    wire = WireFrame(frame, narrow=narrow, source=source if narrow else None)
    codec = arrow_codec(accept)
    if codec is not None and narrow and not compression_pays(wire, codec):
        codec = None  # a client that lists codecs without narrow=1 (an older SDK) gets them as before
    media_type = arrow_media_type(codec, narrowed=wire.narrowed)
    rows = batch_rows(frame)
    chunks = wire_chunks(wire, codec, rows=rows)
    if frame.height <= rows:
        return Response(b"".join(chunks), 200, dict(headers), media_type)
    return StreamingResponse(encoded_ahead(chunks), 200, dict(headers), media_type)


def encoded_ahead(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The pieces of ``chunks``, each next one encoded in a worker thread while this one is sent.

    Starlette's own iteration of a sync iterator asks for the next piece only once the
    socket has taken the previous one, which on a result larger than the socket's buffer
    means once the client has read most of it: encoding, sending and the client's decoding
    then take turns. Encoding one piece ahead lets them overlap (numpy and pyarrow release
    the GIL). The first piece is started now, while the headers go out.
    """
    upcoming = _encoder().submit(next, chunks, None)

    async def pieces(upcoming: Future[bytes | None]) -> AsyncIterator[bytes]:
        try:
            while (piece := await asyncio.wrap_future(upcoming)) is not None:
                upcoming = _encoder().submit(next, chunks, None)
                yield piece
        finally:
            upcoming.cancel()  # the client went away: a piece not started is not encoded for nobody

    return pieces(upcoming)


_encoder_pool: ThreadPoolExecutor | None = None
_encoder_lock = Lock()


def _encoder() -> ThreadPoolExecutor:
    """The threads that encode streamed results, one per core: encoding is CPU work, more threads only queue."""
    global _encoder_pool
    with _encoder_lock:
        if _encoder_pool is None:
            _encoder_pool = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="shuyun-arrow-encode")
        return _encoder_pool


def arrow_stream(frame: pl.DataFrame, codec: str | None = None, *, narrow: bool = False) -> bytes:
    """The whole result as one Arrow IPC stream (buffers compressed with ``codec`` if given)."""
    return b"".join(arrow_chunks(frame, codec, narrow=narrow))


def batch_rows(frame: pl.DataFrame) -> int:
    """Rows per record batch for about ``BATCH_BYTES`` of data (at least 1024)."""
    per_row = frame.estimated_size() / frame.height if frame.height else 1.0
    return max(1024, int(BATCH_BYTES / max(per_row, 1.0)))


def arrow_chunks(
    frame: pl.DataFrame, codec: str | None = None, *, rows: int | None = None, narrow: bool = False
) -> Iterator[bytes]:
    """The IPC stream of ``frame`` in pieces: the schema, then one piece per slice of ``rows`` rows, then the end."""
    return wire_chunks(WireFrame(frame, narrow=narrow), codec, rows=rows or batch_rows(frame))


def wire_chunks(wire: WireFrame, codec: str | None, *, rows: int) -> Iterator[bytes]:
    """The IPC stream of ``wire`` in pieces: the schema, then one piece per slice of ``rows`` rows, then the end.

    pyarrow writes (Polars' own IPC writer is several times slower and compresses in one
    thread; pyarrow compresses a batch's buffers in parallel). Each slice is narrowed only
    when its turn comes, so narrowing, compressing, sending and decoding overlap.
    """
    options = ipc.IpcWriteOptions(compression=codec, use_threads=codec is not None)
    sink = _Collector()
    writer = ipc.new_stream(pa.PythonFile(sink, mode="w"), wire.schema, options=options)
    for offset in range(0, max(wire.height, 1), rows):
        writer.write_table(wire.table(offset, rows))
        yield sink.take()
    writer.close()
    yield sink.take()


def compression_pays(wire: WireFrame, codec: str) -> bool:
    """Whether ``codec`` shrinks the first ``SAMPLE_ROWS`` rows by at least ``MIN_SAVING`` (or there are none)."""
    sample = wire.table(0, SAMPLE_ROWS)
    if sample.num_rows == 0:
        return True  # nothing to compress: the stream is labelled as asked
    sizes: list[int] = []
    for option in (None, codec):
        sink = pa.MockOutputStream()
        with ipc.new_stream(sink, sample.schema, options=ipc.IpcWriteOptions(compression=option)) as writer:
            writer.write_table(sample)
        sizes.append(int(sink.size()))
    return sizes[1] <= sizes[0] * (1 - MIN_SAVING)


def wire_table(frame: pl.DataFrame, *, narrow: bool = False) -> pa.Table:
    """``frame`` as the whole Arrow table that goes on the wire (``WireFrame``)."""
    return WireFrame(frame, narrow=narrow).table()


class WireFrame:
    """A result as it goes on the wire: its schema decided now, its rows converted slice by slice as they are sent.

    Columns are exported chunk for chunk (nothing is copied to join chunks). Categorical
    columns go as their category codes and a dictionary of the code range (``to_arrow``
    remaps every row to a dictionary of first appearances: 13 ms per million rows). With
    ``narrow`` (clients that restore them, ``arrow_narrow``), integer and temporal columns
    go as the narrowest integer type that holds them losslessly: integers as themselves
    or as offsets from their minimum; dates, times, timestamps and durations as offsets
    from their minimum in units of the largest step that divides them all (a timestamp
    per hour becomes a ``uint16`` hour count); dictionary codes in the narrowest type. The
    original schema and each column's offset and scale travel in the schema's metadata
    (``NARROWED_KEY``), so the client casts back to exactly the released dtypes and values.

    Deciding a column's wire type takes its minimum and maximum; a temporal step is also
    checked on every row, which computes the wire values, and which categories a column
    uses is found on every row too, so those columns are converted here and the others
    slice by slice (``table``). With ``source`` (narrowed streams only), the columns its
    version prepared are taken from there instead (``VersionWire``).
    """

    def __init__(self, frame: pl.DataFrame, *, narrow: bool = False, source: ReleasedRows | None = None) -> None:
        self.height = frame.height
        self._columns = [
            (source.version.column(series, source.rows) if source is not None else None) or _wire_column(series, narrow)
            for series in frame.get_columns()
        ]
        fields = [pa.field(series.name, column.type) for series, column in zip(frame.get_columns(), self._columns,
                                                                              strict=True)]
        narrowed = {series.name: [column.offset, column.scale] for series, column
                    in zip(frame.get_columns(), self._columns, strict=True) if column.restored}
        self.narrowed = bool(narrowed)
        metadata = None
        if narrowed:
            original = pa.schema([pa.field(series.name, column.source.type) for series, column
                                  in zip(frame.get_columns(), self._columns, strict=True)])
            note = {"schema": base64.b64encode(original.serialize().to_pybytes()).decode(), "columns": narrowed}
            metadata = {NARROWED_KEY: json.dumps(note, separators=(",", ":"))}
        self.schema = pa.schema(fields, metadata=metadata)

    def table(self, offset: int = 0, length: int | None = None) -> pa.Table:
        """Rows ``offset`` to ``offset + length`` as they go on the wire."""
        length = self.height - offset if length is None else length
        return pa.Table.from_arrays([column.piece(offset, length) for column in self._columns], schema=self.schema)


class VersionWire:
    """A product version's integer, temporal and categorical columns as they go on the wire (narrowed), made once.

    Why: deciding and converting a column's wire type takes passes over all its rows (its
    minimum and maximum, a temporal step checked on every row, the categories that
    occur): on a million rows of the bus product about 11 ms, all before the first byte
    of the answer can go (benchmarks/sdk_arrow.py). A row-level result's columns are the
    version's own values (rows picked by filters, order and limit), except floats, which
    carry the subscription's watermark. So a type, offset and step that hold for every row
    of the version hold for every such result: the version's columns are narrowed once,
    here, and a result takes its rows from them (a slice when it released the version's
    first rows in order, else a gather). Which categories a result uses is still found per
    result, so that its dictionary names no category of a row it did not release.

    Columns that go as they are (booleans, strings) are not kept: the result's own export
    costs nothing. Held by ``ProductData`` next to the version, for versions in memory.
    """

    def __init__(self, frame: pl.DataFrame) -> None:
        self.height = frame.height
        self._columns: dict[str, tuple[pl.DataType, _WireColumn]] = {}
        for series in frame.get_columns():
            if series.dtype.is_float():
                continue  # watermarked per subscription: a result's floats are never the version's
            column = _wire_column(series.rechunk(), narrow=True)
            if column.ready is None and not column.restored:
                continue
            ready = column.ready if column.ready is not None else column.piece(0, series.len())
            self._columns[series.name] = (series.dtype, replace(column, convert=None, ready=ready))
        self.nbytes = sum(int(column.ready.nbytes) for _, column in self._columns.values() if column.ready is not None)

    def column(self, series: pl.Series, rows: range | pl.Series) -> _WireColumn | None:
        """Released column ``series``, which holds the version's rows ``rows`` in that order, as it goes on the
        wire; None if the version did not prepare a column of that name and type."""
        found = self._columns.get(series.name)
        if found is None or found[0] != series.dtype or len(rows) != series.len():
            return None
        column = found[1]
        assert column.ready is not None
        if isinstance(rows, range):
            if rows.step != 1 or rows.stop > self.height:
                raise ValueError(f"rows {rows} are not a run of the version's {self.height} rows")
            taken = column.ready.slice(rows.start, len(rows))
        else:
            taken = column.ready.take(rows.to_arrow())
        if pa.types.is_dictionary(column.type):
            taken = _used_only(taken)
        return replace(column, ready=taken)


@dataclass(frozen=True)
class ReleasedRows:
    """The rows of a version a row-level result released, in order, and that version's wire columns."""

    version: VersionWire
    rows: range | pl.Series


@dataclass(frozen=True)
class _WireColumn:
    """One column on the wire: ``source`` (exported), converted piece by piece by ``convert`` to ``type``.

    ``restored``: the client must compute ``wire * scale + offset`` and cast to the source type.
    """

    source: pa.ChunkedArray
    type: pa.DataType
    convert: Callable[[pa.Array], pa.Array] | None = None
    offset: int = 0
    scale: int = 1
    restored: bool = False
    ready: pa.ChunkedArray | None = None

    def piece(self, offset: int, length: int) -> pa.ChunkedArray:
        if self.ready is not None:
            return self.ready.slice(offset, length)
        part = self.source.slice(offset, length)
        if self.convert is None:
            return part
        return pa.chunked_array([self.convert(chunk) for chunk in part.chunks], self.type)


def _wire_column(series: pl.Series, narrow: bool) -> _WireColumn:
    dtype = series.dtype
    if isinstance(dtype, pl.Categorical) and series.null_count() < series.len():
        codes = series.to_physical()
        low, high = codes.min(), codes.max()
        assert isinstance(low, int) and isinstance(high, int)
        if high - low < MAX_DICTIONARY:
            names = [_category(dtype.categories, code) for code in range(low, high + 1)]
            index_type = _unsigned(high - low) if narrow else pa.uint32()
            ready = _dictionary(_exported(codes), low=low, index_type=index_type, names=names)
            # its source type is the dictionary: what an empty result taken from a version restores to
            return _WireColumn(ready, ready.type, ready=ready)
    source = _exported(series)
    if narrow:
        return _narrowed(source) or _WireColumn(source, source.type)
    return _WireColumn(source, source.type)


def _exported(series: pl.Series) -> pa.ChunkedArray:
    chunks = [chunk.to_arrow() for chunk in series.get_chunks()]
    return pa.chunked_array(chunks) if chunks else pa.chunked_array([series.to_arrow()])


def _dictionary(codes: pa.ChunkedArray, *, low: int, index_type: pa.DataType, names: list[str | None]
                ) -> pa.ChunkedArray:
    """A column's category codes as dictionary arrays sharing one dictionary of the code range, naming only the
    categories the column uses.

    Polars' categories are global to the process, so the code range of one result may
    hold categories of other results (other products); those entries go as nulls, and
    the values are built afresh (a null made by masking would keep its bytes in the
    buffer). Readers check every index, even under a null, so those are 0. The whole
    column is converted here, once: which categories it uses is found in one pass, every
    record batch is a slice over the same dictionary, and pyarrow need not check indices
    that are in range by construction (per batch, these cost 3 ms per million rows).
    """
    width = len(names)
    used = np.zeros(width, bool)
    pieces: list[tuple[np.ndarray, np.ndarray | None]] = []
    for chunk in codes.chunks:
        indices = np.empty(len(chunk), index_type.to_pandas_dtype())
        raw = (chunk.fill_null(low) if chunk.null_count else chunk).to_numpy(zero_copy_only=False)
        np.subtract(raw, np.uint32(low), out=indices, casting="unsafe")
        mask = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None
        used |= _present(indices if mask is None else indices[~mask], width)
        pieces.append((indices, mask))
    values = _named(names, used)
    return pa.chunked_array(
        [pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), values, safe=False) for indices, mask in pieces],
        pa.dictionary(index_type, pa.large_string()),
    )


def _used_only(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary arrays sharing one dictionary that names only the categories their rows use (the others null)."""
    if column.num_chunks == 0:
        return column
    names = column.chunk(0).dictionary
    used = np.zeros(len(names), bool)
    for chunk in column.chunks:
        indices = chunk.indices
        if indices.null_count:  # a null's index is not a use (and to_numpy would give floats)
            valid = indices.is_valid().to_numpy(zero_copy_only=False)
            used |= _present(indices.fill_null(0).to_numpy(zero_copy_only=False)[valid], len(names))
        else:
            used |= _present(indices.to_numpy(zero_copy_only=False), len(names))
    values = _named(names.to_pylist(), used)
    return pa.chunked_array(
        [pa.DictionaryArray.from_arrays(chunk.indices, values, safe=False) for chunk in column.chunks], column.type
    )


def _named(names: list[str | None], used: np.ndarray) -> pa.Array:
    """A dictionary's values: the name of each used code, null for the others (whose names are not released)."""
    return pa.array([name if seen else None for name, seen in zip(names, used.tolist(), strict=True)],
                    pa.large_string())


#: Up to this many codes, which of them occur is found by ``memchr`` for each (``bytes.find``):
#: a used code is found near the start, an unused one costs one scan at memory speed,
#: so at most this many scans, about as long as ``np.bincount`` takes once (it first
#: converts every index to a machine word); a wider range is counted.
_SCANNED_CODES = 16


def _present(indices: np.ndarray, width: int) -> np.ndarray:
    """Which of ``0 .. width - 1`` occur in ``indices``."""
    if indices.dtype.itemsize == 1 and width <= _SCANNED_CODES:
        data = indices.tobytes()
        return np.array([data.find(bytes((code,))) >= 0 for code in range(width)], bool)
    return np.bincount(indices, minlength=width)[:width] > 0


def _category(categories: pl.Categories, code: int) -> str | None:
    try:
        name = categories[code]
    except IndexError:  # a code reserved by a concurrent query, used by no row here
        return None
    return name if isinstance(name, str) else None


def _unsigned(top: int) -> pa.DataType:
    """The narrowest unsigned integer type holding ``0..top``."""
    return next((t for t, _, high in _NARROWER if pa.types.is_unsigned_integer(t) and top <= high), pa.uint64())


def _narrowed(column: pa.ChunkedArray) -> _WireColumn | None:
    """How ``column`` goes narrowed (``value == wire * scale + offset``), or None if nothing narrower holds it.

    Integers keep their sign and values when a narrower type holds them (no work to undo
    but a widening cast), else go as offsets from their minimum; temporal columns always
    go as offsets, in steps of the largest divisor of a sample, checked on every row.
    """
    kind = column.type
    temporal = kind in _TEMPORAL or pa.types.is_timestamp(kind) or pa.types.is_duration(kind)
    if not (pa.types.is_integer(kind) or temporal) or kind.bit_width <= 8 or column.null_count == len(column):
        return None
    physical = pa.int32() if kind.bit_width == 32 else pa.int64()
    chunks = [chunk.view(physical) if temporal else chunk for chunk in column.chunks]
    bounds = [pc.min_max(chunk) for chunk in chunks if chunk.null_count < len(chunk)]
    low = min(bound["min"].as_py() for bound in bounds)
    high = max(bound["max"].as_py() for bound in bounds)
    if not temporal:
        for wire_type, bottom, top in _NARROWER:
            if wire_type.bit_width < kind.bit_width and bottom <= low and high <= top:
                return _WireColumn(column, wire_type, partial(_cast, wire_type=wire_type), restored=True)
    if high - low >= 2**63:
        return None
    scale = _step(chunks, low) if temporal else 1
    wire_type = _unsigned((high - low) // scale)
    if wire_type.bit_width >= kind.bit_width:
        return None
    if scale == 1:  # nothing to check: converted slice by slice
        return _offsets_column(column, physical, low, high - low)
    convert = partial(_offsets, low=low, scale=scale, wire_type=wire_type)
    pieces = []
    for chunk in chunks:
        piece = convert(chunk)
        if piece is None:  # the sample's step does not divide every row: offsets in the type's own unit
            return _offsets_column(column, physical, low, high - low)
        pieces.append(piece)
    return _WireColumn(column, wire_type, None, low, scale, restored=True, ready=pa.chunked_array(pieces, wire_type))


def _offsets_column(column: pa.ChunkedArray, physical: pa.DataType, low: int, span: int) -> _WireColumn | None:
    """Offsets from ``low`` in steps of 1, converted slice by slice (nothing to check), if narrower than the column."""
    wire_type = _unsigned(span)
    if wire_type.bit_width >= column.type.bit_width:
        return None
    temporal = not pa.types.is_integer(column.type)
    view = partial(_viewed, physical=physical) if temporal else None
    convert = partial(_offsets, low=low, scale=1, wire_type=wire_type)
    return _WireColumn(column, wire_type, _then(view, convert), low, 1, restored=True)


def _viewed(values: pa.Array, physical: pa.DataType) -> pa.Array:
    return values.view(physical)


def _then(first: Callable[[pa.Array], pa.Array] | None,
          second: Callable[[pa.Array], pa.Array | None]) -> Callable[[pa.Array], pa.Array]:
    def both(values: pa.Array) -> pa.Array:
        result = second(first(values) if first is not None else values)
        assert result is not None  # scale 1 divides everything
        return result

    return both


def _offsets(values: pa.Array, low: int, scale: int, wire_type: pa.DataType) -> pa.Array | None:
    """``(values - low) // scale`` as ``wire_type``, or None if ``scale`` does not divide every distance.

    numpy, block by block through small reused buffers, when there are no nulls: three
    times faster than pyarrow's kernels, and whole-column temporaries cost more in fresh
    pages than in arithmetic. int64 arithmetic wraps, so a uint64 distance below 2**63
    comes out right too.
    """
    origin = low - 2**64 if low >= 2**63 else low
    if values.null_count:
        offsets = pc.subtract(values.cast(pa.int64(), safe=False), pa.scalar(origin, pa.int64()))
        step = pa.scalar(scale, pa.int64())
        steps = pc.divide(offsets, step) if scale > 1 else offsets
        if scale > 1 and not pc.all(pc.equal(pc.multiply(steps, step), offsets)).as_py():
            return None
        return steps.cast(wire_type, safe=False)
    raw = values.to_numpy(zero_copy_only=True)
    out = np.empty(len(raw), wire_type.to_pandas_dtype())
    block = min(len(raw), _BLOCK)
    distance, steps_buffer = np.empty(block, np.int64), np.empty(block, np.int64)
    for start in range(0, len(raw), _BLOCK):
        part = raw[start:start + _BLOCK]
        size = len(part)
        np.subtract(part.view(np.int64) if part.itemsize == 8 else part, origin, out=distance[:size],
                    casting="unsafe")
        if scale == 1:
            out[start:start + size] = distance[:size]
            continue
        np.floor_divide(distance[:size], scale, out=steps_buffer[:size])
        out[start:start + size] = steps_buffer[:size]
        np.multiply(steps_buffer[:size], scale, out=steps_buffer[:size])
        if not np.array_equal(steps_buffer[:size], distance[:size]):
            return None
    return pa.array(out)


def _cast(values: pa.Array, wire_type: pa.DataType) -> pa.Array:
    """A cast known to fit (bounds checked): numpy's when there are no nulls, three times faster than pyarrow's."""
    if values.type == wire_type:
        return values
    if values.null_count == 0:
        return pa.array(values.to_numpy(zero_copy_only=True).astype(wire_type.to_pandas_dtype()))
    return values.cast(wire_type, safe=False)


def _step(chunks: list[pa.Array], low: int) -> int:
    """The largest step dividing the distance from ``low`` of a sample's values (checked on every row by the caller)."""
    sample = next(chunk for chunk in chunks if chunk.null_count < len(chunk))
    distances = sample.slice(0, 4096).drop_null().to_numpy(zero_copy_only=False).astype(np.int64) - np.int64(low)
    return max(int(np.gcd.reduce(distances)), 1)


class _Collector:
    """A write-only file the IPC writer fills; ``take`` hands over what was written since the last call.

    The writer hands body buffers over as ``pyarrow.Buffer`` objects that own their memory,
    so they are kept as they are and copied once, when joined.
    """

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes | pa.Buffer] = []

    def write(self, data: bytes | pa.Buffer) -> int:
        part = data if isinstance(data, bytes | pa.Buffer) else bytes(data)
        self._parts.append(part)
        return len(part) if isinstance(part, bytes) else int(part.size)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
