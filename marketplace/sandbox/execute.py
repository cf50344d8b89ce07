"""Run a validated query on a product version: Polars does the work, the controls guard the output.

One lazy plan, collected once: filter, group by the dimensions, compute the requested
aggregates *plus* the size of every group (always, whether asked for or not), and put
the groups in canonical order. A version held in memory (a ``DataFrame``) runs on the
in-memory engine; a lazy scan of a large file on the streaming engine. Everything after
that works on the small grouped result, column by column (each ``DataFrame`` operation
costs a plan of its own, which on a small result is most of the query's time):

* **k suppression** — groups smaller than the policy's k are dropped; how many were
  dropped is reported, never their values (under differential privacy even that count
  is data, so it is not reported).
* **tiny filters** — a filtered query whose matching rows number fewer than k is
  refused, and so is one that leaves out fewer than k rows of the product (given the
  version's row count): "everyone but one person" is the classic restoration query.
* **differencing** (two queries that differ by one small group) — the chosen defence is
  *noise*, not complementary suppression: general_3 results (and aggregate-only
  general_1/2 products with personal fields) carry a discrete Laplace perturbation on
  counts, distinct counts and clamped sums, general_4 results carry differential-privacy
  noise calibrated by OpenDP. The difference of two noisy answers is the small group
  plus the difference of two independent noises, so it does not reveal the group.
  Complementary suppression was rejected: it protects one table against its own
  margins, but an analyst can ask for any other table, and auditing all of them is
  intractable, while noise composes.
* **averaging** — the noise is drawn from a generator seeded by
  HMAC(secret, subscription, product version, the query's groups, the statistic), so the
  same question gets the same answer however often it is asked and however its
  aliases, aggregate order, ordering or limit are rewritten. Under differential privacy
  every *distinct* query also spends budget, which bounds what rewriting can average.
* **watermark** — every released number carries the subscription's mark
  (``marketplace.sandbox.watermark``).

Results may be reused (``GroupedCache``, through ``VersionData``): a version's rows never
change (it is named by its content hash), and the grouped result — group sizes and
aggregates before any output control — is a pure function of those rows and of what the
query groups, filters and aggregates; what the controls release from it is in turn a
pure function of the groups, the query, the subscription, the version and the secret
(the averaging defence demands exactly that: the same answer to the same question). A
refusal is never kept, and the budget check runs on every query.

The output never contains a column the policy hides, and in aggregate mode every
released row stands for at least k rows of the product (general_3: 10), so no raw row of
an aggregate-only product can ever appear in a response.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from polars._typing import EngineType

from domain.errors import DomainError
from marketplace.sandbox.policy import (
    Noise,
    Policy,
    PolicyViolation,
    TypedFilter,
    ValidatedQuery,
    validate,
)
from marketplace.sandbox.privacy import Measure, discrete_laplace, keyed_rng
from marketplace.sandbox.query import AggFn, FilterOp, Mode, Query, parse, parse_json
from marketplace.sandbox.watermark import mark_frame, mark_key, mark_series, watermark_id

_N = "__n"
_IN_MEMORY: EngineType = "in-memory"
_STREAMING: EngineType = "streaming"


@dataclass(frozen=True)
class QueryContext:
    """Who asks, about which version, with which keys and what budget is left.

    ``secret`` is the platform's sandbox secret (noise seeds and watermarks derive from
    it); ``budget_remaining`` is the subscription's unspent epsilon, required when the
    product is differentially private; ``row_count`` is the version's row count (from its
    registration event), used by the tiny-filter defence.
    """

    subscription_id: str
    version: str
    secret: bytes
    budget_remaining: float | None = None
    row_count: int | None = None


#: What a released aggregate query is: the frame, the number of groups suppressed, whether truncated.
Release = tuple[pl.DataFrame, int | None, bool]


class GroupedCache:
    """Grouped and released results of product versions, least recently used out first, bounded in bytes.

    Why: grouping a version's rows is most of a query's cost, and dashboards and
    notebooks ask the same few questions over and over. Grouped keys name the version's
    content hash and the grouping plan exactly (``_plan``), so a new version or a
    different filter can never be answered from another's groups.

    A *release* (what the output controls made of the groups for one subscription) is a
    pure function of the groups, the validated query, the subscription, the version and
    the platform secret: the noise is seeded by them, the watermark keyed by them. The
    averaging defence already requires that a repeated question gets the very same
    answer, so the release is kept too, under a key of all of those (the validated query
    by identity, held by the entry so that its id is not reused). A refusal (the
    tiny-filter defence) is never kept, and what must happen on every query still does:
    the budget check before, and in the API the live checks and the metering.

    Shared by threads: the frames are never modified (Polars frames are immutable; the
    controls build new columns).
    """

    def __init__(self, max_bytes: int = 64 * 2**20, *, max_entry_bytes: int = 4 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.release_hits = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str]) -> pl.DataFrame | None:
        """The grouped result under ``key`` (content hash, plan), if kept."""
        found: pl.DataFrame | None = self._get(key)
        with self._lock:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def put(self, key: tuple[str, str], frame: pl.DataFrame) -> None:
        self._put(key, frame, int(frame.estimated_size()) + len(key[1]))

    def get_release(self, key: Hashable, validated: ValidatedQuery) -> Release | None:
        """The release kept under ``key`` for this very ``validated`` query, if any."""
        found = self._get(key)
        if found is None or found[0] is not validated:
            return None
        with self._lock:
            self.release_hits += 1
        release: Release = found[1]
        return release

    def put_release(self, key: Hashable, validated: ValidatedQuery, release: Release) -> None:
        self._put(key, (validated, release), int(release[0].estimated_size()) + 256)

    def _get(self, key: Hashable) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def _put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_entry_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._items[key] = (value, size)
            self.used += size
            while self.used > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.used -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0


@dataclass(frozen=True, eq=False)
class VersionData:
    """A product version's rows (in memory or a lazy scan), named by their content hash.

    With a ``cache``, grouped results of this version are kept there and reused; the
    content hash in every key keeps versions apart. The schema is read once.
    """

    frame: pl.DataFrame | pl.LazyFrame
    content_hash: str
    cache: GroupedCache | None = None
    schema: pl.Schema = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frame = self.frame
        schema = frame.schema if isinstance(frame, pl.DataFrame) else frame.collect_schema()
        object.__setattr__(self, "schema", schema)


@dataclass(frozen=True)
class QueryResult:
    """The released frame and what the usage ledger needs to record about it."""

    frame: pl.DataFrame
    rows_out: int
    groups_suppressed: int | None
    truncated: bool
    epsilon_spent: float
    delta_spent: float
    budget_remaining: float | None
    watermark_id: str
    fingerprint: str
    noise: str
    #: Row-level results of a version in memory: which of its rows were released, in order
    #: (a ``range`` when they are its first rows). The API takes the wire form of those
    #: columns that are the version's own values from what it prepared for the version
    #: (``marketplace.api.wire.VersionWire``). None otherwise.
    source_rows: range | pl.Series | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "rows_out": self.rows_out,
            "groups_suppressed": self.groups_suppressed,
            "truncated": self.truncated,
            "epsilon_spent": self.epsilon_spent,
            "delta_spent": self.delta_spent,
            "budget_remaining": self.budget_remaining,
            "watermark_id": self.watermark_id,
            "fingerprint": self.fingerprint,
            "noise": self.noise,
        }


def run_query(
    query: Query | dict[str, Any] | str | bytes,
    policy: Policy,
    frame: pl.LazyFrame | pl.DataFrame | VersionData,
    context: QueryContext,
) -> QueryResult:
    """Parse (if needed), validate and execute: the one call an API endpoint makes."""
    if isinstance(query, str | bytes):
        parsed = parse_json(query)
    elif isinstance(query, Query):
        parsed = query
    else:
        parsed = parse(query)
    return execute(validate(parsed, policy), frame, context)


def execute(
    validated: ValidatedQuery, frame: pl.LazyFrame | pl.DataFrame | VersionData, context: QueryContext
) -> QueryResult:
    """Run ``validated`` on ``frame`` and apply every output control of the policy.

    ``frame`` is the product version: a ``DataFrame`` when it is held in memory (run on
    Polars' in-memory engine, which on a small frame costs less than starting the
    streaming engine), a ``LazyFrame`` scan (streaming engine, bounded memory), or either
    inside a ``VersionData`` whose cache may already hold this query's groups.
    """
    remaining = _check_budget(validated, context)
    cache: tuple[GroupedCache, str] | None = None
    if isinstance(frame, VersionData):
        if frame.cache is not None:
            cache = (frame.cache, frame.content_hash)
        schema = frame.schema
        frame = frame.frame
    else:
        schema = frame.schema if isinstance(frame, pl.DataFrame) else frame.collect_schema()
    _check_schema(validated, schema)
    source_rows: range | pl.Series | None = None
    if validated.query.mode is Mode.ROWS:
        released, truncated, source_rows = _rows(validated, frame, schema, context)
        suppressed: int | None = 0
    else:
        release_key = None if cache is None else _release_key(cache[1], validated, context)
        release = None if cache is None else cache[0].get_release(release_key, validated)
        if release is None:
            grouped = _grouped(validated, frame, schema, cache)
            release = _aggregate(validated, grouped, schema, context)  # raises on a refusal: nothing kept
            if cache is not None:
                cache[0].put_release(release_key, validated, release)
        released, suppressed, truncated = release
    return QueryResult(
        frame=released,
        rows_out=released.height,
        groups_suppressed=suppressed,
        truncated=truncated,
        epsilon_spent=validated.epsilon,
        delta_spent=validated.delta,
        budget_remaining=remaining,
        watermark_id=watermark_id(context.secret, context.subscription_id),
        fingerprint=validated.fingerprint,
        noise=validated.policy.noise.value,
        source_rows=source_rows,
    )


def _check_budget(validated: ValidatedQuery, context: QueryContext) -> float | None:
    if validated.policy.dp is None:
        return context.budget_remaining
    if context.budget_remaining is None:
        raise ValueError("a differentially private product needs the subscription's remaining budget")
    if validated.epsilon > context.budget_remaining + 1e-12:
        raise BudgetExhausted(needed=validated.epsilon, remaining=context.budget_remaining)
    return max(0.0, context.budget_remaining - validated.epsilon)


def _check_schema(validated: ValidatedQuery, schema: pl.Schema) -> None:
    query = validated.query
    used = set(query.dimensions) | set(query.columns) | {f.column for f in validated.filters}
    used |= {a.column for a in query.aggregates if a.column is not None}
    missing = sorted(used - set(schema.names()))
    if missing:
        raise SchemaMismatch(missing[0])


# --- filters -----------------------------------------------------------------------------


def _literal(value: Any, dtype: pl.DataType) -> pl.Expr:
    """A filter value as a literal of the column's type (time zones reconciled).

    Always ``pl.lit``: several Polars methods read a bare string as a column name, and a
    user's filter value must never name a column (it could name a personal one).
    """
    if isinstance(value, datetime) and isinstance(dtype, pl.Datetime):
        # validated moments are UTC without a zone (see policy._typed)
        if dtype.time_zone is None:
            return pl.lit(value).cast(dtype)
        return pl.lit(value.replace(tzinfo=UTC)).dt.convert_time_zone(dtype.time_zone).cast(dtype)
    return pl.lit(value)


def _predicate(filters: tuple[TypedFilter, ...], schema: pl.Schema) -> pl.Expr | None:
    exprs: list[pl.Expr] = []
    for f in filters:
        col = pl.col(f.column)
        dtype = schema[f.column]
        if f.op is FilterOp.IN:
            if isinstance(dtype, pl.Datetime):
                exprs.append(pl.any_horizontal([col == _literal(v, dtype) for v in f.value]))
            else:
                exprs.append(col.is_in(pl.Series(list(f.value)).implode()))
        elif f.op is FilterOp.BETWEEN:
            lo, hi = f.value
            exprs.append(col.is_between(_literal(lo, dtype), _literal(hi, dtype), closed="both"))
        else:
            lit = _literal(f.value, dtype)
            exprs.append({
                FilterOp.EQ: col == lit, FilterOp.NE: col != lit, FilterOp.GT: col > lit,
                FilterOp.GTE: col >= lit, FilterOp.LT: col < lit, FilterOp.LTE: col <= lit,
            }[f.op])
    if not exprs:
        return None
    return pl.all_horizontal(exprs) if len(exprs) > 1 else exprs[0]


# --- rows --------------------------------------------------------------------------------


#: The row number a row-level query on a version in memory carries along, to say which rows it released.
_SOURCE_ROW = "__shuyun_source_row__"


def _rows(
    validated: ValidatedQuery, frame: pl.DataFrame | pl.LazyFrame, schema: pl.Schema, context: QueryContext
) -> tuple[pl.DataFrame, bool, range | pl.Series | None]:
    """The released rows, whether the limit cut them, and which rows of an in-memory version they are.

    Unfiltered and unordered, they are the version's first rows; else each carries its
    row number (``_SOURCE_ROW``) through the plan.
    """
    query = validated.query
    lazy, engine = _lazy(frame)
    predicate = _predicate(validated.filters, schema)
    in_memory = isinstance(frame, pl.DataFrame)
    first_rows = predicate is None and not query.order_by
    numbered = in_memory and not first_rows and _SOURCE_ROW not in schema
    if numbered:
        lazy = lazy.with_row_index(_SOURCE_ROW)
    plan = lazy if predicate is None else lazy.filter(predicate)
    plan = plan.select([*query.columns, *([_SOURCE_ROW] if numbered else [])])
    if query.order_by:
        plan = plan.sort(
            [o.column for o in query.order_by], descending=[o.desc for o in query.order_by],
            nulls_last=True, maintain_order=True,
        )
    limit = validated.limit
    rows = plan.head(limit + 1).collect(engine=engine)
    truncated = rows.height > limit
    rows = rows.head(limit)
    source: range | pl.Series | None = None
    if numbered:
        source = rows.get_column(_SOURCE_ROW)
        rows = rows.drop(_SOURCE_ROW)
    elif in_memory and first_rows:
        source = range(rows.height)
    floats = [c for c in rows.columns if rows.schema[c].is_float()]
    return mark_frame(rows, mark_key(context.secret, context.subscription_id), floats), truncated, source


# --- aggregates --------------------------------------------------------------------------


def _measure_expr(m: Measure, schema: pl.Schema) -> pl.Expr:
    name = f"__{m.name}"
    assert m.column is not None
    col = pl.col(m.column)
    if m.name.startswith("sum:"):
        assert m.clamp is not None
        lo, hi = m.clamp
        if m.integral and schema[m.column].is_integer():
            return col.clip(int(lo), int(hi)).sum().cast(pl.Int64).alias(name)
        return col.cast(pl.Float64).clip(lo, hi).sum().alias(name)
    if m.name.startswith("nn:"):
        return col.count().cast(pl.Int64).alias(name)
    return col.drop_nulls().n_unique().cast(pl.Int64).alias(name)


def _exact_expr(fn: AggFn, column: str, q: float | None, alias: str) -> pl.Expr:
    col = pl.col(column)
    if fn is AggFn.COUNT_DISTINCT:
        return col.drop_nulls().n_unique().cast(pl.Int64).alias(alias)
    if fn is AggFn.SUM:
        return col.sum().alias(alias)
    if fn is AggFn.MEAN:
        return col.mean().alias(alias)
    if fn is AggFn.MIN:
        return col.min().alias(alias)
    if fn is AggFn.MAX:
        return col.max().alias(alias)
    assert fn is AggFn.QUANTILE and q is not None
    return col.quantile(q, interpolation="linear").alias(alias)


def _aggregate(
    validated: ValidatedQuery, grouped: pl.DataFrame, schema: pl.Schema, context: QueryContext
) -> tuple[pl.DataFrame, int | None, bool]:
    """The output controls, on the grouped result (``_grouped``), which they never modify."""
    query, policy = validated.query, validated.policy
    noisy = policy.noise is not Noise.NONE
    measures = {m.name: m for m in validated.measures}
    dims = list(query.dimensions)
    sizes = grouped.get_column(_N).to_numpy().astype(np.int64)
    noise = {
        m.name: discrete_laplace(
            keyed_rng(context.secret, "shuyun/sandbox/noise", context.subscription_id, context.version,
                      validated.noise_basis, m.name, repr(m.scale)),
            m.scale, grouped.height,
        )
        for m in validated.measures
    }
    k = policy.min_group_size
    suppressed: int | None
    if policy.noise is Noise.DIFFERENTIAL_PRIVACY:
        noisy_sizes = sizes + noise["n"]
        keep = (sizes > 0) & (noisy_sizes >= validated.threshold)
        suppressed = None
    else:
        _tiny_filter_defence(validated, sizes, context)
        # with k = 1 (open data) an empty total is an answer too: "none match"
        keep = sizes >= k if dims or k > 1 else np.ones(len(sizes), dtype=bool)
        suppressed = len(keep) - int(np.count_nonzero(keep))
        noisy_sizes = sizes + noise["n"] if "n" in noise else sizes

    columns: dict[str, pl.Series] = {d: grouped.get_column(d) for d in dims}
    marked: set[str] = set()
    for i, agg in enumerate(query.aggregates):
        alias = agg.alias
        if agg.fn is AggFn.COUNT and not noisy:
            columns[alias] = grouped.get_column(_N).alias(alias)  # exact sizes: Int64, never negative
        elif agg.fn is AggFn.COUNT:
            columns[alias] = pl.Series(alias, np.maximum(noisy_sizes, 0), dtype=pl.Int64)
            marked.add(alias)
        elif noisy and agg.fn is AggFn.COUNT_DISTINCT:
            name = f"distinct:{agg.column}"
            true = grouped.get_column(f"__{name}").to_numpy().astype(np.int64)
            columns[alias] = pl.Series(alias, np.maximum(true + noise[name], 0), dtype=pl.Int64)
            marked.add(alias)
        elif noisy and agg.fn in (AggFn.SUM, AggFn.MEAN):
            columns[alias] = _noisy_sum_or_mean(agg.fn, str(agg.column), alias, grouped, measures, noise)
            marked.add(alias)
        else:
            columns[alias] = grouped.get_column(f"__a{i}").alias(alias)
            if columns[alias].dtype.is_float():
                marked.add(alias)
    # Suppress, then mark: marking is value by value, so marking only the released
    # groups gives the same numbers as marking all and dropping some.
    mask = None if bool(keep.all()) else pl.Series(keep)
    key = mark_key(context.secret, context.subscription_id) if marked else b""
    released_columns = []
    for alias, series in columns.items():
        if mask is not None:
            series = series.filter(mask)
        released_columns.append(mark_series(series, key) if alias in marked else series)
    # ``hstack`` on the first column's frame: the same frame as ``pl.DataFrame(columns)`` (the names
    # are unique: the parser refuses an alias that repeats a name), without its argument parsing.
    released = _order(released_columns[0].to_frame().hstack(released_columns[1:]), query, schema)
    limit = validated.limit
    truncated = released.height > limit
    return released.head(limit), suppressed, truncated


def _release_key(content_hash: str, validated: ValidatedQuery, context: QueryContext) -> Hashable:
    """Everything a release depends on besides the groups (named by the content hash):
    the validated query (by identity), who asks, the version, the secret, the row count."""
    return ("released", content_hash, id(validated), context.subscription_id, context.version, context.secret,
            context.row_count)


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> tuple[pl.LazyFrame, EngineType]:
    """The plan's start, and the engine to collect it on (in memory for a frame in memory)."""
    if isinstance(frame, pl.DataFrame):
        return frame.lazy(), _IN_MEMORY
    return frame, _STREAMING


def _grouped(
    validated: ValidatedQuery, frame: pl.DataFrame | pl.LazyFrame, schema: pl.Schema,
    cache: tuple[GroupedCache, str] | None = None,
) -> pl.DataFrame:
    """Filter, group and aggregate in one plan: group sizes as ``__n``, measures and exact
    aggregates as ``__<measure>`` and ``__a<i>``, groups in canonical order.

    The canonical order (dimension values as text, dimensions by name) makes the noise
    draws depend neither on the engine's group order nor on how the query lists its
    dimensions.
    """
    parts = _plan(validated)
    if cache is not None:
        key = (cache[1], _plan_key(validated, parts))
        found = cache[0].get(key)
        if found is not None:
            return found
    exprs = [pl.len().cast(pl.Int64).alias(_N)] + [_part_expr(part, schema) for part in parts]
    lazy, engine = _lazy(frame)
    predicate = _predicate(validated.filters, schema)
    plan = lazy if predicate is None else lazy.filter(predicate)
    dims = list(validated.query.dimensions)
    if dims:
        plan = plan.group_by(dims).agg(exprs).sort(
            [pl.col(d).cast(pl.String) for d in sorted(dims)], nulls_last=True, maintain_order=True
        )
    else:
        plan = plan.select(exprs)
    grouped = plan.collect(engine=engine)
    if cache is not None:
        cache[0].put(key, grouped)
    return grouped


def _plan(validated: ValidatedQuery) -> list[Measure | tuple[int, AggFn, str, float | None]]:
    """What ``_grouped`` computes besides the group sizes: the noisy measures' true values,
    then the exact aggregates (index in the query, function, column, quantile)."""
    query = validated.query
    noisy = validated.policy.noise is not Noise.NONE
    parts: list[Measure | tuple[int, AggFn, str, float | None]] = [m for m in validated.measures if m.name != "n"]
    for i, agg in enumerate(query.aggregates):
        if agg.fn is AggFn.COUNT:
            continue
        assert agg.column is not None
        if noisy and agg.fn in (AggFn.COUNT_DISTINCT, AggFn.SUM, AggFn.MEAN):
            continue  # released from the noisy measures
        parts.append((i, agg.fn, agg.column, agg.q))
    return parts


def _part_expr(part: Measure | tuple[int, AggFn, str, float | None], schema: pl.Schema) -> pl.Expr:
    if isinstance(part, Measure):
        return _measure_expr(part, schema)
    i, fn, column, q = part
    return _exact_expr(fn, column, q, f"__a{i}")


def _plan_key(validated: ValidatedQuery, parts: list[Measure | tuple[int, AggFn, str, float | None]]) -> str:
    """A key naming exactly what ``_grouped`` computes on a version (for ``GroupedCache``).

    The ``repr`` of plain values — dimension names in query order, each filter's column,
    operator, typed value and type, each measure (name, column, clamp, grid unit: all its
    expression is built from) and exact aggregate — which tells ``1``, ``1.0`` and
    ``True`` apart where equality would not.
    """
    filters = tuple((f.column, f.op.value, f.value, f.dtype) for f in validated.filters)
    computed = tuple(
        ("m", p.name, p.column, p.clamp, p.unit) if isinstance(p, Measure) else ("a", p[0], p[1].value, p[2], p[3])
        for p in parts
    )
    return repr(("grouped/1", validated.query.dimensions, filters, computed))


def _noisy_sum_or_mean(
    fn: AggFn, column: str, alias: str, grouped: pl.DataFrame, measures: dict[str, Measure],
    noise: dict[str, np.ndarray],
) -> pl.Series:
    sum_name = f"sum:{column}"
    m = measures[sum_name]
    true_sum = grouped[f"__{sum_name}"].fill_null(0).to_numpy().astype(np.float64)
    steps = np.rint(true_sum / m.unit).astype(np.int64) + noise[sum_name]
    if fn is AggFn.SUM:
        if m.integral:
            return pl.Series(alias, steps, dtype=pl.Int64)
        return pl.Series(alias, steps.astype(np.float64) * m.unit, dtype=pl.Float64)
    nn_name = f"nn:{column}"
    counts = grouped[f"__{nn_name}"].to_numpy().astype(np.int64) + noise[nn_name]
    assert m.clamp is not None
    means = (steps.astype(np.float64) * m.unit) / np.maximum(counts, 1)
    return pl.Series(alias, np.clip(means, m.clamp[0], m.clamp[1]), dtype=pl.Float64)


def _tiny_filter_defence(validated: ValidatedQuery, sizes: np.ndarray, context: QueryContext) -> None:
    """Refuse filters that single out fewer than k rows, or all but fewer than k rows."""
    k = validated.policy.min_group_size
    if not validated.filters or k <= 1:
        return
    matching = int(sizes.sum())
    if matching < k:
        raise PolicyViolation(
            "min_population", "",
            f"the filters match fewer than {k} rows; such a narrow query is refused (art. 22)",
        )
    if context.row_count is not None:
        left_out = context.row_count - matching
        if 0 < left_out < k:
            raise PolicyViolation(
                "min_excluded_population", "",
                f"the filters leave out fewer than {k} rows; compared with the unfiltered answer "
                "that would reveal them, so the query is refused (art. 22)",
            )


def _order(frame: pl.DataFrame, query: Query, schema: pl.Schema) -> pl.DataFrame:
    """The query's order, then the dimensions ascending (nulls last).

    Text dimensions listed in name order with no ``order_by`` are already in that order
    (the canonical order sorts them the same way), so the sort is skipped.
    """
    if not query.order_by and list(query.dimensions) == sorted(query.dimensions) and all(
        schema[d] == pl.String for d in query.dimensions
    ):
        return frame
    keys = [o.column for o in query.order_by]
    descending = [o.desc for o in query.order_by]
    for d in query.dimensions:
        if d not in keys:
            keys.append(d)
            descending.append(False)
    if not keys:
        return frame
    return frame.sort(keys, descending=descending, nulls_last=True, maintain_order=True)


# --- errors ------------------------------------------------------------------------------


class BudgetExhausted(DomainError):
    """The subscription's differential-privacy budget cannot pay for this query."""

    code = "privacy_budget_exhausted"
    status = 403

    def __init__(self, *, needed: float, remaining: float) -> None:
        super().__init__(
            f"this query needs epsilon {needed:.4g} but only {remaining:.4g} of the subscription's "
            "privacy budget is left",
            needed=f"{needed:.6g}", remaining=f"{remaining:.6g}",
        )
        self.needed = needed
        self.remaining = remaining


class SchemaMismatch(DomainError):
    """The product version lacks a column its policy declares: a platform fault, not the user's."""

    code = "sandbox_schema_mismatch"
    status = 500

    def __init__(self, column: str) -> None:
        super().__init__(f"the product version has no column '{column}' that its policy declares", column=column)
