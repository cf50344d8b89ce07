"""The data sandbox core: recipes build products, policy-checked queries read them (art. 8, 22, 23).

Raw data never leaves the platform. Products are built from sources by declarative
recipes (``recipe``); units ask JSON queries (``query``) that are validated against a
policy derived from the product's grade and delivery modes (``policy``), executed on
Polars with output controls — k suppression, tiny-filter and differencing defences,
seeded noise, differential privacy accounted by OpenDP (``execute``, ``privacy``) —
and every result carries a per-subscription watermark (``watermark``).
"""

from marketplace.sandbox.execute import (
    BudgetExhausted,
    QueryContext,
    QueryResult,
    SchemaMismatch,
    execute,
    run_query,
)
from marketplace.sandbox.policy import (
    FieldInfo,
    Noise,
    Policy,
    PolicyViolation,
    ValidatedQuery,
    policy_for,
    validate,
)
from marketplace.sandbox.query import Query, QueryError, parse, parse_json
from marketplace.sandbox.recipe import BuiltVersion, Recipe, RecipeError, build_version, parse_recipe
from marketplace.sandbox.watermark import TraceResult, read_leak, trace, watermark_id

__all__ = [
    "BudgetExhausted",
    "BuiltVersion",
    "FieldInfo",
    "Noise",
    "Policy",
    "PolicyViolation",
    "Query",
    "QueryContext",
    "QueryError",
    "QueryResult",
    "Recipe",
    "RecipeError",
    "SchemaMismatch",
    "TraceResult",
    "ValidatedQuery",
    "build_version",
    "execute",
    "parse",
    "parse_json",
    "parse_recipe",
    "policy_for",
    "read_leak",
    "run_query",
    "trace",
    "validate",
    "watermark_id",
]
