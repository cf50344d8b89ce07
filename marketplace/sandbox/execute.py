"""Run a validated query on a product version: Polars does the work, the controls guard the output.

One lazy plan, collected once on Polars' streaming engine: filter, group by the
dimensions, and compute the requested aggregates *plus* the size of every group (always,
whether asked for or not). Everything after that works on the small grouped result:

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

The output never contains a column the policy hides, and in aggregate mode every
released row stands for at least k rows of the product (general_3: 10), so no raw row of
an aggregate-only product can ever appear in a response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

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
from marketplace.sandbox.watermark import mark_frame, mark_key, watermark_id

_N = "__n"


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
    query: Query | dict[str, Any] | str | bytes, policy: Policy, frame: pl.LazyFrame, context: QueryContext
) -> QueryResult:
    """Parse (if needed), validate and execute: the one call an API endpoint makes."""
    if isinstance(query, str | bytes):
        parsed = parse_json(query)
    elif isinstance(query, Query):
        parsed = query
    else:
        parsed = parse(query)
    return execute(validate(parsed, policy), frame, context)


def execute(validated: ValidatedQuery, frame: pl.LazyFrame, context: QueryContext) -> QueryResult:
    """Run ``validated`` on ``frame`` and apply every output control of the policy."""
    remaining = _check_budget(validated, context)
    schema = frame.collect_schema()
    _check_schema(validated, schema)
    predicate = _predicate(validated.filters, schema)
    if validated.query.mode is Mode.ROWS:
        released, truncated = _rows(validated, frame, predicate, context)
        suppressed: int | None = 0
    else:
        released, suppressed, truncated = _aggregate(validated, frame, schema, predicate, context)
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


def _rows(
    validated: ValidatedQuery, frame: pl.LazyFrame, predicate: pl.Expr | None, context: QueryContext
) -> tuple[pl.DataFrame, bool]:
    query = validated.query
    plan = frame if predicate is None else frame.filter(predicate)
    plan = plan.select(list(query.columns))
    if query.order_by:
        plan = plan.sort(
            [o.column for o in query.order_by], descending=[o.desc for o in query.order_by],
            nulls_last=True, maintain_order=True,
        )
    limit = validated.limit
    rows = plan.head(limit + 1).collect(engine="streaming")
    truncated = rows.height > limit
    rows = rows.head(limit)
    floats = [c for c in rows.columns if rows.schema[c].is_float()]
    return mark_frame(rows, mark_key(context.secret, context.subscription_id), floats), truncated


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
    validated: ValidatedQuery, frame: pl.LazyFrame, schema: pl.Schema, predicate: pl.Expr | None,
    context: QueryContext,
) -> tuple[pl.DataFrame, int | None, bool]:
    query, policy = validated.query, validated.policy
    noisy = policy.noise is not Noise.NONE
    measures = {m.name: m for m in validated.measures}
    exprs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias(_N)]
    exprs += [_measure_expr(m, schema) for m in validated.measures if m.name != "n"]
    for i, agg in enumerate(query.aggregates):
        if agg.fn is AggFn.COUNT:
            continue
        assert agg.column is not None
        if noisy and agg.fn in (AggFn.COUNT_DISTINCT, AggFn.SUM, AggFn.MEAN):
            continue  # released from the noisy measures
        exprs.append(_exact_expr(agg.fn, agg.column, agg.q, f"__a{i}"))
    plan = frame if predicate is None else frame.filter(predicate)
    dims = list(query.dimensions)
    plan = plan.group_by(dims).agg(exprs) if dims else plan.select(exprs)
    grouped = plan.collect(engine="streaming")

    # Canonical order (dimension values as text, dimensions by name), so noise draws
    # depend neither on the engine's group order nor on how the query lists dimensions.
    if dims:
        grouped = grouped.sort([pl.col(d).cast(pl.String) for d in sorted(dims)], nulls_last=True,
                               maintain_order=True)
    sizes = grouped[_N].to_numpy().astype(np.int64)
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
        _tiny_filter_defence(validated, int(sizes.sum()), context)
        # with k = 1 (open data) an empty total is an answer too: "none match"
        keep = sizes >= k if dims or k > 1 else np.ones(len(sizes), dtype=bool)
        suppressed = int((~keep).sum())
        noisy_sizes = sizes + noise["n"] if "n" in noise else sizes

    columns: dict[str, pl.Series] = {d: grouped[d] for d in dims}
    marked: list[str] = []
    for i, agg in enumerate(query.aggregates):
        alias = agg.alias
        if agg.fn is AggFn.COUNT:
            columns[alias] = pl.Series(alias, np.maximum(noisy_sizes, 0), dtype=pl.Int64)
            if noisy:
                marked.append(alias)
        elif noisy and agg.fn is AggFn.COUNT_DISTINCT:
            name = f"distinct:{agg.column}"
            true = grouped[f"__{name}"].to_numpy().astype(np.int64)
            columns[alias] = pl.Series(alias, np.maximum(true + noise[name], 0), dtype=pl.Int64)
            marked.append(alias)
        elif noisy and agg.fn in (AggFn.SUM, AggFn.MEAN):
            columns[alias] = _noisy_sum_or_mean(agg.fn, str(agg.column), alias, grouped, measures, noise)
            marked.append(alias)
        else:
            columns[alias] = grouped[f"__a{i}"].alias(alias)
            if columns[alias].dtype.is_float():
                marked.append(alias)
    released = pl.DataFrame(list(columns.values())).filter(pl.Series(keep))
    released = mark_frame(released, mark_key(context.secret, context.subscription_id), marked)
    released = _order(released, query)
    limit = validated.limit
    truncated = released.height > limit
    return released.head(limit), suppressed, truncated


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


def _tiny_filter_defence(validated: ValidatedQuery, matching: int, context: QueryContext) -> None:
    """Refuse filters that single out fewer than k rows, or all but fewer than k rows."""
    k = validated.policy.min_group_size
    if not validated.filters or k <= 1:
        return
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


def _order(frame: pl.DataFrame, query: Query) -> pl.DataFrame:
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
