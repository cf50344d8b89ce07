"""A Pythonic builder for the sandbox query language (``marketplace.sandbox.query``).

    sy.query("Bus ridership").group_by("district").where("is_weekend", "==", False) \\
      .agg(count=..., boardings=("sum", "boardings")).order_by("boardings", desc=True).limit(10).collect()

The builder only assembles the JSON the API accepts; it never decides what is allowed
(the server's policy does, and says why through ``PolicyViolation``). Builders are
immutable: every method returns a new one, so a base query can be refined in several
directions in a notebook without surprises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from marketplace.client.errors import InvalidQuery

if TYPE_CHECKING:
    from marketplace.client.session import Client, QueryResult

AGG_FUNCTIONS = ("count", "count_distinct", "sum", "mean", "min", "max", "quantile")
#: Python spellings accepted by ``where`` besides the query language's own names.
OPS = {
    "==": "eq", "=": "eq", "eq": "eq", "!=": "ne", "ne": "ne", ">": "gt", "gt": "gt", ">=": "gte", "gte": "gte",
    "<": "lt", "lt": "lt", "<=": "lte", "lte": "lte", "in": "in", "between": "between",
}


@dataclass(frozen=True)
class Agg:
    """One aggregate: ``fn(column)`` named ``alias`` (``q`` for quantiles)."""

    fn: str
    column: str | None = None
    alias: str | None = None
    q: float | None = None

    def named(self, alias: str) -> Agg:
        return dataclasses.replace(self, alias=alias)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fn": self.fn}
        if self.column is not None:
            out["column"] = self.column
        if self.alias is not None:
            out["alias"] = self.alias
        if self.q is not None:
            out["q"] = self.q
        return out


def _value(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(v) for v in value]
    return value


def _agg_from(alias: str, spec: object) -> list[Agg]:
    """Read one keyword of ``agg``: a function name (``mean="kwh"``) or an alias (``avg=("mean", "kwh")``)."""
    if alias in AGG_FUNCTIONS:
        fn = alias
        if fn == "count":
            if spec not in (True, None, ...):
                raise InvalidQuery(f"agg(count=...): count takes no column, got {spec!r}; use count_distinct",
                                   field="aggregates", code="invalid_query")
            return [Agg("count")]
        if fn == "quantile":
            items = [spec] if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[1], str) else spec
            if not isinstance(items, list | tuple):
                raise InvalidQuery("agg(quantile=(column, q)) needs a column and a q between 0 and 1",
                                   field="aggregates", code="invalid_query")
            return [Agg("quantile", str(c), None, float(q)) for c, q in items]
        columns = [spec] if isinstance(spec, str) else spec
        if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
            raise InvalidQuery(f"agg({fn}=...) needs a column name or a list of them, got {spec!r}",
                               field="aggregates", code="invalid_query")
        return [Agg(fn, c) for c in columns]
    if isinstance(spec, Agg):
        return [spec.named(alias)]
    if spec == "count" or spec == ("count",):
        return [Agg("count", None, alias)]
    if isinstance(spec, tuple) and 2 <= len(spec) <= 3 and spec[0] in AGG_FUNCTIONS:
        q = float(spec[2]) if len(spec) == 3 else None
        return [Agg(str(spec[0]), str(spec[1]), alias, q)]
    raise InvalidQuery(
        f"agg({alias}=...): give a function name as the keyword (mean='col') or a (function, column) pair "
        f"(e.g. {alias}=('mean', 'col')); got {spec!r}", field="aggregates", code="invalid_query",
    )


@dataclass(frozen=True)
class QueryBuilder:
    """An immutable sandbox query on one product of the unit's entitlements."""

    client: Client = field(repr=False, compare=False)
    product_id: str
    subscription_id: str | None = None
    mode: str = "aggregate"
    dimensions: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    filters: tuple[tuple[str, str, Any], ...] = ()
    aggregates: tuple[Agg, ...] = ()
    ordering: tuple[tuple[str, bool], ...] = ()
    row_limit: int | None = None

    def group_by(self, *columns: str) -> QueryBuilder:
        return dataclasses.replace(self, dimensions=self.dimensions + tuple(columns))

    def select(self, *columns: str) -> QueryBuilder:
        """Row-level output (only products whose policy allows rows: open, low-grade data)."""
        return dataclasses.replace(self, mode="rows", columns=self.columns + tuple(columns))

    def where(self, column: str, op: str, value: object) -> QueryBuilder:
        name = OPS.get(op.strip().lower()) if isinstance(op, str) else None
        if name is None:
            raise InvalidQuery(f"where(): unknown operator {op!r}; use one of {', '.join(OPS)}",
                               field="filters", code="invalid_query")
        return dataclasses.replace(self, filters=(*self.filters, (column, name, _value(value))))

    def agg(self, *aggs: Agg, **named: object) -> QueryBuilder:
        """Aggregates: ``agg(count=..., mean="kwh", total=("sum", "kwh"), p90=("quantile", "kwh", 0.9))``."""
        new = list(aggs)
        for alias, spec in named.items():
            new.extend(_agg_from(alias, spec))
        return dataclasses.replace(self, aggregates=self.aggregates + tuple(new))

    def order_by(self, column: str, *, desc: bool = False) -> QueryBuilder:
        return dataclasses.replace(self, ordering=(*self.ordering, (column, desc)))

    def limit(self, n: int) -> QueryBuilder:
        return dataclasses.replace(self, row_limit=n)

    def using(self, subscription_id: str) -> QueryBuilder:
        """Name the subscription when several of the unit's cover this product."""
        return dataclasses.replace(self, subscription_id=subscription_id)

    def to_dict(self) -> dict[str, Any]:
        """The sandbox query language JSON this builder stands for."""
        query: dict[str, Any] = {"mode": self.mode}
        if self.dimensions:
            query["dimensions"] = list(self.dimensions)
        if self.columns:
            query["columns"] = list(self.columns)
        if self.filters:
            query["filters"] = [{"column": c, "op": op, "value": v} for c, op, v in self.filters]
        if self.aggregates:
            query["aggregates"] = [a.to_dict() for a in self.aggregates]
        if self.ordering:
            query["order_by"] = [{"column": c, "desc": d} for c, d in self.ordering]
        if self.row_limit is not None:
            query["limit"] = self.row_limit
        return query

    def run(self) -> QueryResult:
        """Send the query; the result frame with what the platform recorded about it (metered)."""
        return self.client.run_query(self.product_id, self.to_dict(), subscription_id=self.subscription_id)

    def collect(self) -> pl.DataFrame:
        """Send the query and return the result as a Polars DataFrame (Arrow over HTTP)."""
        return self.run().frame

    def explain(self) -> Mapping[str, Any]:
        return self.to_dict()
