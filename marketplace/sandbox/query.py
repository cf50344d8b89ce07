"""The sandbox query language: JSON in, a validated ``Query`` out — never SQL from users.

Articles 8, 22 and 23 keep raw data on the platform, so a unit never sends code, only a
small declarative request: dimensions to group by, filters on columns, aggregates, an
order and a limit (``mode: "aggregate"``), or — for open products whose delivery mode
allows it — selected columns of rows (``mode: "rows"``). The parser is strict: any
unknown key, wrong type or impossible combination is refused with a ``QueryError``
whose ``field`` is the path of the offending part (``aggregates[1].fn``), so that a
client can point at the mistake. Whether a *valid* query is *allowed* on a product is a
separate question, answered by ``marketplace.sandbox.policy.validate``.

Canonical form: ``Query.to_dict()`` fills every default (aliases included) and sorts
``in`` lists, so that ``parse(q.to_dict()) == q`` and equal requests print equal JSON;
the noise seed and the privacy-budget fingerprint are derived from it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from domain.errors import InvalidInput
from marketplace.sandbox.cache import BoundedCache

#: a JSON scalar a filter may compare with
Scalar = str | int | float | bool

MAX_DIMENSIONS = 10
MAX_FILTERS = 20
MAX_AGGREGATES = 20
MAX_COLUMNS = 200
MAX_IN_VALUES = 1000
MAX_TEXT = 1000
MAX_LIMIT = 1_000_000
#: numbers beyond 2**53 do not survive a JSON round trip through most clients
MAX_SAFE_INT = 2**53
MAX_ABS_FLOAT = 1e300

#: as the catalog's field names: a leading letter (``_`` names are the platform's own columns)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class Mode(Enum):
    AGGREGATE = "aggregate"
    ROWS = "rows"


class AggFn(Enum):
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    QUANTILE = "quantile"


class FilterOp(Enum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    BETWEEN = "between"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


ORDERING_OPS = frozenset({FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE})


@dataclass(frozen=True)
class Filter:
    """``column op value``; ``value`` is a tuple for ``in`` (sorted, unique) and ``between`` (lo, hi)."""

    column: str
    op: FilterOp
    value: Scalar | tuple[Scalar, ...]

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"column": self.column, "op": self.op.value, "value": value}


@dataclass(frozen=True)
class Aggregate:
    """One output value per group: ``fn(column)`` named ``alias``; ``q`` only for quantiles."""

    fn: AggFn
    column: str | None
    alias: str
    q: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fn": self.fn.value, "column": self.column, "alias": self.alias, "q": self.q}


@dataclass(frozen=True)
class OrderBy:
    column: str
    desc: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "desc": self.desc}


@dataclass(frozen=True)
class Query:
    """A parsed, well-formed sandbox query (not yet checked against any product's policy)."""

    mode: Mode
    dimensions: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Names of the result's columns, in order."""
        if self.mode is Mode.ROWS:
            return self.columns
        return self.dimensions + tuple(a.alias for a in self.aggregates)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: every default filled in, ``parse`` of it gives this query back."""
        return {
            "mode": self.mode.value,
            "dimensions": list(self.dimensions),
            "columns": list(self.columns),
            "filters": [f.to_dict() for f in self.filters],
            "aggregates": [a.to_dict() for a in self.aggregates],
            "order_by": [o.to_dict() for o in self.order_by],
            "limit": self.limit,
        }

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())


def canonical_json(data: object) -> str:
    """Sorted keys, no spaces, UTF-8 text: one spelling per value (for hashing and seeds)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


#: Texts up to this length are remembered with their parsed query (``_PARSED``).
PARSE_CACHE_TEXT = 4096
#: Queries parsed from JSON, by their exact text (a ``Query`` is immutable, so one can be
#: shared); the key is the text itself, so only the very same characters hit.
_PARSED: BoundedCache[str | bytes, Query] = BoundedCache(1024)


def parse_json(text: str | bytes) -> Query:
    """Parse a query sent as JSON text; malformed JSON is a ``QueryError`` too."""
    cacheable = isinstance(text, str | bytes) and len(text) <= PARSE_CACHE_TEXT
    if cacheable:
        found = _PARSED.get(text)
        if found is not None:
            return found
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise QueryError("query", f"is not valid JSON ({exc})") from None
    query = parse(data)
    if cacheable:
        _PARSED.put(text, query)
    return query


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


_TOP_KEYS = ("mode", "dimensions", "columns", "filters", "aggregates", "order_by", "limit")


def parse(data: object) -> Query:
    """Turn a JSON-like value into a ``Query`` or raise ``QueryError`` naming the offending path."""
    obj = _object("query", data, _TOP_KEYS)
    mode = _enum("mode", Mode, obj.get("mode", Mode.AGGREGATE.value))
    dimensions = _names("dimensions", obj.get("dimensions", []), MAX_DIMENSIONS)
    columns = _names("columns", obj.get("columns", []), MAX_COLUMNS)
    filters = tuple(
        _filter(f"filters[{i}]", item)
        for i, item in enumerate(_list("filters", obj.get("filters", []), MAX_FILTERS))
    )
    raw_aggs = _list("aggregates", obj.get("aggregates", []), MAX_AGGREGATES)
    aggregates = tuple(_aggregate(f"aggregates[{i}]", item) for i, item in enumerate(raw_aggs))
    if mode is Mode.AGGREGATE:
        if columns:
            raise QueryError("columns", "only for mode 'rows'; group with 'dimensions' instead")
        if not aggregates:
            raise QueryError("aggregates", "at least one aggregate is required in mode 'aggregate'")
        seen: dict[str, str] = {d: f"dimensions[{i}]" for i, d in enumerate(dimensions)}
        for i, agg in enumerate(aggregates):
            if agg.alias in seen:
                raise QueryError(
                    f"aggregates[{i}].alias", f"'{agg.alias}' is already used by {seen[agg.alias]}"
                )
            seen[agg.alias] = f"aggregates[{i}]"
    else:
        if dimensions:
            raise QueryError("dimensions", "not allowed in mode 'rows'")
        if aggregates:
            raise QueryError("aggregates", "not allowed in mode 'rows'")
        if not columns:
            raise QueryError("columns", "at least one column is required in mode 'rows'")
    outputs = set(dimensions) | {a.alias for a in aggregates} | set(columns)
    order_by = _order_by(obj.get("order_by", []), outputs)
    limit = _limit(obj.get("limit"))
    return Query(
        mode=mode, dimensions=dimensions, columns=columns, filters=filters,
        aggregates=aggregates, order_by=order_by, limit=limit,
    )


# --- parts -------------------------------------------------------------------------------


def _object(path: str, value: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise QueryError(path, f"must be an object, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise QueryError(path, f"keys must be text, got {_kind(key)}")
        if key not in allowed:
            if _NAME.match(key):
                where = key if path == "query" else f"{path}.{key}"
            else:
                where = f"{path}[{json.dumps(key[:40], ensure_ascii=False)}]"
            raise QueryError(where, f"unknown field; allowed: {', '.join(allowed)}")
    return value


def _list(path: str, value: object, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise QueryError(path, f"must be a list, got {_kind(value)}")
    if len(value) > max_items:
        raise QueryError(path, f"at most {max_items} items, got {len(value)}")
    return value


def _name(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise QueryError(path, f"must be a column name (text), got {_kind(value)}")
    if not _NAME.match(value):
        raise QueryError(
            path, f"{_short(value)} is not a column name (a letter, then letters, digits, _; at most 64)"
        )
    return value


def _names(path: str, value: object, max_items: int) -> tuple[str, ...]:
    items = _list(path, value, max_items)
    names: list[str] = []
    for i, item in enumerate(items):
        name = _name(f"{path}[{i}]", item)
        if name in names:
            raise QueryError(f"{path}[{i}]", f"'{name}' is listed twice")
        names.append(name)
    return tuple(names)


def _enum(path: str, enum_type: type[Any], value: object) -> Any:
    if isinstance(value, str):
        for member in enum_type:
            if member.value == value:
                return member
    allowed = ", ".join(m.value for m in enum_type)
    noun = "function" if enum_type is AggFn else "value"
    shown = _short(value) if isinstance(value, str) else _kind(value)
    raise QueryError(path, f"unknown {noun} {shown}; allowed: {allowed}")


def _scalar(path: str, value: object) -> Scalar:
    """A JSON scalar, normalised: integral floats become ints so 1 and 1.0 are one value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise QueryError(path, f"integer out of range (at most {MAX_SAFE_INT} in size)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_ABS_FLOAT:
            raise QueryError(path, "must be a finite number")
        if value.is_integer() and abs(value) <= MAX_SAFE_INT:
            return int(value)
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise QueryError(path, f"text longer than {MAX_TEXT} characters")
        return value
    raise QueryError(path, f"must be text, a number or true/false, got {_kind(value)}")


def _value_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text"


def _scalar_sort_key(value: Scalar) -> tuple[int, float, str]:
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, int | float):
        return (1, float(value), type(value).__name__)
    return (2, 0.0, value)


def _filter(path: str, data: object) -> Filter:
    obj = _object(path, data, ("column", "op", "value"))
    if "column" not in obj:
        raise QueryError(f"{path}.column", "is required")
    column = _name(f"{path}.column", obj["column"])
    if "op" not in obj:
        raise QueryError(f"{path}.op", "is required")
    op = _enum(f"{path}.op", FilterOp, obj["op"])
    if "value" not in obj:
        raise QueryError(f"{path}.value", "is required")
    raw = obj["value"]
    value: Scalar | tuple[Scalar, ...]
    if op is FilterOp.IN:
        items = _list(f"{path}.value", raw, MAX_IN_VALUES)
        if not items:
            raise QueryError(f"{path}.value", "needs at least one value")
        scalars = [_scalar(f"{path}.value[{i}]", v) for i, v in enumerate(items)]
        kinds = {_value_kind(v) for v in scalars}
        if len(kinds) > 1:
            raise QueryError(f"{path}.value", "values must all be of one kind (text, number or true/false)")
        unique: dict[tuple[str, Scalar], Scalar] = {}
        for v in scalars:
            unique.setdefault((type(v).__name__, v), v)
        value = tuple(sorted(unique.values(), key=_scalar_sort_key))
    elif op is FilterOp.BETWEEN:
        items = _list(f"{path}.value", raw, 2)
        if len(items) != 2:
            raise QueryError(f"{path}.value", "must be a list [low, high]")
        lo = _scalar(f"{path}.value[0]", items[0])
        hi = _scalar(f"{path}.value[1]", items[1])
        for i, v in enumerate((lo, hi)):
            if isinstance(v, bool):
                raise QueryError(f"{path}.value[{i}]", "true/false cannot bound a range")
        if _value_kind(lo) != _value_kind(hi):
            raise QueryError(f"{path}.value", "low and high must be of one kind (text or number)")
        # text may be a date in any time zone: the policy compares typed values
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            raise QueryError(f"{path}.value", f"low {lo!r} is above high {hi!r}")
        value = (lo, hi)
    else:
        value = _scalar(f"{path}.value", raw)
        if op in ORDERING_OPS and isinstance(value, bool):
            raise QueryError(f"{path}.value", f"true/false cannot be compared with '{op.value}'")
    return Filter(column=column, op=op, value=value)


def default_alias(fn: AggFn, column: str | None, q: float | None) -> str:
    """The name a result column gets when the query gives none (``sum_amount``, ``p50_amount``)."""
    if fn is AggFn.COUNT:
        return "count"
    if fn is AggFn.QUANTILE and q is not None:
        percent = f"{q * 100:.4f}".rstrip("0").rstrip(".").replace(".", "_")
        return f"p{percent}_{column}"
    return f"{fn.value}_{column}"


def _aggregate(path: str, data: object) -> Aggregate:
    obj = _object(path, data, ("fn", "column", "alias", "q"))
    if "fn" not in obj:
        raise QueryError(f"{path}.fn", "is required")
    fn = _enum(f"{path}.fn", AggFn, obj["fn"])
    column: str | None = None
    raw_column = obj.get("column")
    if fn is AggFn.COUNT:
        if raw_column is not None:
            raise QueryError(f"{path}.column", "count counts rows and takes no column; use count_distinct")
    else:
        if raw_column is None:
            raise QueryError(f"{path}.column", f"is required for '{fn.value}'")
        column = _name(f"{path}.column", raw_column)
    q: float | None = None
    raw_q = obj.get("q")
    if fn is AggFn.QUANTILE:
        if raw_q is None:
            raise QueryError(f"{path}.q", "is required for 'quantile' (a number between 0 and 1)")
        if isinstance(raw_q, bool) or not isinstance(raw_q, int | float):
            raise QueryError(f"{path}.q", f"must be a number between 0 and 1, got {_kind(raw_q)}")
        if not (math.isfinite(raw_q) and 0 < raw_q < 1):
            raise QueryError(f"{path}.q", f"must be strictly between 0 and 1, got {raw_q!r}")
        q = float(raw_q)
    elif raw_q is not None:
        raise QueryError(f"{path}.q", "only for 'quantile'")
    raw_alias = obj.get("alias")
    alias = default_alias(fn, column, q) if raw_alias is None else _name(f"{path}.alias", raw_alias)
    if not _NAME.match(alias):  # a default built from a long column name can overflow
        raise QueryError(f"{path}.alias", "give a shorter alias: the default name is too long")
    return Aggregate(fn=fn, column=column, alias=alias, q=q)


def _order_by(data: object, outputs: set[str]) -> tuple[OrderBy, ...]:
    items = _list("order_by", data, MAX_DIMENSIONS + MAX_AGGREGATES + MAX_COLUMNS)
    result: list[OrderBy] = []
    for i, item in enumerate(items):
        path = f"order_by[{i}]"
        obj = _object(path, item, ("column", "desc"))
        if "column" not in obj:
            raise QueryError(f"{path}.column", "is required")
        column = _name(f"{path}.column", obj["column"])
        if column not in outputs:
            raise QueryError(f"{path}.column", f"'{column}' is not a column of the result")
        if any(o.column == column for o in result):
            raise QueryError(f"{path}.column", f"'{column}' is ordered by twice")
        desc = obj.get("desc", False)
        if not isinstance(desc, bool):
            raise QueryError(f"{path}.desc", f"must be true or false, got {_kind(desc)}")
        result.append(OrderBy(column=column, desc=desc))
    return tuple(result)


def _limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise QueryError("limit", f"must be a whole number, got {_kind(value)}")
    if not 1 <= value <= MAX_LIMIT:
        raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


# --- errors ------------------------------------------------------------------------------


class QueryError(InvalidInput):
    """The query is not well-formed; ``field`` is the path of the part at fault (``filters[0].op``)."""

    code = "invalid_query"
    status = 400

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
