"""The bridge from an HTTP query to the sandbox: product -> policy -> Polars -> output controls.

The sandbox (``marketplace.sandbox``) decides what a product allows and runs it; this
module only finds the inputs: the compliance-reviewed product version's Parquet file,
the product's policy (derived from its grade, delivery modes and fields), the
subscription's remaining privacy budget, and the platform's sandbox secret that seeds
noise and watermarks identically in every API process.

It also encodes released results as Arrow IPC streams (``arrow_response``). A client
that lists IPC buffer codecs in its ``Accept`` header (``application/vnd.apache.arrow.stream;
codecs="lz4"``, the convention of the Arrow project's HTTP examples) gets the body
buffers compressed with the first of them the API supports; any other client gets a plain
stream, as before. Large results are streamed as record batches, so the client decodes
one batch while the next is compressed and in flight (benchmarks/sdk_arrow.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any
from uuid import UUID

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
from starlette.responses import Response, StreamingResponse

from domain.errors import DomainError, InvalidState
from domain.licensing import Subscription
from domain.products import DataProduct
from marketplace.api.state import ApiState
from marketplace.keys import sandbox_secret
from marketplace.sandbox.execute import QueryContext
from marketplace.sandbox.execute import execute as sandbox_execute
from marketplace.sandbox.policy import Policy, policy_for, validate
from marketplace.sandbox.query import Query, parse_json

_policies: dict[tuple[UUID, int], Policy] = {}
_policies_lock = Lock()


@dataclass(frozen=True)
class QueryOutcome:
    """A released result and what the ledger and the response headers need."""

    frame: pl.DataFrame
    rows_out: int
    epsilon_spent: float
    watermark: str
    version: int
    suppressed_groups: int | None
    fields: tuple[str, ...]
    metadata: dict[str, Any]

    def meta(self) -> dict[str, Any]:
        return {**self.metadata, "product_version": self.version}


def policy_of(product: DataProduct) -> Policy:
    """The product's policy; kept per product version of the aggregate (it changes only with events)."""
    key = (product.id, product.version)
    with _policies_lock:
        policy = _policies.get(key)
    if policy is None:
        policy = policy_for(product.grade, product.delivery_modes, product.fields)
        with _policies_lock:
            _policies[key] = policy
    return policy


def describe_policy(product: DataProduct) -> dict[str, Any]:
    return policy_of(product).describe()


def execute(state: ApiState, product: DataProduct, subscription: Subscription, body: bytes) -> QueryOutcome:
    """Validate ``body`` against the product's policy and run it; refusals raise ``DomainError``s."""
    if not product.is_compliance_approved:
        raise ProductUnavailable(
            f"product {product.name!r} is {product.status.value}: only a compliance-approved version is "
            "delivered (art. 22)",
            product=product.id,
        )
    version = product.latest_version
    if version is None:
        raise ProductUnavailable(f"product {product.name!r} has no version", product=product.id)
    frame = state.data.frame(version.content_hash)
    if frame is None:
        raise ProductDataMissing(
            f"the data of version {version.number} is not in the product store", product=product.id
        )
    query = parse_json(body)
    policy = policy_of(product)
    validated = validate(query, policy)
    budget = None
    if policy.dp is not None:
        ledger = state.meter.ledger(subscription.id, state.clock())
        budget = (
            ledger.remaining(subscription.entitlements).budget if ledger else subscription.entitlements.privacy_budget
        )
    context = QueryContext(
        subscription_id=str(subscription.id),
        version=str(version.number),
        secret=_secret(state),
        budget_remaining=budget,
        row_count=version.row_count,
    )
    result = sandbox_execute(validated, frame, context)
    return QueryOutcome(
        frame=result.frame,
        rows_out=result.rows_out,
        epsilon_spent=result.epsilon_spent,
        watermark=result.watermark_id,
        version=version.number,
        suppressed_groups=result.groups_suppressed,
        fields=fields_used(query),
        metadata=result.metadata(),
    )


def fields_used(query: Query) -> tuple[str, ...]:
    """Every product field the query touches (output, grouping, filtering, aggregating): the ledger checks
    them against the subscription's scope (art. 23)."""
    names = [*query.dimensions, *query.columns, *(f.column for f in query.filters)]
    names += [a.column for a in query.aggregates if a.column is not None]
    return tuple(dict.fromkeys(names))


ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: IPC buffer codecs the API writes when a client asks for them. LZ4 frame: on a 1M-row
#: result it compresses 36 MB to 13 MB at about 1 GB/s and decodes fastest; ZSTD makes
#: it smaller (5 MB) but takes 3x as long to write and read (measured, benchmarks/sdk_arrow.py).
ARROW_CODECS = ("lz4", "zstd")
#: Record batches of about this many (uncompressed) bytes: large enough that per-batch
#: overhead vanishes, small enough that encoding, transfer and decoding overlap.
BATCH_BYTES = 4 * 2**20


def arrow_codec(accept: str) -> str | None:
    """The IPC buffer codec an ``Accept`` header asks for, or ``None`` for a plain stream.

    ``codecs`` is a parameter of the Arrow media range (``application/vnd.apache.arrow.stream;
    codecs="zstd, lz4"``); the client's first codec the API supports wins. Commas inside the
    quoted list do not split media ranges.
    """
    for media_range in _split_outside_quotes(accept, ","):
        media_type, *params = _split_outside_quotes(media_range, ";")
        if media_type.strip().lower() != ARROW_STREAM:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() != "codecs":
                continue
            for codec in value.strip().strip('"').split(","):
                if codec.strip().lower() in ARROW_CODECS:
                    return codec.strip().lower()
    return None


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


def arrow_media_type(codec: str | None) -> str:
    """``Content-Type`` of a stream: the codec is named for whoever debugs it (the stream says it too)."""
    return ARROW_STREAM if codec is None else f"{ARROW_STREAM}; codecs={codec}"


def arrow_response(frame: pl.DataFrame, accept: str, headers: Mapping[str, str]) -> Response:
    """The result as an Arrow IPC stream, compressed if ``accept`` asks for a codec.

    A result of one batch is encoded here and sent whole (with a ``Content-Length``); a
    larger one is streamed batch by batch (chunked): Starlette encodes each next batch in
    a worker thread while the previous one is on the wire and being decoded. A stream cut
    short by a failure mid-way lacks the chunked terminator, so the client sees an
    incomplete body, never a well-formed shorter result.
    """
    codec = arrow_codec(accept)
    media_type = arrow_media_type(codec)
    rows = batch_rows(frame)
    if frame.height <= rows:
        return Response(b"".join(arrow_chunks(frame, codec, rows=rows)), 200, dict(headers), media_type)
    return StreamingResponse(arrow_chunks(frame, codec, rows=rows), 200, dict(headers), media_type)


def arrow_stream(frame: pl.DataFrame, codec: str | None = None) -> bytes:
    """The whole result as one Arrow IPC stream (buffers compressed with ``codec`` if given)."""
    return b"".join(arrow_chunks(frame, codec))


def batch_rows(frame: pl.DataFrame) -> int:
    """Rows per record batch for about ``BATCH_BYTES`` of data (at least 1024)."""
    per_row = frame.estimated_size() / frame.height if frame.height else 1.0
    return max(1024, int(BATCH_BYTES / max(per_row, 1.0)))


def arrow_chunks(frame: pl.DataFrame, codec: str | None = None, *, rows: int | None = None) -> Iterator[bytes]:
    """The IPC stream of ``frame`` in pieces: the schema, then one piece per slice of ``rows`` rows, then the end.

    pyarrow writes (Polars' own IPC writer is several times slower and compresses in one
    thread; pyarrow compresses a batch's buffers in parallel). Each slice is exported to
    Arrow only when its turn comes (``to_arrow`` shares the frame's memory, but converting
    categoricals costs time), so exporting, compressing, sending and decoding overlap. A
    slice's categories travel as a dictionary batch before it (a replacement dictionary:
    allowed in streams, read by every Arrow reader, Polars' included).
    """
    rows = rows or batch_rows(frame)
    options = ipc.IpcWriteOptions(compression=codec, use_threads=True)
    sink = _Collector()
    piece = frame.slice(0, rows).to_arrow()
    writer = ipc.new_stream(pa.PythonFile(sink, mode="w"), piece.schema, options=options)
    offset = 0
    while True:
        writer.write_table(piece)
        yield sink.take()
        offset += rows
        if offset >= frame.height:
            break
        piece = frame.slice(offset, rows).to_arrow()
    writer.close()
    yield sink.take()


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


def _secret(state: ApiState) -> bytes:
    secret = state.extras.get("sandbox_secret")
    if secret is None:
        secret = sandbox_secret(state.mp.config.data_dir)
        state.extras["sandbox_secret"] = secret
    assert isinstance(secret, bytes)
    return secret


# -- errors ----------------------------------------------------------------------------------


class ProductUnavailable(InvalidState):
    """Only a compliance-approved version is delivered; a product back in review is not (art. 22)."""

    code = "product_unavailable"


class ProductDataMissing(DomainError):
    """The platform lacks the file of a registered version: an operator fault, not the user's."""

    code = "product_data_missing"
    status = 503
