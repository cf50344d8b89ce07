"""The bridge from an HTTP query to the sandbox: product -> policy -> Polars -> output controls.

The sandbox (``marketplace.sandbox``) decides what a product allows and runs it; this
module only finds the inputs: the compliance-reviewed product version's Parquet file,
the product's policy (derived from its grade, delivery modes and fields), the
subscription's remaining privacy budget, and the platform's sandbox secret that seeds
noise and watermarks identically in every API process.

How a released result goes on the wire (Arrow IPC, narrowed and compressed for the
SDK) is ``marketplace.api.wire``.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Lock
from typing import Any
from uuid import UUID

import polars as pl

from domain.errors import DomainError, InvalidState
from domain.licensing import Subscription
from domain.products import DataProduct
from marketplace.api.state import ApiState
from marketplace.api.wire import ReleasedRows
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
    content_hash: str
    source_rows: range | pl.Series | None = None

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
        content_hash=version.content_hash,
        source_rows=result.source_rows,
    )


def released_rows(state: ApiState, outcome: QueryOutcome) -> ReleasedRows | None:
    """The version rows a row-level result released, with the version's wire columns (``VersionWire``), if any."""
    if outcome.source_rows is None:
        return None
    version = state.data.wire(outcome.content_hash)
    return None if version is None else ReleasedRows(version, outcome.source_rows)


def fields_used(query: Query) -> tuple[str, ...]:
    """Every product field the query touches (output, grouping, filtering, aggregating): the ledger checks
    them against the subscription's scope (art. 23)."""
    names = [*query.dimensions, *query.columns, *(f.column for f in query.filters)]
    names += [a.column for a in query.aggregates if a.column is not None]
    return tuple(dict.fromkeys(names))


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
