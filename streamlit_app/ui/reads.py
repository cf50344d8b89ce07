"""The read side of the UI: every list and table a page shows comes from here.

Pages read the read models through ``projections.views`` (Polars frames kept by the
projection runner), so a storefront render with 1,000 products is a handful of indexed
queries, not 1,000 aggregate loads. Pages only see plain rows and frames from this
module, so a view's columns changing touches this file and no page.

Every read is a view: no page loads an aggregate to show it. Demand applications, the
demand board and API clients come as lists of plain rows (dicts with the view's columns),
since the pages pick one of them to act on; the rest as frames.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import polars as pl

from marketplace.bootstrap import Marketplace
from marketplace.sandbox.policy import policy_for
from projections import views
from projections.runner import Runner


@dataclass(frozen=True)
class Persona:
    """Someone the development sign-in offers: a user id and the organisation and role the store records."""

    user_id: str
    role: str
    label: str
    unit_id: str | None = None
    provider_id: str | None = None


CATALOG_SCHEMA: dict[str, Any] = {
    "product_id": pl.String, "name": pl.String, "category": pl.String, "providers": pl.String,
    "grade": pl.String, "delivery": pl.String, "lowest_price": pl.Float64, "price_cap": pl.Float64,
    "free_for_public_welfare": pl.Boolean, "rating": pl.Float64, "ratings": pl.Int64, "subscribers": pl.Int64,
    "status": pl.String,
}


def first(frame: pl.DataFrame) -> dict[str, Any] | None:
    """The first row of a frame as a dict (``None`` if empty)."""
    return None if frame.is_empty() else frame.row(0, named=True)


class ReadSide:
    def __init__(self, mp: Marketplace, runner: Runner) -> None:
        self.mp = mp
        self.runner = runner
        self._lock = threading.Lock()
        self._storefront: tuple[tuple[tuple[str, int], ...], pl.DataFrame] | None = None

    @property
    def db(self) -> Runner:
        """What the views read from (the runner's read-model database)."""
        return self.runner

    # -- storefront (views.catalog, product_detail, data_dictionary, ...) -----------------------
    def catalog(
        self,
        *,
        search: str = "",
        providers: Iterable[str] = (),
        categories: Iterable[str] = (),
        grades: Iterable[str] = (),
        delivery: Iterable[str] = (),
        max_price: float | None = None,
        listed_only: bool = True,
    ) -> pl.DataFrame:
        """Products on the storefront with their facets; free for public welfare is always true (art. 24).

        Search, grade and delivery go to ``views.catalog``; several categories or
        providers at once (the view takes one) and the price ceiling are applied here.
        """
        grades, delivery, categories, providers = list(grades), list(delivery), list(categories), list(providers)
        unfiltered = not (search.strip() or grades or delivery or categories or providers or max_price is not None)
        if unfiltered and listed_only:
            # The whole storefront is what every visitor meets first: reuse it while no read model has
            # moved (positions are per projection, in the read-model database, so other processes'
            # catch-ups count too).
            positions = tuple((s.name, s.position) for s in self.runner.status())
            with self._lock:
                cached = self._storefront
            if cached is not None and cached[0] == positions:
                return cached[1]
            frame = self._catalog(search, grades, delivery, categories, providers, max_price, listed_only)
            with self._lock:
                self._storefront = (positions, frame)
            return frame
        return self._catalog(search, grades, delivery, categories, providers, max_price, listed_only)

    def _catalog(self, search: str, grades: list[str], delivery: list[str], categories: list[str],
                 providers: list[str], max_price: float | None, listed_only: bool) -> pl.DataFrame:
        frame = views.catalog(self.db, search=search.strip() or None, grade=grades or None,
                              delivery=delivery or None, listed=True if listed_only else None)
        frame = frame.select(
            "product_id", "name", "category",
            pl.col("providers").list.join(", ").fill_null("").alias("providers"),
            "grade", pl.col("delivery_modes").list.join(", ").fill_null("").alias("delivery"),
            pl.col("lowest_price").cast(pl.Float64), pl.col("price_cap").cast(pl.Float64),
            "free_for_public_welfare", pl.col("rating_avg").cast(pl.Float64).alias("rating"),
            pl.col("rating_count").alias("ratings"), pl.col("subscriber_count").alias("subscribers"), "status",
        ).cast(CATALOG_SCHEMA)  # type: ignore[arg-type]
        if categories:
            frame = frame.filter(pl.col("category").is_in(categories))
        for value in providers:
            frame = frame.filter(pl.col("providers").str.contains(value, literal=True))
        if max_price is not None:
            frame = frame.filter(pl.col("lowest_price").is_null() | (pl.col("lowest_price") <= max_price))
        return frame.sort("name")

    def product(self, product_id: UUID | str) -> dict[str, Any] | None:
        """One product as the read models hold it (status, providers, prices, ratings, subscribers)."""
        return first(views.product_detail(self.db, str(product_id)))

    def data_dictionary(self, product_id: UUID | str) -> pl.DataFrame:
        return views.data_dictionary(self.db, str(product_id)).select(
            pl.col("name").alias("field"), pl.col("dtype").alias("type"), "description", "personal")

    def sample_statistics(self, product_id: UUID | str) -> dict[str, Any]:
        """What the registered version tells (rows, fields, when): statistics, never rows (art. 22)."""
        row = first(views.sample_statistics(self.db, str(product_id))) or {}
        registered = row.get("registered_at")
        return {
            "versions": int(row.get("version") or 0),
            "rows": int(row.get("row_count") or 0),
            "fields": int(row.get("column_count") or 0),
            "personal fields (never output)": int(row.get("personal_column_count") or 0),
            "latest version registered": str(registered)[:10] if registered else "—",
        }

    def policy_words(self, product: dict[str, Any], dictionary: pl.DataFrame) -> dict[str, Any]:
        """The product's sandbox policy, as the sandbox itself describes it (from the read model's fields)."""
        fields = [(r["field"], r["type"], bool(r["personal"])) for r in dictionary.iter_rows(named=True)]
        return policy_for(product["grade"], product["delivery_modes"] or [], fields).describe()

    def plans(self, product_id: UUID | str) -> list[dict[str, Any]]:
        """The plans currently on offer: each plan id whose latest change in the price history is a
        ``plan_set`` (a plan retired since is no longer offered)."""
        history = views.price_history(self.db, str(product_id))
        if history.is_empty():
            return []
        current = (history.filter(pl.col("change").is_in(["plan_set", "plan_retired"])).sort("notification_id")
                   .unique("plan_id", keep="last", maintain_order=True)
                   .filter(pl.col("change") == "plan_set").sort("plan_id"))
        return [json.loads(r["plan"]) for r in current.iter_rows(named=True) if r["plan"]]

    def showcases(self, product_id: UUID | str | None = None) -> pl.DataFrame:
        return views.showcases(self.db, None if product_id is None else str(product_id))

    def expert_opinions(self, product_id: UUID | str | None = None) -> pl.DataFrame:
        """The expert committee's opinions on products (art. 6), as recorded, with product name and status."""
        return views.product_expert_opinions(self.db, None if product_id is None else str(product_id))

    def feedback(self, product_id: UUID | str | None = None, unit_id: UUID | str | None = None) -> pl.DataFrame:
        return views.feedback(self.db, None if product_id is None else str(product_id),
                              None if unit_id is None else str(unit_id))

    def product_names(self) -> dict[str, str]:
        frame = views.catalog(self.db)
        return dict(zip(frame["product_id"].to_list(), frame["name"].to_list(), strict=True))

    # -- parties (views.units, unit_members, providers) ------------------------------------------
    def providers(self) -> pl.DataFrame:
        return views.providers(self.db)

    def provider_names(self) -> dict[str, str]:
        frame = self.providers()
        return dict(zip(frame["provider_id"].to_list(), frame["name"].to_list(), strict=True))

    def units(self, status: str | None = None) -> pl.DataFrame:
        return views.units(self.db, status=status)

    def unit(self, unit_id: UUID | str) -> dict[str, Any] | None:
        return first(self.units().filter(pl.col("unit_id") == str(unit_id)))

    def unit_members(self, unit_id: UUID | str) -> pl.DataFrame:
        return views.unit_members(self.db, str(unit_id))

    def personas(self) -> list[Persona]:
        """Everyone the store records, in each role it records for them (for the dev sign-in).

        Staff in the roles they hold (``views.staff``), providers' staff (``views.provider_staff``)
        and unit members (``views.unit_members``), all from the units read model.
        """
        out = [
            Persona(s["user_id"], role, f"{s['user_id']} — {s['name']}, {role}")
            for s in views.staff(self.db).iter_rows(named=True)
            for role in s["roles"]
        ]
        out += [
            Persona(p["user_id"], "provider_staff",
                    f"{p['user_id']} — provider staff of {p['provider_name'] or p['provider_id']}",
                    provider_id=p["provider_id"])
            for p in views.provider_staff(self.db).iter_rows(named=True)
        ]
        units = self.units()
        members = views.unit_members(self.db, None)
        joined = members.join(units.select("unit_id", pl.col("name").alias("unit_name"),
                                           pl.col("status").alias("unit_status")), on="unit_id", how="inner")
        for row in joined.sort("unit_name", "user_id").iter_rows(named=True):
            out.append(Persona(row["user_id"], row["role"],
                               f"{row['user_id']} — {row['role']} of {row['unit_name']} ({row['unit_status']})",
                               unit_id=row["unit_id"]))
        return out

    def memberships(self, user_id: str) -> list[Persona]:
        """The roles the store records for ``user_id`` (what a signed-in person may act as)."""
        return [p for p in self.personas() if p.user_id == user_id]

    # -- subscriptions and usage (views.unit_subscriptions, usage_periods, usage_daily) ---------
    def subscriptions(self, *, unit_id: UUID | str | None = None, status: Any = None) -> pl.DataFrame:
        """Subscriptions with signatures, entitlements and what is left this period."""
        return views.unit_subscriptions(self.db, None if unit_id is None else str(unit_id), status=status)

    def usage_periods(self, *, unit_id: UUID | str | None = None) -> pl.DataFrame:
        return views.usage_periods(self.db, unit_id=None if unit_id is None else str(unit_id))

    def usage_daily(self, *, unit_id: UUID | str | None = None) -> pl.DataFrame:
        return views.usage_daily(self.db, unit_id=None if unit_id is None else str(unit_id))

    # -- operator: pricing, feedback, incentives, queues (views.*) -------------------------------
    def pricing_review(self) -> pl.DataFrame:
        return views.pricing_review(self.db)

    def plan_ids(self) -> list[str]:
        """Plan ids on offer across products (from ``pricing_review``'s "plan_id (unit, stage): tiers")."""
        plans = self.pricing_review()["plans"].explode().drop_nulls().to_list()
        return sorted({str(p).split(" (", 1)[0] for p in plans})

    def allowed_revenue(self) -> dict[str, Any]:
        return first(views.allowed_revenue(self.db)) or {}

    def revenue_by_period(self) -> pl.DataFrame:
        return views.revenue_by_period(self.db)

    def price_history(self, product_id: UUID | str) -> pl.DataFrame:
        return views.price_history(self.db, str(product_id))

    def feedback_review(self) -> pl.DataFrame:
        return views.feedback_review(self.db)

    def ratings_over_time(self) -> pl.DataFrame:
        return views.ratings_over_time(self.db)

    def contributions(self, period: str | None = None) -> pl.DataFrame:
        return views.contributions(self.db, period)

    def published_contributions(self, provider_id: UUID | str | None = None) -> pl.DataFrame:
        return views.published_contributions(self.db, None if provider_id is None else str(provider_id))

    def queue(self, role: Any, *, user_id: str | None = None, provider_id: UUID | str | None = None,
              unit_id: UUID | str | None = None) -> pl.DataFrame:
        return views.queue(self.db, role, user_id, None if provider_id is None else str(provider_id),
                           unit_id=None if unit_id is None else str(unit_id))

    # -- catalog entries, supply, quality (views.catalog_resources, supply_consents, quality_issues)
    def resources(self, provider_id: UUID | str | None = None, status: Any = None) -> pl.DataFrame:
        return views.catalog_resources(self.db, provider=None if provider_id is None else str(provider_id),
                                       status=status)

    def resource_versions(self, resource_id: UUID | str) -> pl.DataFrame:
        return views.resource_versions(self.db, str(resource_id))

    def supply(self, provider_id: UUID | str | None = None, status: Any = None) -> pl.DataFrame:
        return views.supply_consents(self.db, provider_id=None if provider_id is None else str(provider_id),
                                     status=status)

    def issues(self, *, provider_id: UUID | str | None = None, status: Any = None) -> pl.DataFrame:
        return views.quality_issues(self.db, provider_id=None if provider_id is None else str(provider_id),
                                    status=status)

    # -- audit (views.audit) ---------------------------------------------------------------------
    def audit(
        self, *, user: str = "", aggregate_type: str = "", event: str = "", limit: int = 500
    ) -> pl.DataFrame:
        """The audit trail read model, newest first, filtered: who, when, what, and the summary of what changed
        before the ids a reader needs less often."""
        frame = views.audit(self.db, user_id=user or None, aggregate_type=aggregate_type or None,
                            event_name=event or None, limit=limit)
        return frame.select("timestamp", "actor_user_id", "actor_role", "aggregate_type", "event_name", "summary",
                            "aggregate_id", "version", "notification_id")

    def audit_facets(self) -> tuple[list[str], list[str]]:
        """Aggregate types and actors for the audit filters, from the trail's counts (``views.audit_topics``,
        ``views.audit_actors``): a few rows, not the whole trail."""
        types = views.audit_topics(self.db)["aggregate_type"].unique().sort().to_list()
        return types, views.audit_actors(self.db)["user_id"].to_list()

    # -- demand and credentials (views.demand_applications, demand_posts, api_clients) ---------
    def applications(self, *, unit_id: UUID | str | None = None,
                     statuses: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Demand applications (rows of ``views.demand_applications``), newest first."""
        chosen = list(statuses)
        return views.demand_applications(self.db, unit_id=None if unit_id is None else str(unit_id),
                                         statuses=chosen or None).to_dicts()

    def application(self, application_id: UUID | str) -> dict[str, Any] | None:
        return first(views.demand_application(self.db, str(application_id)))

    def posts(self) -> list[dict[str, Any]]:
        """The demand board (rows of ``views.demand_posts``), most needed first."""
        return views.demand_posts(self.db).to_dicts()

    def clients(self, unit_id: UUID | str | None = None, *, status: str | None = None) -> list[dict[str, Any]]:
        """A unit's API clients (every unit's without ``unit_id``, for the operator's revocation on misuse,
        art. 34): rows of ``views.api_clients`` (no secret, no hash), oldest first."""
        return views.api_clients(self.db, None if unit_id is None else str(unit_id), status=status).to_dicts()


def money(value: Decimal | float | str | None) -> str:
    return "—" if value is None else f"¥{Decimal(str(value)):,.2f}"


def today() -> date:
    return datetime.now(UTC).date()
