"""Which queries a product allows: a policy derived from its grade and delivery modes.

In the style of the clean-room analysis rules of AWS Clean Rooms and Snowflake: a
policy lists the columns a query may group and filter by, the aggregate functions
allowed per column, the columns that may never be output, the minimum group size k
below which groups are suppressed, the noise applied, and whether rows may be output
at all. ``policy_for`` derives it from the rules of the measures:

* art. 12 / national grading rules: only general grades are operated; the stricter the
  grade, the stricter the policy (general_1: k=1, general_2: k=5, general_3: k=10 with
  result perturbation, general_4: k=20 with differential privacy and a budget);
* art. 22: row-level output only where the delivery mode ``row_level_file`` is declared
  and the grade is general_1 or general_2 (open data); everything else is aggregates;
* art. 35: personal fields are never output, never grouped or filtered by; they can
  only feed sums and means (with clamping bounds when results are noisy);
* hashed identifiers serve only ``count_distinct`` ("how many people"), never output.

``validate`` checks a parsed ``Query`` against a policy and returns a ``ValidatedQuery``
carrying typed filter values, the noisy measures to draw, the epsilon and delta it
will cost and a fingerprint; or it raises ``PolicyViolation(rule, column, message)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from domain.errors import DomainError, InvalidInput
from marketplace.sandbox.cache import BoundedCache
from marketplace.sandbox.privacy import (
    Measure,
    dp_threshold,
    laplace_epsilon,
    sum_grid,
    threshold_privacy,
)
from marketplace.sandbox.query import (
    AggFn,
    FilterOp,
    Mode,
    Query,
    QueryError,
    Scalar,
    canonical_json,
)

GRADES = ("general_1", "general_2", "general_3", "general_4")
NOT_OPERABLE = ("important", "core")
DELIVERY_MODES = ("sandbox_aggregate", "row_level_file")
DTYPES = ("string", "integer", "float", "boolean", "date", "datetime", "category")
NUMERIC = frozenset({"integer", "float"})
TEMPORAL = frozenset({"date", "datetime"})

#: minimum group size per grade (GB/T 43697 general levels; stricter grade, larger groups)
MIN_GROUP_SIZE = {"general_1": 1, "general_2": 5, "general_3": 10, "general_4": 20}
#: k never falls below this where a product carries personal fields (art. 35)
MIN_GROUP_SIZE_PERSONAL = 5
#: discrete Laplace scale of the perturbation on general_3 results, per unit of sensitivity
PERTURBATION_SCALE = 2.0
DEFAULT_EPSILON_PER_QUERY = 1.0
DEFAULT_EPSILON_BUDGET = 10.0
DEFAULT_MAX_ROWS = 100_000


class Noise(Enum):
    NONE = "none"
    PERTURBATION = "perturbation"
    DIFFERENTIAL_PRIVACY = "differential_privacy"


@dataclass(frozen=True)
class FieldInfo:
    """A column of the product as the policy sees it."""

    name: str
    dtype: str
    personal: bool = False
    identifier: bool = False
    bounds: tuple[float, float] | None = None

    @property
    def numeric(self) -> bool:
        return self.dtype in NUMERIC


@dataclass(frozen=True)
class DPSpec:
    """Differential privacy for a product: epsilon per query, total budget per subscription."""

    epsilon_per_query: float = DEFAULT_EPSILON_PER_QUERY
    epsilon_budget: float = DEFAULT_EPSILON_BUDGET
    delta_target: float = 1e-6


@dataclass(frozen=True)
class Policy:
    """What a product allows; build it with ``policy_for`` or by hand in tests."""

    grade: str
    fields: tuple[FieldInfo, ...]
    dimension_columns: frozenset[str]
    filter_columns: frozenset[str]
    aggregate_functions: Mapping[str, frozenset[AggFn]]
    never_output: frozenset[str]
    min_group_size: int
    noise: Noise = Noise.NONE
    dp: DPSpec | None = None
    perturbation_scale: float = PERTURBATION_SCALE
    aggregates_allowed: bool = True
    row_level: bool = False
    row_columns: frozenset[str] = frozenset()
    max_rows: int = DEFAULT_MAX_ROWS
    _by_name: dict[str, FieldInfo] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})
        if self.noise is Noise.DIFFERENTIAL_PRIVACY and self.dp is None:
            raise ValueError("a differentially private policy needs its DPSpec")
        if self.min_group_size < 1:
            raise ValueError("min_group_size must be at least 1")

    def column_info(self, name: str) -> FieldInfo | None:
        return self._by_name.get(name)

    def describe(self) -> dict[str, Any]:
        """The policy in plain words and in data, for a product page or an API client."""
        words = [f"Grade {self.grade}: results only for groups of at least {self.min_group_size} rows."]
        if self.row_level:
            words.append(f"Rows may be output (columns: {', '.join(sorted(self.row_columns))}).")
        else:
            words.append("Aggregates only: no row of this product is ever output.")
        if self.noise is Noise.PERTURBATION:
            words.append("Counts and sums carry small random noise, the same for the same query.")
        if self.dp is not None:
            words.append(
                f"Differential privacy: each query spends epsilon {self.dp.epsilon_per_query} of a "
                f"budget of {self.dp.epsilon_budget} per subscription."
            )
        if self.never_output:
            words.append(f"Never output: {', '.join(sorted(self.never_output))}.")
        return {
            "grade": self.grade,
            "summary": words,
            "dimensions": sorted(self.dimension_columns),
            "filters": sorted(self.filter_columns),
            "aggregates": {c: sorted(f.value for f in fns) for c, fns in sorted(self.aggregate_functions.items())},
            "never_output": sorted(self.never_output),
            "min_group_size": self.min_group_size,
            "noise": self.noise.value,
            "epsilon_per_query": self.dp.epsilon_per_query if self.dp else None,
            "epsilon_budget": self.dp.epsilon_budget if self.dp else None,
            "row_level": self.row_level,
            "row_columns": sorted(self.row_columns),
            "max_rows": self.max_rows,
        }


def _text(value: object) -> str:
    """Accept a domain Enum (Grade, DeliveryMode, FieldType) as well as its value."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _field_from(index: int, item: object) -> tuple[str, str, bool]:
    if isinstance(item, tuple | list):
        if len(item) != 3:
            raise InvalidInput(f"fields[{index}]", "must be (name, dtype, personal)")
        name, dtype, personal = item
    else:
        try:
            name, dtype, personal = item.name, item.dtype, item.personal  # type: ignore[attr-defined]
        except AttributeError:
            raise InvalidInput(f"fields[{index}]", "must be (name, dtype, personal) or a FieldSpec") from None
    dtype_text = _text(dtype)
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"fields[{index}].name", "is required")
    if dtype_text not in DTYPES:
        raise InvalidInput(f"fields[{index}].dtype", f"must be one of {', '.join(DTYPES)}; got {dtype_text!r}")
    if not isinstance(personal, bool):
        raise InvalidInput(f"fields[{index}].personal", "must be true or false")
    return name, dtype_text, personal


def policy_for(
    grade: object,
    delivery_modes: Iterable[object],
    fields: Iterable[object],
    *,
    identifiers: Iterable[str] = (),
    never_output: Iterable[str] = (),
    bounds: Mapping[str, tuple[float, float]] | None = None,
    openness: object | None = None,
    epsilon_per_query: float = DEFAULT_EPSILON_PER_QUERY,
    epsilon_budget: float = DEFAULT_EPSILON_BUDGET,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Policy:
    """Derive a product's query policy from its grade, delivery modes and fields.

    ``fields`` are ``(name, dtype, personal)`` tuples or objects with those attributes
    (the catalog's ``FieldSpec``; such an object may also carry ``identifier`` and
    ``bounds``). ``identifiers`` names hashed-identifier columns; ``bounds`` gives
    clamping bounds per numeric column, which noisy policies need before they allow
    sums and means (one row's influence must be bounded).
    """
    grade_text = _text(grade)
    if grade_text in NOT_OPERABLE:
        raise PolicyViolation(
            "grade_not_operable", "",
            f"a product of grade {grade_text} may not be operated (national grading rules)",
        )
    if grade_text not in GRADES:
        raise InvalidInput("grade", f"must be one of {', '.join(GRADES)}; got {grade_text!r}")
    modes = {_text(m) for m in delivery_modes}
    for mode in modes:
        if mode not in DELIVERY_MODES:
            raise InvalidInput("delivery_modes", f"must be among {', '.join(DELIVERY_MODES)}; got {mode!r}")
    if not modes:
        raise InvalidInput("delivery_modes", "at least one delivery mode is required")
    items = list(fields)
    parsed = [_field_from(i, item) for i, item in enumerate(items)]
    names = [p[0] for p in parsed]
    if not parsed:
        raise InvalidInput("fields", "at least one field is required")
    if len(set(names)) != len(names):
        raise InvalidInput("fields", "field names must be unique")
    id_set = set(identifiers)
    hidden = set(never_output)
    bound_map = dict(bounds or {})
    for i, (name, item) in enumerate(zip(names, items, strict=True)):
        # a field object may declare these itself (``identifier: bool``, ``bounds: (low, high)``)
        if getattr(item, "identifier", False) is True:
            id_set.add(name)
        declared = getattr(item, "bounds", None)
        if declared is not None and name not in bound_map:
            try:
                lo, hi = declared
                bound_map[name] = (float(lo), float(hi))
            except (TypeError, ValueError):
                raise InvalidInput(f"fields[{i}].bounds", "must be (low, high)") from None
    for label, group in (("identifiers", id_set), ("never_output", hidden), ("bounds", set(bound_map))):
        unknown = sorted(group - set(names))
        if unknown:
            raise InvalidInput(label, f"unknown field {unknown[0]!r}")
    dtypes = dict(zip(names, (p[1] for p in parsed), strict=True))
    for name, (lo, hi) in bound_map.items():
        if dtypes[name] not in NUMERIC:
            raise InvalidInput(f"bounds.{name}", "bounds are for numeric fields only")
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidInput(f"bounds.{name}", f"must be finite with low < high; got ({lo}, {hi})")
    infos = tuple(
        FieldInfo(
            name=name, dtype=dtype, personal=personal, identifier=name in id_set,
            bounds=(float(bound_map[name][0]), float(bound_map[name][1])) if name in bound_map else None,
        )
        for name, dtype, personal in parsed
    )
    has_personal = any(f.personal for f in infos)
    k = MIN_GROUP_SIZE[grade_text]
    if has_personal:
        k = max(k, MIN_GROUP_SIZE_PERSONAL)
    if grade_text == "general_4":
        noise = Noise.DIFFERENTIAL_PRIVACY
    elif grade_text == "general_3" or has_personal:
        noise = Noise.PERTURBATION
    else:
        noise = Noise.NONE
    dp_spec = DPSpec(epsilon_per_query, epsilon_budget) if noise is Noise.DIFFERENTIAL_PRIVACY else None
    if dp_spec is not None and not (0 < epsilon_per_query <= epsilon_budget):
        raise InvalidInput("epsilon_per_query", "must be positive and within the budget")
    open_text = None if openness is None else _text(openness)
    row_level = (
        "row_level_file" in modes
        and grade_text in ("general_1", "general_2")
        and open_text in (None, "unconditional")
    )
    never = frozenset(f.name for f in infos if f.personal or f.identifier or f.name in hidden)
    visible = frozenset(f.name for f in infos if f.name not in never)
    functions: dict[str, frozenset[AggFn]] = {}
    for f in infos:
        functions[f.name] = _functions(f, hidden=f.name in never, noise=noise)
    return Policy(
        grade=grade_text,
        fields=infos,
        dimension_columns=visible,
        filter_columns=visible,
        aggregate_functions={k_: v for k_, v in functions.items() if v},
        never_output=never,
        min_group_size=k,
        noise=noise,
        dp=dp_spec,
        aggregates_allowed="sandbox_aggregate" in modes or row_level,
        row_level=row_level,
        row_columns=visible if row_level else frozenset(),
        max_rows=max_rows,
    )


def _functions(f: FieldInfo, *, hidden: bool, noise: Noise) -> frozenset[AggFn]:
    """Aggregates allowed on one column: why each is (or is not) allowed is the policy itself."""
    if f.identifier:
        return frozenset({AggFn.COUNT_DISTINCT})
    allowed: set[AggFn] = set()
    can_sum = f.numeric and (noise is Noise.NONE or f.bounds is not None)
    if hidden:
        # personal or never-output: only statistics in which no single value shows through
        if can_sum:
            allowed |= {AggFn.SUM, AggFn.MEAN}
        return frozenset(allowed)
    allowed.add(AggFn.COUNT_DISTINCT)
    if can_sum:
        allowed |= {AggFn.SUM, AggFn.MEAN}
    if noise is not Noise.DIFFERENTIAL_PRIVACY:
        # min, max and quantiles are one row's value: no place under differential privacy
        if f.numeric:
            allowed |= {AggFn.MIN, AggFn.MAX, AggFn.QUANTILE}
        elif f.dtype in TEMPORAL:
            allowed |= {AggFn.MIN, AggFn.MAX}
    return frozenset(allowed)


# --- validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class TypedFilter:
    """A filter whose value is converted to the column's type (dates parsed, numbers checked)."""

    column: str
    op: FilterOp
    value: Any
    dtype: str


@dataclass(frozen=True)
class ValidatedQuery:
    """A query the policy allows, with everything ``execute`` needs to run it safely."""

    query: Query
    policy: Policy
    filters: tuple[TypedFilter, ...]
    measures: tuple[Measure, ...]
    epsilon: float
    delta: float
    threshold: int
    fingerprint: str
    noise_basis: str

    @property
    def limit(self) -> int:
        return min(self.query.limit or self.policy.max_rows, self.policy.max_rows)


#: Validations by the identity of the query and policy objects (both immutable; the
#: entry holds them, so their ids cannot be reused while it lives). The API's policies
#: are kept per product version and its parsed queries per text, so a repeated query
#: finds its validation here.
_VALIDATED: BoundedCache[tuple[int, int], tuple[Query, Policy, ValidatedQuery]] = BoundedCache(1024)


def validate(query: Query, policy: Policy) -> ValidatedQuery:
    """Check ``query`` against ``policy``; raise ``PolicyViolation`` naming the rule and column."""
    key = (id(query), id(policy))
    found = _VALIDATED.get(key)
    if found is not None and found[0] is query and found[1] is policy:
        return found[2]
    validated = _validate(query, policy)
    _VALIDATED.put(key, (query, policy, validated))
    return validated


def _validate(query: Query, policy: Policy) -> ValidatedQuery:
    if query.mode is Mode.ROWS and not policy.row_level:
        raise PolicyViolation(
            "row_level_not_allowed", "",
            f"rows are never output for this product (grade {policy.grade}); "
            "ask for aggregates (art. 22: no raw data can be restored)",
        )
    if query.mode is Mode.AGGREGATE and not policy.aggregates_allowed:
        raise PolicyViolation("aggregate_not_allowed", "", "this product is not delivered as sandbox aggregates")
    filters = tuple(_check_filter(i, f, policy) for i, f in enumerate(query.filters))
    if query.limit is not None and query.limit > policy.max_rows:
        raise PolicyViolation(
            "max_rows", "", f"limit {query.limit} is above this product's maximum of {policy.max_rows} rows"
        )
    if query.mode is Mode.ROWS:
        for i, column in enumerate(query.columns):
            _require_visible(policy, column, "output", f"columns[{i}]")
        return _finish(query, policy, filters, (), 0.0, 0.0, 1)
    for i, column in enumerate(query.dimensions):
        _require_visible(policy, column, "group by", f"dimensions[{i}]")
        if column not in policy.dimension_columns:
            raise PolicyViolation("dimension_not_allowed", column, f"dimensions[{i}]: cannot group by '{column}'")
    for i, agg in enumerate(query.aggregates):
        if agg.fn is AggFn.COUNT:
            continue
        assert agg.column is not None
        info = _known(policy, agg.column, f"aggregates[{i}].column")
        allowed = policy.aggregate_functions.get(agg.column, frozenset())
        if agg.fn not in allowed:
            raise PolicyViolation(_fn_rule(info, agg.fn), agg.column, _fn_message(i, info, agg.fn, allowed, policy))
    measures = _measures(query, policy)
    epsilon, delta, threshold = _privacy(measures, policy)
    return _finish(query, policy, filters, measures, epsilon, delta, threshold)


def _finish(
    query: Query, policy: Policy, filters: tuple[TypedFilter, ...], measures: tuple[Measure, ...],
    epsilon: float, delta: float, threshold: int,
) -> ValidatedQuery:
    basis = noise_basis(query)
    semantic = {
        "basis": basis,
        "aggregates": sorted(
            [a.fn.value, a.column or "", a.q if a.q is not None else -1] for a in query.aggregates
        ),
        "columns": sorted(query.columns),
        "measures": [[m.name, m.scale] for m in measures],
    }
    fingerprint = hashlib.sha256(canonical_json(semantic).encode()).hexdigest()
    return ValidatedQuery(
        query=query, policy=policy, filters=filters, measures=measures, epsilon=epsilon,
        delta=delta, threshold=threshold, fingerprint=fingerprint, noise_basis=basis,
    )


def noise_basis(query: Query) -> str:
    """What the noise of a statistic depends on besides the statistic itself: the groups.

    Dimensions (as a set) and filters (sorted) define which rows fall into which cell;
    aliases, the order of aggregates, ``order_by`` and ``limit`` do not, so rewriting
    those gets the very same noise and nothing to average.
    """
    return canonical_json({
        "mode": query.mode.value,
        "dimensions": sorted(query.dimensions),
        "filters": sorted(canonical_json(f.to_dict()) for f in query.filters),
    })


def _measures(query: Query, policy: Policy) -> tuple[Measure, ...]:
    """The noisy statistics a query needs (none when the policy is exact)."""
    if policy.noise is Noise.NONE:
        return ()
    wanted: dict[str, tuple[str | None, int, float, tuple[float, float] | None]] = {"n": (None, 1, 1.0, None)}
    for agg in query.aggregates:
        column = agg.column
        if agg.fn is AggFn.COUNT_DISTINCT:
            wanted[f"distinct:{column}"] = (column, 1, 1.0, None)
        elif agg.fn in (AggFn.SUM, AggFn.MEAN):
            assert column is not None
            info = policy.column_info(column)
            assert info is not None and info.bounds is not None
            unit, sensitivity = sum_grid(info.bounds, info.dtype == "integer")
            wanted[f"sum:{column}"] = (column, sensitivity, unit, info.bounds)
            if agg.fn is AggFn.MEAN:
                wanted[f"nn:{column}"] = (column, 1, 1.0, None)
    if policy.noise is Noise.DIFFERENTIAL_PRIVACY:
        assert policy.dp is not None
        share = policy.dp.epsilon_per_query / len(wanted)
        return tuple(
            Measure(name, col, sens, unit, sens / share, clamp)
            for name, (col, sens, unit, clamp) in sorted(wanted.items())
        )
    return tuple(
        Measure(name, col, sens, unit, policy.perturbation_scale * sens, clamp)
        for name, (col, sens, unit, clamp) in sorted(wanted.items())
    )


def _privacy(measures: tuple[Measure, ...], policy: Policy) -> tuple[float, float, int]:
    """(epsilon, delta, noisy-size threshold) by sequential composition of OpenDP maps."""
    if policy.noise is not Noise.DIFFERENTIAL_PRIVACY:
        return 0.0, 0.0, policy.min_group_size
    assert policy.dp is not None
    epsilon, delta, threshold = 0.0, 0.0, policy.min_group_size
    for m in measures:
        if m.name == "n":
            threshold = dp_threshold(m.scale, policy.min_group_size, policy.dp.delta_target)
            eps, delta = threshold_privacy(m.scale, threshold)
        else:
            eps = laplace_epsilon(m.scale, m.sensitivity)
        epsilon += eps
    return epsilon, delta, threshold


def _known(policy: Policy, column: str, path: str) -> FieldInfo:
    info = policy.column_info(column)
    if info is None:
        raise PolicyViolation("unknown_column", column, f"{path}: this product has no column '{column}'")
    return info


def _require_visible(policy: Policy, column: str, use: str, path: str) -> FieldInfo:
    info = _known(policy, column, path)
    if info.identifier:
        raise PolicyViolation(
            "identifier", column, f"{path}: '{column}' is an identifier; it serves only count_distinct"
        )
    if info.personal:
        raise PolicyViolation(
            "personal_field", column,
            f"{path}: '{column}' is personal information and can never be used to {use} (art. 35)",
        )
    if column in policy.never_output:
        raise PolicyViolation("never_output", column, f"{path}: '{column}' can never be output or used to {use}")
    return info


def _fn_rule(info: FieldInfo, fn: AggFn) -> str:
    if info.identifier:
        return "identifier"
    if info.personal:
        return "personal_field"
    return "function_not_allowed"


def _fn_message(i: int, info: FieldInfo, fn: AggFn, allowed: frozenset[AggFn], policy: Policy) -> str:
    path = f"aggregates[{i}]"
    names = ", ".join(sorted(f.value for f in allowed)) or "none"
    if info.identifier:
        return f"{path}: '{info.name}' is an identifier; it serves only count_distinct"
    reason = ""
    if fn in (AggFn.SUM, AggFn.MEAN) and info.numeric and info.bounds is None and policy.noise is not Noise.NONE:
        reason = " (sums and means need clamping bounds for this column)"
    elif fn in (AggFn.MIN, AggFn.MAX, AggFn.QUANTILE) and policy.noise is Noise.DIFFERENTIAL_PRIVACY:
        reason = " (a single row's value has no place under differential privacy)"
    elif info.personal:
        reason = " (personal information: only sums and means of it, art. 35)"
    elif fn is not AggFn.COUNT_DISTINCT and not info.numeric:
        reason = f" (not for a {info.dtype} column)"
    return f"{path}: {fn.value}({info.name}) is not allowed{reason}; allowed here: {names}"


def _check_filter(i: int, f: Any, policy: Policy) -> TypedFilter:
    path = f"filters[{i}]"
    info = _require_visible(policy, f.column, "filter", f"{path}.column")
    if f.column not in policy.filter_columns:
        raise PolicyViolation("filter_not_allowed", f.column, f"{path}.column: cannot filter on '{f.column}'")
    if info.dtype == "boolean" and f.op not in (FilterOp.EQ, FilterOp.NE, FilterOp.IN):
        raise QueryError(f"{path}.op", f"'{f.op.value}' does not apply to true/false column '{f.column}'")
    if isinstance(f.value, tuple):
        value: Any = tuple(_typed(f"{path}.value[{j}]", v, info) for j, v in enumerate(f.value))
        if f.op is FilterOp.BETWEEN and value[0] > value[1]:
            raise QueryError(f"{path}.value", f"low {f.value[0]!r} is above high {f.value[1]!r}")
    else:
        value = _typed(f"{path}.value", f.value, info)
    return TypedFilter(column=f.column, op=f.op, value=value, dtype=info.dtype)


def _typed(path: str, value: Scalar, info: FieldInfo) -> Any:
    """Convert a JSON value to the column's type, or say what the column expects."""
    dtype = info.dtype
    if dtype in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise QueryError(path, f"'{info.name}' is {dtype}: compare it with a number")
        return value
    if dtype == "boolean":
        if not isinstance(value, bool):
            raise QueryError(path, f"'{info.name}' is boolean: compare it with true or false")
        return value
    if not isinstance(value, str):
        raise QueryError(path, f"'{info.name}' is {dtype}: compare it with text")
    if dtype == "date":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise QueryError(path, f"'{info.name}' is a date: use YYYY-MM-DD, got {value!r}") from None
    if dtype == "datetime":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise QueryError(path, f"'{info.name}' is a datetime: use ISO 8601, got {value!r}") from None
        # one convention: a moment without a zone is UTC; zoned moments become UTC
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return value


# --- errors ------------------------------------------------------------------------------


class PolicyViolation(DomainError):
    """The query is well-formed but the product's policy forbids it; ``rule`` says which rule."""

    code = "policy_violation"
    status = 403

    def __init__(self, rule: str, column: str, message: str) -> None:
        super().__init__(message, rule=rule, column=column)
        self.rule = rule
        self.column = column
