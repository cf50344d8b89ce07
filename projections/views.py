"""The read side for the UI, the API and reports: query functions returning Polars frames.

Every function takes the read-model database as its first argument (a ``Config``, an
open ``Database`` or a ``Runner``) and keyword filters, and returns a ``pl.DataFrame``
with stable column names (the storefront and the API depend on them). A table whose
projection has not run yet reads as empty rather than failing, so a page can render
before the first catch-up.

What no single event records is computed here, at read time, from the projections'
tables: a product's current status, ratings and subscriber counts (joined across
read models), remaining quota for the reader's current period, revenue (usage x prices,
``projections.pricing`` for the rules, ``domain.pricing`` for the arithmetic), overdue
flags (against ``at``, default now) and contribution scores (``projections.contributions``).
Read models are eventually consistent: a frame joining two of them may briefly show
one a batch ahead of the other.
"""

from __future__ import annotations

import bisect
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ParamSpec

import polars as pl

from domain.feedback import ApplicationStatus, Effect
from domain.incentives import validate_period
from domain.licensing import BUSINESS_TZ
from domain.pricing import BillingUnit, PricePlan, PurposeClass
from domain.usage import BUDGET_DIGITS, USE_REFUSALS, next_period_start, period_of
from marketplace.config import Config
from projections import audit as audit_rm
from projections import catalog as catalog_rm
from projections import contributions as contributions_rm
from projections import credentials as credentials_rm
from projections import demand as demand_rm
from projections import feedback as feedback_rm
from projections import pricing as pricing_rm
from projections import queues as queues_rm
from projections import units as units_rm
from projections import usage as usage_rm
from projections.asof import parse_time
from projections.base import ProjectionError, Table, topic_parts
from projections.db import Database, connect, frame_from_rows
from projections.log import EventLog
from projections.runner import Runner

Source = Config | Database | Runner
P = ParamSpec("P")
#: Every public view by name (for the API and the CLI to list and call).
VIEWS: dict[str, Callable[..., pl.DataFrame]] = {}

#: Refusal reasons the usage ledger records (``domain.usage.USE_REFUSALS``): one column each.
REFUSAL_REASONS: tuple[str, ...] = tuple(str(error.code) for error in USE_REFUSALS)
PURPOSE_CLASSES: tuple[str, ...] = tuple(p.value for p in PurposeClass)
#: Subscription statuses that make a unit a current subscriber of a product.
SUBSCRIBED = ("active", "suspended")


# -- plumbing -----------------------------------------------------------------------------------


@contextmanager
def _opened(source: Source) -> Iterator[Database]:
    if isinstance(source, Database):
        yield source
    elif isinstance(source, Runner):
        yield source.db
    elif isinstance(source, Config):
        db = connect(source)
        try:
            yield db
        finally:
            db.close()
    else:
        raise ProjectionError(f"a view reads a Config, Database or Runner, not {type(source).__name__}")


def _empty(table: Table, columns: Sequence[str] | None = None) -> pl.DataFrame:
    names = list(columns or table.column_names)
    return frame_from_rows(names, [], table.columns)


def _select(
    db: Database,
    table: Table,
    where: Mapping[str, Any] | None = None,
    *,
    columns: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rows of one table with the declared dtypes; ``where`` values that are None are ignored,
    collections mean ``IN``."""
    if not db.table_exists(table.name):
        return _empty(table, columns)
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (where or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            if not values:
                return _empty(table, columns)
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        else:
            clauses.append(f"{column} = ?")
            params.append(value)
    sql = f"SELECT {', '.join(columns or table.column_names)} FROM {table.name}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY " + ", ".join(order or table.key)
    names, rows = db.query(db.sql(sql), params)
    return frame_from_rows(names, rows, table.columns)


def _widen(frame: pl.DataFrame) -> pl.DataFrame:
    """Counts come out of Polars as UInt32 (``len``) or Int32; every view promises Int64."""
    narrow = [name for name, dtype in frame.schema.items() if dtype in (pl.UInt32, pl.Int32, pl.UInt64)]
    return frame.with_columns(pl.col(narrow).cast(pl.Int64)) if narrow else frame


def view(function: Callable[P, pl.DataFrame]) -> Callable[P, pl.DataFrame]:
    """Mark a public query function: listed in ``VIEWS``, its counts widened to Int64."""

    @functools.wraps(function)
    def typed(*args: P.args, **kwargs: P.kwargs) -> pl.DataFrame:
        return _widen(function(*args, **kwargs))

    VIEWS[function.__name__] = typed
    return typed


def _within(frame: pl.DataFrame, column: str, narrowed: bool) -> list[str] | None:
    """The ids of ``frame`` to narrow a related table's query to, only when ``frame`` was itself narrowed.

    A whole-table view reads related tables whole rather than through a parameter list
    as long as the table (which PostgreSQL caps at 65,535 parameters).
    """
    return frame[column].unique().to_list() if narrowed else None


def _now(at: datetime | str | None) -> datetime:
    return datetime.now(UTC) if at is None else parse_time(at).astimezone(UTC)


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _ids(value: Any) -> Any:
    """One id or several, as text (a UUID or its text both work)."""
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return [str(v) for v in value]
    return str(value)


def _text(value: Any) -> Any:
    """Enum members or their values, alone or in a collection, as the stored text."""
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return [getattr(v, "value", v) for v in value]
    return getattr(value, "value", value)


def _contains(column: str, needle: str) -> pl.Expr:
    return pl.col(column).fill_null("").str.to_lowercase().str.contains(needle.lower(), literal=True)


def _status_expr() -> pl.Expr:
    """``catalog.product_status`` as a Polars expression."""
    again = pl.col("status_event").is_in(list(catalog_rm.REVIEWED_AGAIN_ON_NEW_VERSION)) & (
        pl.col("version_event_id").fill_null(0) > pl.col("status_event_id").fill_null(0)
    )
    return pl.when(again).then(pl.lit("in_review")).otherwise(pl.col("status_event").fill_null("draft"))


# -- catalog and listings (art. 7, 10-14, 24) ---------------------------------------------------------


@view
def providers(db: Source) -> pl.DataFrame:
    """Every provider: name, kind, contact, staff count, and how many catalog entries and products it feeds."""
    with _opened(db) as conn:
        frame = _select(conn, catalog_rm.PROVIDERS)
        resources = _select(conn, catalog_rm.RESOURCES, columns=["resource_id", "provider_id", "status"])
        sources = _select(conn, catalog_rm.PRODUCT_SOURCES, columns=["product_id", "provider_id"])
    counts = resources.group_by("provider_id").agg(
        pl.len().alias("resources"), (pl.col("status") == "approved").sum().alias("resources_approved")
    )
    feeds = sources.group_by("provider_id").agg(pl.col("product_id").n_unique().alias("products"))
    return (
        frame.join(counts, on="provider_id", how="left").join(feeds, on="provider_id", how="left")
        .with_columns(pl.col("resources", "resources_approved", "products").fill_null(0).cast(pl.Int64))
        .sort("name")
    )


def _products(conn: Database, product_id: Any = None) -> pl.DataFrame:
    """Every product (or one) with status, providers, prices, ratings and subscribers joined in."""
    products = _select(conn, catalog_rm.PRODUCTS, {"product_id": _id(product_id)})
    ids = _within(products, "product_id", product_id is not None)
    sources = _select(conn, catalog_rm.PRODUCT_SOURCES, {"product_id": ids})
    names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"]).rename({"name": "provider_name"})
    plans = _select(conn, pricing_rm.PLANS, {"product_id": ids})
    caps = _select(conn, pricing_rm.PRODUCTS, {"product_id": ids}, columns=["product_id", "cap"])
    feedback = _select(conn, feedback_rm.FEEDBACK, {"product_id": ids}, columns=["product_id", "rating"])
    subs = _select(conn, units_rm.SUBSCRIPTIONS, {"product_id": ids}, columns=["product_id", "unit_id", "status"])

    by_product = (
        sources.join(names, on="provider_id", how="left").sort("product_id", "resource_id")
        .group_by("product_id", maintain_order=True)
        .agg(pl.col("provider_id").unique(maintain_order=True).alias("provider_ids"),
             pl.col("provider_name").unique(maintain_order=True).alias("providers"),
             pl.col("resource_id").alias("source_ids"))
    )
    prices = plans.sort("lowest_unit_price").group_by("product_id", maintain_order=True).agg(
        pl.col("lowest_unit_price").min().alias("lowest_price"),
        pl.col("billing_unit").first().alias("lowest_price_unit"),
        pl.len().alias("plan_count"),
        pl.col("stage").unique().sort().alias("price_stages"),
    )
    ratings = feedback.group_by("product_id").agg(
        pl.col("rating").mean().alias("rating_avg"), pl.len().alias("rating_count")
    )
    subscribers = subs.filter(pl.col("status").is_in(list(SUBSCRIBED))).group_by("product_id").agg(
        pl.col("unit_id").n_unique().alias("subscriber_count")
    )
    return (
        products.with_columns(status=_status_expr())
        .with_columns(listed=pl.col("status") == "listed",
                      delivery_modes=pl.col("delivery_modes").str.split(","),
                      # Art. 24 and the national rules: public governance and welfare use is free.
                      free_for_public_welfare=pl.lit(True))
        .join(by_product, on="product_id", how="left")
        .join(prices, on="product_id", how="left")
        .join(caps.rename({"cap": "price_cap"}), on="product_id", how="left")
        .join(ratings, on="product_id", how="left")
        .join(subscribers, on="product_id", how="left")
        .with_columns(pl.col("plan_count", "rating_count", "subscriber_count").fill_null(0).cast(pl.Int64))
    )


CATALOG_COLUMNS = (
    "product_id", "name", "description", "category", "grade", "delivery_modes", "status", "listed",
    "providers", "provider_ids", "lowest_price", "lowest_price_unit", "price_cap", "plan_count", "price_stages",
    "free_for_public_welfare", "rating_avg", "rating_count", "subscriber_count", "version_count", "latest_rows",
    "field_count", "personal_field_count", "showcase_count", "listed_at",
)


@view
def catalog(
    db: Source,
    search: str | None = None,
    provider: Any = None,
    category: str | None = None,
    grade: Any = None,
    delivery: Any = None,
    free_public_welfare: bool | None = None,
    *,
    listed: bool | None = None,
    status: Any = None,
) -> pl.DataFrame:
    """Products, searchable and facetable, one row each, by name.

    ``search`` matches name, description, category and provider names (case-insensitive);
    ``provider`` is a provider id or part of its name; ``grade``, ``status`` and
    ``delivery`` (a delivery mode the product offers) take a value or a list; ``listed``
    True is the storefront. Every product is free for public-governance and
    public-welfare use (art. 24), so ``free_public_welfare`` False matches nothing.
    """
    with _opened(db) as conn:
        frame = _products(conn)
    if search:
        frame = frame.filter(
            _contains("name", search) | _contains("description", search) | _contains("category", search)
            | pl.col("providers").list.join(" ").fill_null("").str.to_lowercase().str.contains(search.lower(),
                                                                                               literal=True)
        )
    if provider is not None:
        text = str(provider)
        frame = frame.filter(
            pl.col("provider_ids").list.contains(text).fill_null(False)
            | pl.col("providers").list.join(" ").fill_null("").str.to_lowercase().str.contains(text.lower(),
                                                                                               literal=True)
        )
    if category is not None:
        frame = frame.filter(pl.col("category") == category)
    for column, value in (("grade", grade), ("status", status)):
        if value is not None:
            wanted = _text(value)
            frame = frame.filter(pl.col(column).is_in(wanted if isinstance(wanted, list) else [wanted]))
    if delivery is not None:
        wanted = _text(delivery)
        modes = wanted if isinstance(wanted, list) else [wanted]
        frame = frame.filter(pl.any_horizontal(pl.col("delivery_modes").list.contains(m) for m in modes))
    if listed is not None:
        frame = frame.filter(pl.col("listed") == listed)
    if free_public_welfare is False:
        frame = frame.clear()
    return frame.select(CATALOG_COLUMNS).sort("name")


@view
def product_detail(db: Source, product_id: Any) -> pl.DataFrame:
    """One product, every column the read models hold on it (empty if unknown)."""
    with _opened(db) as conn:
        return _products(conn, product_id)


@view
def data_dictionary(db: Source, product_id: Any) -> pl.DataFrame:
    """A product's output fields in order: name, type, description and whether personal (art. 35)."""
    with _opened(db) as conn:
        return _select(conn, catalog_rm.PRODUCT_FIELDS, {"product_id": _id(product_id)}).drop("product_id")


@view
def sample_statistics(db: Source, product_id: Any = None) -> pl.DataFrame:
    """What the registered version says of each product's data: rows, columns, types, personal columns.

    Statistics computed from the data itself belong to the sandbox; these are the facts
    the events give (the latest version's row count and hash, the declared schema).
    """
    with _opened(db) as conn:
        products = _select(conn, catalog_rm.PRODUCTS, {"product_id": _id(product_id)}, columns=[
            "product_id", "name", "version_count", "latest_hash", "latest_rows", "latest_version_at"])
        fields = _select(conn, catalog_rm.PRODUCT_FIELDS, {"product_id": _id(product_id)})
    types = (
        fields.group_by("product_id", "dtype").len()
        .sort(["product_id", "len", "dtype"], descending=[False, True, False])
        .group_by("product_id", maintain_order=True)
        .agg(pl.format("{}:{}", "dtype", "len").str.join(", ").alias("dtypes"))
    )
    schema = fields.group_by("product_id", maintain_order=True).agg(
        pl.len().alias("column_count"),
        pl.col("personal").sum().cast(pl.Int64).alias("personal_column_count"),
        pl.col("name").filter(pl.col("personal")).alias("personal_columns"),
    ).join(types, on="product_id", how="left")
    return (
        products.rename({"version_count": "version", "latest_hash": "content_hash", "latest_rows": "row_count",
                         "latest_version_at": "registered_at"})
        .join(schema, on="product_id", how="left")
        .with_columns(pl.col("column_count", "personal_column_count").fill_null(0).cast(pl.Int64))
        .sort("name")
    )


@view
def product_versions(db: Source, product_id: Any) -> pl.DataFrame:
    with _opened(db) as conn:
        return _select(conn, catalog_rm.PRODUCT_VERSIONS, {"product_id": _id(product_id)})


@view
def showcases(db: Source, product_id: Any = None) -> pl.DataFrame:
    """Showcase cases (art. 27), newest first, with the product's name."""
    with _opened(db) as conn:
        cases = _select(conn, catalog_rm.SHOWCASES, {"product_id": _id(product_id)})
        names = _select(conn, catalog_rm.PRODUCTS, columns=["product_id", "name"]).rename({"name": "product_name"})
    return cases.join(names, on="product_id", how="left").sort("notification_id", descending=True)


@view
def product_expert_opinions(db: Source, product_id: Any = None) -> pl.DataFrame:
    """The expert committee's opinions on products (art. 6), as recorded (oldest first), with the product's
    name and status: who gave each, what it says, its recommendation, and who recorded it when."""
    with _opened(db) as conn:
        opinions = _select(conn, catalog_rm.EXPERT_OPINIONS, {"product_id": _id(product_id)})
        products = _select(conn, catalog_rm.PRODUCTS, {"product_id": _id(product_id)},
                           columns=["product_id", "name", "status_event", "status_event_id", "version_event_id"])
    products = products.select("product_id", pl.col("name").alias("product_name"),
                               _status_expr().alias("product_status"))
    return opinions.join(products, on="product_id", how="left").sort("opinion_id")


@view
def catalog_resources(
    db: Source,
    provider: Any = None,
    status: Any = None,
    grade: Any = None,
    openness: Any = None,
    search: str | None = None,
) -> pl.DataFrame:
    """Catalog entries with provider, grade, openness, review status, latest version and consents."""
    with _opened(db) as conn:
        frame = _select(conn, catalog_rm.RESOURCES, {"status": _text(status), "grade": _text(grade),
                                                     "openness": _text(openness)})
        names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"]).rename({"name": "provider_name"})
        supply = _select(conn, catalog_rm.SUPPLY, columns=["resource_id", "status"])
    consents = supply.group_by("resource_id").agg(
        *((pl.col("status") == s).sum().cast(pl.Int64).alias(f"supply_{s}") for s in ("pending", "granted", "refused"))
    )
    frame = (
        frame.join(names, on="provider_id", how="left").join(consents, on="resource_id", how="left")
        .with_columns(pl.col("supply_pending", "supply_granted", "supply_refused").fill_null(0))
    )
    if provider is not None:
        text = str(provider)
        frame = frame.filter((pl.col("provider_id") == text) | _contains("provider_name", text))
    if search:
        frame = frame.filter(_contains("name", search) | _contains("description", search)
                             | _contains("category", search))
    return frame.sort("provider_name", "name")


@view
def resource_fields(db: Source, resource_id: Any) -> pl.DataFrame:
    """The current schema of a catalog entry (its latest compiled or revised fields)."""
    with _opened(db) as conn:
        current = _select(conn, catalog_rm.RESOURCES, {"resource_id": _id(resource_id)},
                          columns=["resource_id", "fields_revision"])
        if current.is_empty():
            return _empty(catalog_rm.RESOURCE_FIELDS).drop("resource_id", "revision")
        fields = _select(conn, catalog_rm.RESOURCE_FIELDS,
                         {"resource_id": _id(resource_id), "revision": current["fields_revision"][0]})
    return fields.drop("resource_id", "revision")


@view
def resource_versions(db: Source, resource_id: Any) -> pl.DataFrame:
    with _opened(db) as conn:
        return _select(conn, catalog_rm.RESOURCE_VERSIONS, {"resource_id": _id(resource_id)})


@view
def supply_consents(
    db: Source, resource_id: Any = None, product_id: Any = None, provider_id: Any = None, status: Any = None
) -> pl.DataFrame:
    """Supply requests and the providers' answers (art. 14), with resource, provider and product names."""
    with _opened(db) as conn:
        supply = _select(conn, catalog_rm.SUPPLY, {"resource_id": _id(resource_id), "product_id": _id(product_id),
                                                   "status": _text(status)})
        resources = _select(conn, catalog_rm.RESOURCES, columns=["resource_id", "name", "provider_id"])
        names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"])
        products = _select(conn, catalog_rm.PRODUCTS, columns=["product_id", "name"])
    frame = (
        supply.join(resources.rename({"name": "resource_name"}), on="resource_id", how="left")
        .join(names.rename({"name": "provider_name"}), on="provider_id", how="left")
        .join(products.rename({"name": "product_name"}), on="product_id", how="left")
    )
    if provider_id is not None:
        frame = frame.filter(pl.col("provider_id") == str(provider_id))
    return frame.sort("requested_at")


# -- units and subscriptions (art. 3, 21-23, 34) ------------------------------------------------------


@view
def units(db: Source, status: Any = None, kind: Any = None, search: str | None = None) -> pl.DataFrame:
    """Application units with status, kind, qualification decision, member and subscription counts."""
    with _opened(db) as conn:
        frame = _select(conn, units_rm.UNITS, {"status": _text(status), "kind": _text(kind)})
        members = _select(conn, units_rm.MEMBERS, columns=["unit_id", "role"])
        subs = _select(conn, units_rm.SUBSCRIPTIONS, columns=["unit_id", "status"])
    member_counts = members.group_by("unit_id").agg(
        pl.len().alias("member_count"), (pl.col("role") == "unit_admin").sum().cast(pl.Int64).alias("admin_count")
    )
    sub_counts = subs.group_by("unit_id").agg(
        pl.len().alias("subscriptions"),
        (pl.col("status") == "active").sum().cast(pl.Int64).alias("active_subscriptions"),
    )
    frame = (
        frame.join(member_counts, on="unit_id", how="left").join(sub_counts, on="unit_id", how="left")
        .with_columns(pl.col("member_count", "admin_count", "subscriptions", "active_subscriptions").fill_null(0))
    )
    if search:
        frame = frame.filter(_contains("name", search) | _contains("credit_code", search))
    return frame.sort("name")


@view
def unit_members(db: Source, unit_id: Any) -> pl.DataFrame:
    with _opened(db) as conn:
        return _select(conn, units_rm.MEMBERS, {"unit_id": _id(unit_id)}).sort("role", "user_id")


def _remaining(subs: pl.DataFrame, ledgers: pl.DataFrame, period: str) -> pl.DataFrame:
    """What each subscription has left in ``period``: its current entitlements minus the period's ledger.

    The same arithmetic as ``UsageLedger.remaining(subscription.entitlements)``: never
    below zero, the budget rounded as the domain rounds it.
    """
    used = ledgers.filter(pl.col("period") == period).select(
        "subscription_id", pl.col("queries_used").fill_null(0), pl.col("rows_used").fill_null(0),
        pl.col("budget_used").fill_null(0.0),
    )
    frame = subs.join(used, on="subscription_id", how="left").with_columns(
        pl.col("queries_used", "rows_used").fill_null(0), pl.col("budget_used").fill_null(0.0)
    )
    budget = [
        max(0.0, round(b - u, BUDGET_DIGITS))
        for b, u in zip(frame["privacy_budget"].fill_null(0.0).to_list(),
                        [round(x, BUDGET_DIGITS) for x in frame["budget_used"].to_list()], strict=True)
    ]
    return frame.with_columns(
        current_period=pl.lit(period),
        queries_remaining=(pl.col("queries_per_period") - pl.col("queries_used")).clip(lower_bound=0),
        rows_remaining=(pl.col("rows_per_period") - pl.col("rows_used")).clip(lower_bound=0),
        budget_remaining=pl.Series(budget, dtype=pl.Float64),
        reset_on=pl.lit(next_period_start(period)),
    )


@view
def unit_subscriptions(
    db: Source,
    unit_id: Any = None,
    *,
    subscription_id: Any = None,
    product_id: Any = None,
    status: Any = None,
    at: datetime | str | None = None,
) -> pl.DataFrame:
    """Subscriptions with agreements (who signed for each side), entitlements, term and what is left.

    ``queries_remaining``, ``rows_remaining`` and ``budget_remaining`` are for the current
    metering period at ``at`` (default now, Baotou calendar), as ``UsageService.remaining``
    reports them; ``reset_on`` is when they reset.
    """
    moment = _now(at)
    period = period_of(moment)
    with _opened(db) as conn:
        subs = _select(conn, units_rm.SUBSCRIPTIONS, {
            "unit_id": _id(unit_id), "subscription_id": _ids(subscription_id), "product_id": _id(product_id),
            "status": _text(status)})
        narrowed = any(v is not None for v in (unit_id, subscription_id, product_id, status))
        ids = _within(subs, "subscription_id", narrowed)
        agreements = _select(conn, units_rm.AGREEMENTS, {"subscription_id": ids})
        ledgers = _select(conn, usage_rm.LEDGERS, {"subscription_id": ids, "period": period},
                          columns=["subscription_id", "period", "queries_used", "rows_used", "budget_used"])
        names = _select(conn, catalog_rm.PRODUCTS, columns=["product_id", "name"]).rename({"name": "product_name"})
        unit_names = _select(conn, units_rm.UNITS, columns=["unit_id", "name"]).rename({"name": "unit_name"})
    signatures = agreements.group_by("subscription_id").agg(
        *(pl.col(f"signed_by_{party}").filter(pl.col("kind") == kind).first().alias(f"{kind}_{party}")
          for kind in ("service", "confidentiality") for party in ("unit", "operator")),
    )
    missing = [
        pl.when(pl.col(f"{kind}_{party}").is_null()).then(pl.lit(f"{kind}/{party}")).otherwise(None)
        for kind in ("service", "confidentiality") for party in ("unit", "operator")
    ]
    today = moment.astimezone(BUSINESS_TZ).date()
    frame = (
        _remaining(subs, ledgers, period)
        .join(names, on="product_id", how="left").join(unit_names, on="unit_id", how="left")
        .join(signatures, on="subscription_id", how="left")
        .with_columns(missing_signatures=pl.concat_list(missing).list.drop_nulls(),
                      term_start=pl.col("term_start").str.to_date(), term_end=pl.col("term_end").str.to_date())
        .with_columns(days_to_expiry=(pl.col("term_end") - pl.lit(today)).dt.total_days(),
                      fields=pl.col("fields").str.split(","))
    )
    return frame.sort("created_at")


@view
def subscription_agreements(db: Source, subscription_id: Any = None, unit_id: Any = None) -> pl.DataFrame:
    """Both agreements of art. 22 per subscription: purpose, scope, method, term and signatures."""
    with _opened(db) as conn:
        ids: Any = _ids(subscription_id)
        if unit_id is not None:
            subs = _select(conn, units_rm.SUBSCRIPTIONS, {"unit_id": _id(unit_id), "subscription_id": ids},
                           columns=["subscription_id"])
            ids = subs["subscription_id"].to_list()
        return _select(conn, units_rm.AGREEMENTS, {"subscription_id": ids}).with_columns(
            signed=pl.col("signed_by_unit").is_not_null() & pl.col("signed_by_operator").is_not_null(),
            scope=pl.col("scope").str.split(","),
        )


# -- staff and providers' rosters (art. 15-16) ---------------------------------------------------------


@view
def staff(db: Source) -> pl.DataFrame:
    """The operator's and the bureau's staff by user id, each with the roles held now, in the order granted."""
    with _opened(db) as conn:
        members = _select(conn, units_rm.STAFF)
        roles = _select(conn, units_rm.STAFF_ROLES, columns=["staff_id", "role", "granted_id"])
    held = roles.sort("granted_id").group_by("staff_id", maintain_order=True).agg(pl.col("role").alias("roles"))
    return (
        members.join(held, on="staff_id", how="left")
        .with_columns(pl.col("roles").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select("staff_id", "user_id", "name", "roles", "enrolled_by", "enrolled_at")
        .sort("user_id")
    )


@view
def provider_staff(db: Source, provider_id: Any = None) -> pl.DataFrame:
    """Who acts for which provider (art. 15 named contacts): by provider name, then in roster order."""
    with _opened(db) as conn:
        roster = _select(conn, units_rm.PROVIDER_STAFF, {"provider_id": _id(provider_id)})
        names = _select(conn, catalog_rm.PROVIDERS, {"provider_id": _id(provider_id)},
                        columns=["provider_id", "name"]).rename({"name": "provider_name"})
    return (
        roster.join(names, on="provider_id", how="left")
        .sort(["provider_name", "added_id"], nulls_last=True)
        .select("provider_id", "provider_name", "user_id", "added_by", "added_at")
    )


# -- demand applications and the demand board (art. 6, 19-22) ------------------------------------------------

SCOPE_DTYPE = pl.List(pl.Struct({"product_id": pl.String, "fields": pl.List(pl.String)}))
OPINIONS_DTYPE = pl.List(pl.Struct({
    "expert": pl.String, "opinion": pl.String, "recommendation": pl.String, "recorded_by": pl.String,
    "recorded_at": pl.Datetime("us", "UTC"),
}))
RESPONSES_DTYPE = pl.List(pl.Struct({
    "text": pl.String, "product_id": pl.String, "responded_by": pl.String, "responded_at": pl.Datetime("us", "UTC"),
}))
DEMAND_APPLICATION_COLUMNS = (
    "application_id", "unit_id", "unit_name", "status", "filed_on", "filed_by", "filed_at", "scenario", "purpose",
    "purpose_class", "scope", "product_ids", "period_start", "period_end", "security_controls", "risk_level",
    "risk_notes", "assessed_by", "assessed_at", "expert_opinion_count", "expert_opinions", "decided_by", "decided_at",
    "decision_reason", "withdrawn_by", "withdrawn_at", "updated_at",
)


def _grouped(rows: pl.DataFrame, key: str, order: str, fields: Sequence[str], name: str,
             dtype: pl.DataType) -> pl.DataFrame:
    """Rows of a child table as one list-of-structs column per ``key``, in ``order``."""
    return (rows.sort(order).group_by(key, maintain_order=True)
            .agg(pl.struct(*fields).alias(name)).with_columns(pl.col(name).cast(dtype)))


def _applications(conn: Database, where: Mapping[str, Any], narrowed: bool) -> pl.DataFrame:
    frame = _select(conn, demand_rm.APPLICATIONS, where)
    ids = _within(frame, "application_id", narrowed)
    opinions = _select(conn, demand_rm.OPINIONS, {"application_id": ids})
    unit_names = _select(conn, units_rm.UNITS, columns=["unit_id", "name"]).rename({"name": "unit_name"})
    grouped = _grouped(opinions, "application_id", "opinion_id",
                       ("expert", "opinion", "recommendation", "recorded_by", "recorded_at"), "expert_opinions",
                       OPINIONS_DTYPE)
    return (
        frame.join(grouped, on="application_id", how="left").join(unit_names, on="unit_id", how="left")
        .with_columns(
            pl.col("expert_opinions").fill_null(pl.lit([], dtype=OPINIONS_DTYPE)),
            pl.col("scope").str.json_decode(SCOPE_DTYPE),
            pl.col("security_controls").str.json_decode(pl.List(pl.String)),
            pl.col("filed_on", "period_start", "period_end").str.to_date(),
        )
        .with_columns(product_ids=pl.col("scope").list.eval(pl.element().struct.field("product_id")))
        .select(DEMAND_APPLICATION_COLUMNS)
        .sort(["filed_at", "application_id"], descending=True)
    )


@view
def demand_applications(db: Source, unit_id: Any = None, statuses: Any = None) -> pl.DataFrame:
    """Demand applications, newest first, with every art. 21 field, the risk assessment, expert opinions
    (art. 6) and the decision or withdrawal (art. 22).

    ``scope`` is a list of ``{product_id, fields}``, ``security_controls`` a list of texts,
    ``expert_opinions`` a list of ``{expert, opinion, recommendation, recorded_by, recorded_at}``
    in the order recorded. ``statuses`` takes a status or a list (``submitted``,
    ``under_review``, ``approved``, ``rejected``, ``withdrawn``).
    """
    with _opened(db) as conn:
        return _applications(conn, {"unit_id": _id(unit_id), "status": _text(statuses)},
                             unit_id is not None or statuses is not None)


@view
def demand_application(db: Source, application_id: Any) -> pl.DataFrame:
    """One demand application, the columns of ``demand_applications`` (empty if unknown)."""
    with _opened(db) as conn:
        return _applications(conn, {"application_id": _id(application_id)}, True)


DEMAND_POST_COLUMNS = (
    "post_id", "unit_id", "unit_name", "title", "description", "data_wanted", "purpose_class", "status", "interest",
    "seconded_by", "response_count", "responses", "posted_by", "posted_at", "close_reason", "closed_by", "closed_at",
    "updated_at",
)


@view
def demand_posts(db: Source) -> pl.DataFrame:
    """The demand board (art. 19-20): every posted need, most needed first (then newest).

    ``interest`` counts the posting unit and every unit that seconded it (``seconded_by``,
    unit ids in the order they seconded); ``responses`` are the operator's answers as
    ``{text, product_id, responded_by, responded_at}`` in the order given.
    """
    with _opened(db) as conn:
        posts = _select(conn, demand_rm.POSTS)
        responses = _select(conn, demand_rm.RESPONSES)
        seconds = _select(conn, demand_rm.SECONDS)
        unit_names = _select(conn, units_rm.UNITS, columns=["unit_id", "name"]).rename({"name": "unit_name"})
    answers = _grouped(responses, "post_id", "response_id", ("text", "product_id", "responded_by", "responded_at"),
                       "responses", RESPONSES_DTYPE)
    seconders = seconds.sort("seconded_id").group_by("post_id", maintain_order=True).agg(
        pl.col("unit_id").alias("seconded_by"))
    return (
        posts.join(answers, on="post_id", how="left").join(seconders, on="post_id", how="left")
        .join(unit_names, on="unit_id", how="left")
        .with_columns(pl.col("responses").fill_null(pl.lit([], dtype=RESPONSES_DTYPE)),
                      pl.col("seconded_by").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select(DEMAND_POST_COLUMNS)
        .sort(["interest", "posted_at", "post_id"], descending=True)
    )


# -- API clients (art. 8, 23, 34) ------------------------------------------------------------------------


@view
def api_clients(db: Source, unit_id: Any = None, status: Any = None) -> pl.DataFrame:
    """A unit's API clients (every unit's without ``unit_id``), oldest first: member, label, scope
    (``subscription_ids``), status and who issued and revoked them. No secret, no hash: the read
    model never holds one."""
    with _opened(db) as conn:
        frame = _select(conn, credentials_rm.CLIENTS, {"unit_id": _id(unit_id), "status": _text(status)})
    return (frame.with_columns(pl.col("subscription_ids").str.json_decode(pl.List(pl.String)))
            .sort("issued_at", "client_id"))


# -- usage (art. 8, 23, 26) ------------------------------------------------------------------------------


@view
def usage_periods(
    db: Source, subscription_id: Any = None, unit_id: Any = None, product_id: Any = None, period: str | None = None
) -> pl.DataFrame:
    """Per subscription and metering period: entitlements of the ledger, use and refusals."""
    with _opened(db) as conn:
        frame = _select(conn, usage_rm.LEDGERS, {"subscription_id": _ids(subscription_id), "unit_id": _id(unit_id),
                                                 "product_id": _id(product_id), "period": period})
    return frame.with_columns(pl.col("queries_used", "rows_used", "refusals").fill_null(0),
                              pl.col("budget_used").fill_null(0.0)).sort("period", "subscription_id")


@view
def usage_daily(
    db: Source,
    subscription_id: Any = None,
    unit_id: Any = None,
    product_id: Any = None,
    *,
    since: date | str | None = None,
    until: date | str | None = None,
) -> pl.DataFrame:
    """Per subscription, product, unit and day (Baotou calendar of the use's ``at``): queries,
    workspace events (sessions opened/closed, kernels; time, not queries), refusals by reason
    (``refused_<reason>``), rows out and privacy budget spent."""
    ledger_where: list[str] = []
    params: list[Any] = []
    for column, value in (("subscription_id", _ids(subscription_id)), ("unit_id", _id(unit_id)),
                          ("product_id", _id(product_id))):
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        ledger_where.append(f"l.{column} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    for op, bound in ((">=", since), ("<=", until)):
        if bound is not None:
            ledger_where.append(f"d.day {op} ?")
            params.append(bound.isoformat() if isinstance(bound, date) else str(bound))
    where = (" WHERE " + " AND ".join(ledger_where)) if ledger_where else ""
    join = "JOIN rm_usage_ledgers l ON l.ledger_id = d.ledger_id"
    types = {**usage_rm.LEDGERS.columns, **usage_rm.DAILY.columns, **usage_rm.REFUSALS.columns}
    with _opened(db) as conn:
        if not all(conn.table_exists(t.name) for t in usage_rm.UsageProjection.tables):
            daily = frame_from_rows(["day", "subscription_id", "unit_id", "product_id", "period", "queries",
                                     "workspace_events", "rows_out", "budget_spent", "refusals", "ledger_id"], [],
                                    types)
            refusals = frame_from_rows(["ledger_id", "day", "reason", "refusals"], [], types)
        else:
            names, rows = conn.query(conn.sql(
                "SELECT d.day, l.subscription_id, l.unit_id, l.product_id, l.period, d.queries, d.workspace_events, "
                "d.rows_out, "
                f"d.budget_spent, d.refusals, d.ledger_id FROM rm_usage_daily d {join}{where} "
                "ORDER BY d.day, l.subscription_id"), params)
            daily = frame_from_rows(names, rows, types)
            names, rows = conn.query(conn.sql(
                f"SELECT r.ledger_id, r.day, r.reason, r.refusals FROM rm_usage_refusals r "
                f"JOIN rm_usage_ledgers l ON l.ledger_id = r.ledger_id "
                f"JOIN rm_usage_daily d ON d.ledger_id = r.ledger_id AND d.day = r.day{where}"), params)
            refusals = frame_from_rows(names, rows, types)
    reasons = list(dict.fromkeys([*REFUSAL_REASONS, *refusals["reason"].unique().sort().to_list()]))
    by_reason = refusals.group_by("ledger_id", "day").agg(
        *(pl.col("refusals").filter(pl.col("reason") == r).sum().alias(f"refused_{r}") for r in reasons)
    )
    return (
        daily.join(by_reason, on=["ledger_id", "day"], how="left")
        .with_columns(pl.col(f"refused_{r}" for r in reasons).fill_null(0).cast(pl.Int64),
                      day=pl.col("day").str.to_date())
        .drop("ledger_id")
        .select("day", "subscription_id", "unit_id", "product_id", "period", "queries", "workspace_events",
                "refusals", *(f"refused_{r}" for r in reasons), "rows_out", "budget_spent")
    )


# -- pricing and revenue (art. 24) ----------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _plan(text: str) -> PricePlan:
    return PricePlan.parse(json.loads(text))


def _charges(rows: Iterable[dict[str, Any]]) -> list[Decimal | None]:
    """The charge of each (subscription, period) row: see ``projections.pricing`` for the rules."""
    charges: list[Decimal | None] = []
    for row in rows:
        if row["plan"] is None:
            charges.append(None)
            continue
        plan = _plan(row["plan"])
        if PurposeClass(row["purpose_class"]).is_free:
            charges.append(Decimal("0.00"))
        elif plan.billing_unit is BillingUnit.PER_CALL:
            charges.append(plan.charge(int(row["queries_used"] or 0)))
        elif plan.billing_unit is BillingUnit.PER_PERIOD:
            charges.append(plan.charge(1))
        else:  # per_product: once, in the subscription's first period of use
            charges.append(plan.charge(1) if row["first_period"] else Decimal("0.00"))
    return charges


def _revenue(conn: Database, product_id: Any = None, subscription_id: Any = None) -> pl.DataFrame:
    ledgers = _select(conn, usage_rm.LEDGERS, {"product_id": _id(product_id),
                                              "subscription_id": _ids(subscription_id)},
                      columns=["ledger_id", "subscription_id", "unit_id", "product_id", "period", "opened_id",
                               "queries_used"])
    narrowed = product_id is not None or subscription_id is not None
    subs = _select(conn, units_rm.SUBSCRIPTIONS, {"subscription_id": _within(ledgers, "subscription_id", narrowed)},
                   columns=["subscription_id", "plan_id", "purpose_class"])
    history = _select(conn, pricing_rm.HISTORY, {"product_id": _within(ledgers, "product_id", narrowed),
                                                 "change": "plan_set"},
                      columns=["product_id", "plan_id", "notification_id", "plan", "stage", "billing_unit"])
    # Plan versions per (product, plan), by notification id: the one in force when the ledger opened.
    versions: dict[tuple[str, str], tuple[list[int], list[dict[str, Any]]]] = defaultdict(lambda: ([], []))
    for row in history.iter_rows(named=True):
        ids, rows = versions[(row["product_id"], row["plan_id"])]
        ids.append(row["notification_id"])
        rows.append(row)
    frame = ledgers.join(subs, on="subscription_id", how="left").with_columns(
        pl.col("queries_used").fill_null(0),
        first_period=pl.col("period") == pl.col("period").min().over("subscription_id"),
    )
    chosen: list[dict[str, Any]] = []
    for row in frame.iter_rows(named=True):
        ids, rows = versions.get((row["product_id"], row["plan_id"]), ([], []))
        at = bisect.bisect_right(ids, row["opened_id"] or 0) - 1
        version = rows[max(at, 0)] if rows else None
        chosen.append({**row, "plan": version and version["plan"], "stage": version and version["stage"],
                       "billing_unit": version and version["billing_unit"],
                       "plan_notification_id": version and version["notification_id"]})
    charges = _charges(chosen)
    return frame.with_columns(
        stage=pl.Series([r["stage"] for r in chosen], dtype=pl.String),
        billing_unit=pl.Series([r["billing_unit"] for r in chosen], dtype=pl.String),
        plan_notification_id=pl.Series([r["plan_notification_id"] for r in chosen], dtype=pl.Int64),
        free=pl.col("purpose_class").is_in([p.value for p in PurposeClass if p.is_free]),
        charge=pl.Series([None if c is None else float(c) for c in charges], dtype=pl.Float64),
        year=pl.col("period").str.slice(0, 4).cast(pl.Int64),
    ).rename({"queries_used": "queries"})


@view
def revenue(
    db: Source, product_id: Any = None, period: str | None = None, *, subscription_id: Any = None
) -> pl.DataFrame:
    """Revenue per subscription and metering period: queries, plan stage and unit, the charge in yuan.

    Charges follow ``projections.pricing``'s rules with ``domain.pricing``'s arithmetic:
    for a per-call plan that is ``DataProduct.quote(plan, purpose, queries)``.
    """
    with _opened(db) as conn:
        frame = _revenue(conn, product_id, subscription_id)
    if period is not None:
        frame = frame.filter(pl.col("period") == period)
    return frame.select(
        "subscription_id", "unit_id", "product_id", "period", "purpose_class", "plan_id", "stage", "billing_unit",
        "queries", "free", "charge", "plan_notification_id",
    ).sort("period", "product_id", "subscription_id")


@view
def revenue_by_period(db: Source, product_id: Any = None) -> pl.DataFrame:
    """Revenue per product and metering period, with queries and paying subscriptions."""
    with _opened(db) as conn:
        frame = _revenue(conn, product_id)
    return frame.group_by("product_id", "period").agg(
        pl.col("charge").sum().round(2).alias("revenue"),
        pl.col("queries").sum().alias("queries"),
        pl.col("subscription_id").n_unique().alias("subscriptions"),
        (pl.col("charge") > 0).sum().cast(pl.Int64).alias("paying_subscriptions"),
    ).sort("product_id", "period")


def _allowed(allowed_max: Decimal | float | str | None) -> float:
    return float(pricing_rm.ALLOWED_MAX_REVENUE_PER_YEAR if allowed_max is None else Decimal(str(allowed_max)))


@view
def allowed_revenue(
    db: Source, year: int | None = None, *, at: datetime | str | None = None,
    allowed_max: Decimal | float | str | None = None,
) -> pl.DataFrame:
    """The operator's revenue in a calendar year against its allowed maximum (one row).

    ``excess`` is revenue above the maximum, which the national rules deduct from the
    next period. ``year`` defaults to the current year (Baotou calendar) at ``at``.
    """
    year = year or _now(at).astimezone(BUSINESS_TZ).year
    maximum = _allowed(allowed_max)
    with _opened(db) as conn:
        frame = _revenue(conn)
    total = float(frame.filter(pl.col("year") == year)["charge"].sum() or 0.0)
    return pl.DataFrame({
        "year": [year], "revenue": [round(total, 2)], "allowed_max": [maximum],
        "share_of_allowed_max": [total / maximum if maximum else None],
        "excess": [round(max(0.0, total - maximum), 2)],
    })


@view
def pricing_review(
    db: Source, year: int | None = None, *, at: datetime | str | None = None,
    allowed_max: Decimal | float | str | None = None,
) -> pl.DataFrame:
    """Per product, for operators: cap, plans on offer (tiers, trial or formal), subscribers by purpose
    class, revenue (all time and in ``year``) and its share of the allowed maximum revenue."""
    year = year or _now(at).astimezone(BUSINESS_TZ).year
    maximum = _allowed(allowed_max)
    with _opened(db) as conn:
        products = _select(conn, catalog_rm.PRODUCTS, columns=[
            "product_id", "name", "status_event", "status_event_id", "version_event_id"])
        caps = _select(conn, pricing_rm.PRODUCTS, columns=["product_id", "cap", "cap_reason", "cap_set_at"])
        plans = _select(conn, pricing_rm.PLANS)
        history = _select(conn, pricing_rm.HISTORY, columns=["product_id", "notification_id", "at"])
        subs = _select(conn, units_rm.SUBSCRIPTIONS, columns=["product_id", "purpose_class", "status"])
        money = _revenue(conn)
    offered = plans.sort("plan_id").group_by("product_id", maintain_order=True).agg(
        pl.len().alias("plan_count"),
        pl.format("{} ({}, {}): {}", "plan_id", "billing_unit", "stage", "tiers").alias("plans"),
        pl.col("stage").unique().sort().alias("stages"),
        pl.col("lowest_unit_price").min().alias("lowest_unit_price"),
    )
    current = subs.filter(pl.col("status").is_in(list(SUBSCRIBED)))
    by_purpose = current.group_by("product_id").agg(
        pl.len().alias("subscribers"),
        *((pl.col("purpose_class") == p).sum().cast(pl.Int64).alias(f"subscribers_{p}") for p in PURPOSE_CLASSES),
    )
    income = money.group_by("product_id").agg(
        pl.col("charge").sum().round(2).alias("revenue_total"),
        pl.col("charge").filter(pl.col("year") == year).sum().round(2).alias("revenue_year"),
    )
    changes = history.group_by("product_id").agg(
        pl.len().alias("price_changes"), pl.col("at").max().alias("last_change_at")
    )
    counts = ["plan_count", "subscribers", "price_changes", *(f"subscribers_{p}" for p in PURPOSE_CLASSES)]
    return (
        products.with_columns(status=_status_expr()).drop("status_event", "status_event_id", "version_event_id")
        .join(caps, on="product_id", how="left").join(offered, on="product_id", how="left")
        .join(by_purpose, on="product_id", how="left").join(income, on="product_id", how="left")
        .join(changes, on="product_id", how="left")
        .with_columns(pl.col(counts).fill_null(0).cast(pl.Int64),
                      pl.col("revenue_total", "revenue_year").fill_null(0.0),
                      year=pl.lit(year), allowed_max=pl.lit(maximum))
        .with_columns(share_of_allowed_max=pl.col("revenue_year") / pl.col("allowed_max"))
        .sort("name")
    )


@view
def price_history(db: Source, product_id: Any) -> pl.DataFrame:
    """Every cap and plan change of a product, in order, with its reason and who made it (art. 24)."""
    with _opened(db) as conn:
        return _select(conn, pricing_rm.HISTORY, {"product_id": _id(product_id)}).drop("product_id")


# -- feedback and quality (art. 11, 17, 26) -----------------------------------------------------------------


def _issue_flags(issues: pl.DataFrame, moment: datetime) -> pl.DataFrame:
    """``overdue`` as ``QualityIssue.is_overdue(at)``: verified, and refused or past the deadline."""
    at = pl.lit(moment).cast(pl.Datetime("us", "UTC"))
    return issues.with_columns(
        open=pl.col("status").is_in(["reported", "verified", "rectified"]),
        overdue=(pl.col("status") == "verified")
        & (pl.col("refusal_reason").fill_null("").str.len_chars().gt(0) | (pl.col("deadline") < at)).fill_null(False),
        days_to_deadline=pl.when(pl.col("status") == "verified")
        .then((pl.col("deadline") - at).dt.total_seconds() / 86_400.0).otherwise(None),
    )


@view
def quality_issues(
    db: Source,
    product_id: Any = None,
    provider_id: Any = None,
    resource_id: Any = None,
    *,
    status: Any = None,
    open_only: bool = False,
    at: datetime | str | None = None,
) -> pl.DataFrame:
    """Quality issues and objections (art. 11, 17) with resource and provider names and an ``overdue``
    flag at ``at`` (default now). A product's issues are those naming it or any of its sources."""
    moment = _now(at)
    with _opened(db) as conn:
        issues = _select(conn, feedback_rm.ISSUES, {"provider_id": _id(provider_id), "resource_id": _id(resource_id),
                                                    "status": _text(status)})
        resources = _select(conn, catalog_rm.RESOURCES, columns=["resource_id", "name"])
        names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"])
        sources = _select(conn, catalog_rm.PRODUCT_SOURCES, {"product_id": _id(product_id)},
                          columns=["product_id", "resource_id"])
    if product_id is not None:
        feeding = sources["resource_id"].to_list()
        issues = issues.filter((pl.col("product_id") == str(product_id)) | pl.col("resource_id").is_in(feeding))
    frame = (
        _issue_flags(issues, moment)
        .join(resources.rename({"name": "resource_name"}), on="resource_id", how="left")
        .join(names.rename({"name": "provider_name"}), on="provider_id", how="left")
    )
    if open_only:
        frame = frame.filter(pl.col("open"))
    return frame.sort("reported_at")


@view
def feedback(db: Source, product_id: Any = None, unit_id: Any = None) -> pl.DataFrame:
    """Every feedback (current content) with how often it was amended and replied to."""
    with _opened(db) as conn:
        rows = _select(conn, feedback_rm.FEEDBACK, {"product_id": _id(product_id), "unit_id": _id(unit_id)})
        narrowed = product_id is not None or unit_id is not None
        history = _select(conn, feedback_rm.HISTORY, {"feedback_id": _within(rows, "feedback_id", narrowed)},
                          columns=["feedback_id", "change"])
    counts = history.group_by("feedback_id").agg(
        (pl.col("change") == "amended").sum().cast(pl.Int64).alias("amendments"),
        (pl.col("change") == "replied").sum().cast(pl.Int64).alias("replies"),
    )
    return (rows.join(counts, on="feedback_id", how="left")
            .with_columns(pl.col("amendments", "replies").fill_null(0)).sort("given_at"))


@view
def ratings_over_time(db: Source, product_id: Any = None) -> pl.DataFrame:
    """Per product and month (Baotou calendar): ratings given or amended that month, their means,
    and the product's running average of current ratings at the month's end."""
    with _opened(db) as conn:
        rows = _select(conn, feedback_rm.FEEDBACK, {"product_id": _id(product_id)},
                       columns=["feedback_id", "product_id"])
        history = _select(conn, feedback_rm.HISTORY,
                          {"feedback_id": _within(rows, "feedback_id", product_id is not None)})
    rated = (
        history.filter(pl.col("change") != "replied").join(rows, on="feedback_id", how="inner")
        .with_columns(month=pl.col("at").dt.convert_time_zone("Asia/Shanghai").dt.strftime("%Y-%m"))
        .sort("notification_id")
    )
    # Running average of each feedback's latest rating, in event order.
    running: list[float] = []
    current: dict[str, dict[str, int]] = defaultdict(dict)
    for product, feedback_id, rating in rated.select("product_id", "feedback_id", "rating").iter_rows():
        current[product][feedback_id] = rating
        values = current[product].values()
        running.append(sum(values) / len(values))
    monthly = rated.with_columns(running_avg=pl.Series(running, dtype=pl.Float64)).group_by(
        "product_id", "month", maintain_order=True
    ).agg(
        pl.len().alias("ratings"),
        pl.col("rating").mean().alias("rating_mean"),
        pl.col("quality_rating").mean().alias("quality_rating_mean"),
        pl.col("running_avg").last().alias("rating_avg_to_date"),
    )
    return monthly.sort("product_id", "month")


@view
def feedback_review(db: Source, product_id: Any = None, *, at: datetime | str | None = None) -> pl.DataFrame:
    """Per product: rating and quality-rating averages, application-status and effect breakdowns (art. 26),
    open and overdue quality issues on its data and the nearest deadline (art. 17)."""
    moment = _now(at)
    with _opened(db) as conn:
        products = _select(conn, catalog_rm.PRODUCTS, {"product_id": _id(product_id)},
                           columns=["product_id", "name"])
        rows = _select(conn, feedback_rm.FEEDBACK, {"product_id": _id(product_id)})
        issues = _select(conn, feedback_rm.ISSUES)
        sources = _select(conn, catalog_rm.PRODUCT_SOURCES, {"product_id": _id(product_id)},
                          columns=["product_id", "resource_id"])
    breakdown = rows.group_by("product_id").agg(
        pl.len().alias("feedback_count"),
        pl.col("rating").mean().alias("rating_avg"),
        pl.col("quality_rating").mean().alias("quality_rating_avg"),
        *((pl.col("quality_rating") == n).sum().cast(pl.Int64).alias(f"quality_{n}") for n in range(1, 6)),
        *((pl.col("application_status") == s.value).sum().cast(pl.Int64).alias(f"application_{s.value}")
          for s in ApplicationStatus),
        *((pl.col("effect") == e.value).sum().cast(pl.Int64).alias(f"effect_{e.value}") for e in Effect),
    )
    flagged = _issue_flags(issues, moment).filter(pl.col("open"))
    by_source = sources.join(flagged, on="resource_id", how="inner").select("product_id", "issue_id", "overdue",
                                                                            "deadline")
    direct = flagged.filter(pl.col("product_id").is_not_null()).select("product_id", "issue_id", "overdue", "deadline")
    per_product = pl.concat([by_source, direct]).unique(["product_id", "issue_id"]).group_by("product_id").agg(
        pl.len().alias("open_issues"),
        pl.col("overdue").sum().cast(pl.Int64).alias("overdue_issues"),
        pl.col("deadline").min().alias("next_deadline"),
    )
    counts = [c for c in breakdown.columns if c not in ("product_id", "rating_avg", "quality_rating_avg")]
    return (
        products.join(breakdown, on="product_id", how="left").join(per_product, on="product_id", how="left")
        .with_columns(pl.col([*counts, "open_issues", "overdue_issues"]).fill_null(0).cast(pl.Int64))
        .sort("name")
    )


# -- contribution incentives (art. 25) ---------------------------------------------------------------------


def _months(period: str) -> list[str]:
    period = validate_period(period)
    year = int(period[:4])
    if len(period) == 4:
        return [f"{year}-{m:02d}" for m in range(1, 13)]
    if "-Q" in period:
        q = int(period[-1])
        return [f"{year}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)]
    return [period]


def _bounds(months: Sequence[str]) -> tuple[datetime, datetime]:
    """Start and (exclusive) end of the months, as instants of the Baotou calendar."""
    first = datetime.strptime(months[0], "%Y-%m").replace(tzinfo=BUSINESS_TZ)
    last = next_period_start(months[-1])
    return first.astimezone(UTC), datetime(last.year, last.month, 1, tzinfo=BUSINESS_TZ).astimezone(UTC)


def _quarter(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


@view
def contributions(db: Source, period: str | None = None, *, at: datetime | str | None = None) -> pl.DataFrame:
    """Per provider and period (art. 25): each score component with value, weight and explanation, the
    weighted score, and the published evaluation of that period if there is one.

    ``period`` is a year, quarter or month (``2025``, ``2025-Q3``, ``2025-07``); without
    it, every quarter with usage, verified issues or a published evaluation. Issues
    count as overdue at the period's end, or at ``at`` (default now) if that is earlier.
    """
    moment = _now(at)
    with _opened(db) as conn:
        names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"])
        sources = _select(conn, catalog_rm.PRODUCT_SOURCES, columns=["product_id", "resource_id", "provider_id"])
        issues = _select(conn, feedback_rm.ISSUES)
        money = _revenue(conn)
        published = _select(conn, contributions_rm.EVALUATIONS)
    if period is not None:
        periods = [validate_period(period)]
    else:
        quarters = {_quarter(m) for m in money["period"].to_list()}
        quarters |= {_quarter(t.astimezone(BUSINESS_TZ).strftime("%Y-%m"))
                     for t in issues["verified_at"].drop_nulls().to_list()}
        quarters |= {p for p in published["period"].to_list() if "-Q" in p}
        periods = sorted(quarters)

    shares = sources.with_columns(share=1.0 / pl.len().over("product_id"))
    rows: list[dict[str, Any]] = []
    for p in periods:
        months = _months(p)
        start, end = _bounds(months)
        cutoff = min(end, moment)
        facts: dict[str, contributions_rm.ProviderFacts] = {}
        used = money.filter(pl.col("period").is_in(months))
        # Per provider and ledger first: a provider with two sources in one product gets two
        # revenue shares but counts the product's subscriptions and queries once.
        per_ledger = shares.join(used, on="product_id", how="inner").group_by("provider_id", "ledger_id").agg(
            pl.col("subscription_id").first(), pl.col("queries").first(),
            (pl.col("charge").fill_null(0.0) * pl.col("share")).sum().alias("revenue"),
        )
        application = per_ledger.group_by("provider_id").agg(
            pl.col("subscription_id").filter(pl.col("queries") > 0).n_unique().alias("subscriptions"),
            pl.col("queries").sum(), pl.col("revenue").sum(),
        )
        got = {r["provider_id"]: r for r in application.iter_rows(named=True)}
        verified = issues.filter(pl.col("verified_at").is_not_null())
        for provider_id in names["provider_id"].to_list():
            own = verified.filter(pl.col("provider_id") == provider_id)
            in_period = own.filter((pl.col("verified_at") >= start) & (pl.col("verified_at") < end))
            fixed = own.filter((pl.col("rectified_at") >= start) & (pl.col("rectified_at") < end))
            still_open = own.filter((pl.col("verified_at") < cutoff)
                                    & (pl.col("rectified_at").is_null() | (pl.col("rectified_at") >= cutoff)))
            overdue = still_open.filter((pl.col("deadline") < cutoff)
                                        | (pl.col("refused_at").is_not_null() & (pl.col("refused_at") < cutoff)))
            days = [(r - v).total_seconds() / 86_400.0
                    for v, r in fixed.select("verified_at", "rectified_at").iter_rows()]
            a = got.get(provider_id, {})
            facts[provider_id] = contributions_rm.ProviderFacts(
                issues_verified=in_period.height, issues_overdue=overdue.height, rectified=fixed.height,
                late_rectifications=int(fixed["rectified_late"].fill_null(False).sum()),
                mean_rectification_days=sum(days) / len(days) if days else None,
                subscriptions=int(a.get("subscriptions") or 0), queries=int(a.get("queries") or 0),
                revenue=round(float(a.get("revenue") or 0.0), 2),
            )
        for provider_id, (components, score) in contributions_rm.score_providers(facts).items():
            f = facts[provider_id]
            row: dict[str, Any] = {"provider_id": provider_id, "period": p, **asdict(f)}
            for c in components:
                row[c.name] = c.value
                row[f"{c.name}_weight"] = c.weight
                row[f"{c.name}_explanation"] = c.explanation
            row["score"] = score
            rows.append(row)
    frame = pl.DataFrame(rows, schema_overrides={"mean_rectification_days": pl.Float64}) if rows else pl.DataFrame(
        schema={"provider_id": pl.String, "period": pl.String, "score": pl.Float64})
    current = published.select("provider_id", "period", pl.col("score").alias("published_score"),
                               pl.col("version").alias("published_version"))
    return (
        frame.join(names.rename({"name": "provider_name"}), on="provider_id", how="left")
        .join(current, on=["provider_id", "period"], how="left")
        .sort("period", "score", descending=[False, True])
    )


@view
def published_contributions(db: Source, provider_id: Any = None, period: str | None = None) -> pl.DataFrame:
    """Published contribution evaluations (art. 25), one row per component of the current version."""
    with _opened(db) as conn:
        evaluations = _select(conn, contributions_rm.EVALUATIONS, {"provider_id": _id(provider_id),
                                                                   "period": period})
        components = _select(conn, contributions_rm.COMPONENTS,
                             {"evaluation_id": _within(evaluations, "evaluation_id",
                                                       provider_id is not None or period is not None)})
        names = _select(conn, catalog_rm.PROVIDERS, columns=["provider_id", "name"])
    return (
        evaluations.drop("components")
        .join(components.rename({"name": "component"}), on=["evaluation_id", "version"], how="left")
        .join(names.rename({"name": "provider_name"}), on="provider_id", how="left")
        .sort("period", "provider_name", "position")
    )


# -- review queues ---------------------------------------------------------------------------------------


QUEUE_COLUMNS = ("queue", "item_id", "subject", "action", "since", "deadline", "overdue", "note", "provider_id",
                 "unit_id")


@view
def queue(
    db: Source,
    role: Any,
    user_id: str | None = None,
    provider_id: Any = None,
    *,
    unit_id: Any = None,
    at: datetime | str | None = None,
) -> pl.DataFrame:
    """What ``role`` must act on next: open items of every queue that role works, overdue first.

    ``user_id`` leaves out items that person may not act on (separation of duties:
    their own product, application or reported issue). Provider staff pass their
    ``provider_id`` and unit admins their ``unit_id`` to see only their organisation's
    items; without it every organisation's items of that role are listed.
    """
    role_name = str(getattr(role, "value", role))
    moment = _now(at)
    with _opened(db) as conn:
        items = _select(conn, queues_rm.ITEMS)
        resources = _select(conn, queues_rm.RESOURCES)
        names = _select(conn, queues_rm.PRODUCTS)
    reopened = pl.col("armed").fill_null(False) & (pl.col("trigger_id").fill_null(0) > pl.col("armed_id").fill_null(0))
    frame = items.filter(pl.col("opened").fill_null(False) | reopened).with_columns(
        since=pl.when(pl.col("opened").fill_null(False)).then(pl.col("since")).otherwise(pl.col("trigger_at")),
        note=pl.when(pl.col("opened").fill_null(False)).then(pl.col("note")).otherwise(pl.lit("new version")),
    )
    frame = frame.filter(pl.col("roles").str.split(",").list.contains(role_name))
    # Supply requests name only the resource: its provider acts, subject from both names.
    supply = pl.col("queue") == "supply_consent"
    frame = (
        frame.with_columns(_resource=pl.col("item_id").str.split("/").list.get(0, null_on_oob=True),
                           _product=pl.col("item_id").str.split("/").list.get(1, null_on_oob=True))
        .join(resources.rename({"resource_id": "_resource", "provider_id": "_provider", "name": "_rname"}),
              on="_resource", how="left")
        .join(names.rename({"product_id": "_product", "name": "_pname"}), on="_product", how="left")
        .with_columns(
            provider_id=pl.when(supply).then(pl.col("_provider")).otherwise(pl.col("provider_id")),
            subject=pl.when(supply).then(pl.format("{} -> {}", pl.col("_rname"), pl.col("_pname")))
            .otherwise(pl.col("subject")),
        )
    )
    if user_id is not None:
        frame = frame.filter(pl.col("excluded_user").is_null() | (pl.col("excluded_user") != user_id))
    if provider_id is not None:
        frame = frame.filter(pl.col("provider_id") == str(provider_id))
    if unit_id is not None:
        frame = frame.filter(pl.col("unit_id") == str(unit_id))
    actions = pl.DataFrame({"queue": list(queues_rm.QUEUES), "action": [a for _, a in queues_rm.QUEUES.values()]})
    at_ = pl.lit(moment).cast(pl.Datetime("us", "UTC"))
    return (
        frame.join(actions, on="queue", how="left")
        .with_columns(overdue=(pl.col("deadline") < at_).fill_null(False))
        .select(QUEUE_COLUMNS)
        .sort(["overdue", "deadline", "since"], descending=[True, False, False], nulls_last=True)
    )


# -- audit trail (art. 8, 18) ----------------------------------------------------------------------------------


@view
def audit(
    db: Source,
    aggregate_id: Any = None,
    user_id: str | None = None,
    *,
    topic: str | None = None,
    aggregate_type: str | None = None,
    event_name: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int = 1000,
    log: EventLog | None = None,
) -> pl.DataFrame:
    """The operation record (``rm_audit_events``): who did what, when; newest first, at most ``limit`` rows.

    Each row's ``attributes`` (the event's JSON less any secret hash) and ``summary``
    (``name=Acme, kind=company``) are read from the event log, for the rows returned: the
    read model indexes the log rather than copying it. The log is the runner's, the
    configured store's, or ``log``; a bare ``Database`` with rows needs ``log``.
    """
    table = audit_rm.EVENTS
    aggregate = _id(aggregate_id)
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("actor_user_id", user_id), ("topic", topic), ("aggregate_type", aggregate_type),
                          ("event_name", event_name)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    for op, bound in ((">=", since), ("<=", until)):
        if bound is not None:
            clauses.append(f"timestamp {op} ?")
            params.append(parse_time(bound).astimezone(UTC).isoformat())
    with _event_log(db, log) as events:
        # An aggregate's events are found through the log's own index on them: the trail keeps
        # no index of its own on ``aggregate_id`` (see ``audit.EVENTS``).
        ids = None if aggregate is None or events is None else events.notification_ids(aggregate)
        if aggregate is not None and ids is None:  # a log that cannot look them up: the column, read in full
            clauses.append("aggregate_id = ?")
            params.append(aggregate)
        with _opened(db) as conn:
            if not conn.table_exists(table.name):
                frame = _empty(table)
            else:
                select = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
                names: list[str] = list(table.column_names)
                rows: list[tuple[Any, ...]] = []
                # Newest first: the aggregate's ids a slice at a time, from its latest, until ``limit`` rows.
                for part in ([[]] if ids is None else _slices_newest_first(ids)):
                    where = [*clauses, f"notification_id IN ({', '.join('?' * len(part))})"] if part else clauses
                    sql = select + (" WHERE " + " AND ".join(where) if where else "")
                    names, found = conn.query(
                        conn.sql(f"{sql} ORDER BY notification_id DESC LIMIT {int(limit) - len(rows)}"), params + part)
                    rows += found
                    if len(rows) >= limit:
                        break
                frame = frame_from_rows(names, rows, table.columns)
        attributes = _event_attributes(events, frame["notification_id"].to_list())
    return frame.with_columns(
        pl.Series("attributes", attributes, dtype=pl.String),
        pl.Series("summary", [None if a is None else audit_rm.summary_of(a) for a in attributes], dtype=pl.String),
    )


@view
def audit_topics(db: Source) -> pl.DataFrame:
    """What the audit trail holds, by kind of event: ``topic``, ``aggregate_type``, ``event_name`` and how many
    ``events``; by aggregate type and event name. Read from the trail's counts, a row per topic, however long
    the trail: what an audit page offers to filter by."""
    with _opened(db) as conn:
        frame = _select(conn, audit_rm.TOPICS)
    parts = [topic_parts(topic) for topic in frame["topic"]]
    return frame.select(
        "topic",
        pl.Series("aggregate_type", [aggregate for aggregate, _ in parts], dtype=pl.String),
        pl.Series("event_name", [name for _, name in parts], dtype=pl.String),
        "events",
    ).sort("aggregate_type", "event_name", "topic")


@view
def audit_actors(db: Source) -> pl.DataFrame:
    """Who acts in the audit trail: each ``user_id`` named by an event and how many ``events`` name them,
    by user id (from the trail's counts, a row per user)."""
    with _opened(db) as conn:
        return _select(conn, audit_rm.ACTORS)


#: Notification ids asked for in one statement by ``audit`` (well below any store's limit on parameters).
AUDIT_IDS_PER_READ = 500


def _slices_newest_first(ids: list[int]) -> Iterator[list[int]]:
    for end in range(len(ids), 0, -AUDIT_IDS_PER_READ):
        yield ids[max(0, end - AUDIT_IDS_PER_READ):end]


@contextmanager
def _event_log(source: Source, log: EventLog | None) -> Iterator[EventLog | None]:
    """The event log behind ``source``: ``log``, the runner's, or the configured store's; None if unknown."""
    if log is None and isinstance(source, Runner):
        log = source.log
    if log is not None or not isinstance(source, Config):
        yield log
        return
    with Runner.open(source, projections=[]) as runner:
        yield runner.log


def _event_attributes(log: EventLog | None, ids: list[int]) -> list[str | None]:
    """Each event's JSON as the audit trail shows it (``audit.shown``), read from the event log, in ``ids`` order."""
    if not ids:
        return []
    if log is None:
        raise ProjectionError("the audit trail reads what each event changed from the event log: "
                              "pass a Runner or Config, or the log (views.audit(db, log=...))")
    states = log.states(ids)
    return [None if state is None else audit_rm.shown(log.codec.text(state))
            for state in map(states.get, ids)]


#: Every view registers itself in ``VIEWS`` as it is defined.
__all__ = ["VIEWS", "Source", "view", *VIEWS]
