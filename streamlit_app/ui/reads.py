"""The read side of the UI: every list and table a page shows comes from here.

Why one module: the read models of issue 3 (``projections/views.py``) are being written
alongside this UI. Until they land, this module answers from the one read model the
runner already keeps, the audit trail (``rm_audit_events``: which aggregates exist, at
which version), and loads each aggregate once per version through the application
services' ``get`` (cached here, so a page render with 1,000 products reads one index
query and no events once warm). Pages only see plain rows and Polars frames, so moving a
function onto ``projections.views`` later changes this file and no page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import polars as pl
from eventsourcing.domain import Aggregate

from domain.catalog import CatalogResource, Provider
from domain.credentials import ApiClient
from domain.demand import DemandApplication, DemandPost
from domain.feedback import Feedback
from domain.incentives import ContributionEvaluation
from domain.licensing import Subscription
from domain.parties import ApplicationUnit, StaffMember
from domain.products import DataProduct
from domain.quality import QualityIssue
from domain.usage import UsageLedger
from marketplace.bootstrap import Marketplace
from marketplace.sandbox.policy import policy_for
from projections.runner import Runner

A = TypeVar("A", bound=Aggregate)
AUDIT = "rm_audit_events"


@dataclass(frozen=True)
class Persona:
    """Someone the development sign-in offers: a user id and the organisation and role the store records."""

    user_id: str
    role: str
    label: str
    unit_id: str | None = None
    provider_id: str | None = None


class ReadSide:
    def __init__(self, mp: Marketplace, runner: Runner) -> None:
        self.mp = mp
        self.runner = runner
        self._cache: dict[str, tuple[int, Aggregate]] = {}
        self._lock = threading.Lock()

    # -- the index: which aggregates exist at which version -------------------------------------
    def _versions(self, aggregate_type: str) -> dict[str, int]:
        db = self.runner.db
        if not db.table_exists(AUDIT):
            return {}
        _, rows = db.query(
            db.sql(f"SELECT aggregate_id, MAX(version) FROM {AUDIT} WHERE aggregate_type = ? GROUP BY aggregate_id"),
            (aggregate_type,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def all(self, cls: type[A]) -> list[A]:
        """Every aggregate of ``cls``, each loaded once per version."""
        out: list[A] = []
        for key, version in self._versions(cls.__name__).items():
            with self._lock:
                cached = self._cache.get(key)
            if cached is None or cached[0] != version:
                aggregate = self.mp.parties.get(cls, key)
                with self._lock:
                    self._cache[key] = (aggregate.version, aggregate)
                out.append(aggregate)
            else:
                out.append(cached[1])  # type: ignore[arg-type]
        return out

    def one(self, cls: type[A], key: UUID | str) -> A:
        return self.mp.parties.get(cls, key)

    # -- storefront ------------------------------------------------------------------------------
    def provider_names(self) -> dict[UUID, str]:
        return {p.id: p.name for p in self.all(Provider)}

    def ratings(self) -> dict[UUID, tuple[float, int]]:
        """Per product: average overall rating and number of ratings."""
        sums: dict[UUID, list[int]] = {}
        for f in self.all(Feedback):
            sums.setdefault(f.product_id, []).append(f.content.rating)
        return {k: (sum(v) / len(v), len(v)) for k, v in sums.items()}

    def subscribers(self) -> dict[UUID, int]:
        counts: dict[UUID, int] = {}
        for s in self.all(Subscription):
            if s.is_active:
                counts[s.product_id] = counts.get(s.product_id, 0) + 1
        return counts

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
        """Products on the storefront with their facets; free for public welfare is always true (art. 24)."""
        names = self.provider_names()
        ratings = self.ratings()
        subs = self.subscribers()
        rows = []
        for p in self.all(DataProduct):
            if listed_only and not p.is_listed:
                continue
            prices = [t.unit_price for plan in p.plans.values() for t in plan.tiers]
            rating = ratings.get(p.id, (None, 0))
            rows.append({
                "product_id": str(p.id),
                "name": p.name,
                "category": p.category,
                "providers": ", ".join(sorted({names.get(s.provider_id, "?") for s in p.sources})),
                "grade": p.grade.value,
                "delivery": ", ".join(m.value for m in p.delivery_modes),
                "lowest_price": float(min(prices)) if prices else None,
                "price_cap": float(p.price_cap) if p.price_cap is not None else None,
                "free_for_public_welfare": True,
                "rating": rating[0],
                "ratings": rating[1],
                "subscribers": subs.get(p.id, 0),
                "status": p.status.value,
            })
        frame = pl.DataFrame(rows, schema=CATALOG_SCHEMA)
        if search.strip():
            needle = search.strip().lower()
            text = (pl.col("name") + " " + pl.col("category") + " " + pl.col("providers")).str.to_lowercase()
            frame = frame.filter(text.str.contains(needle, literal=True))
        for column, chosen in (("category", categories), ("grade", grades)):
            chosen = list(chosen)
            if chosen:
                frame = frame.filter(pl.col(column).is_in(chosen))
        for column, chosen in (("providers", providers), ("delivery", delivery)):
            for value in chosen:
                frame = frame.filter(pl.col(column).str.contains(value, literal=True))
        if max_price is not None:
            frame = frame.filter(pl.col("lowest_price").is_null() | (pl.col("lowest_price") <= max_price))
        return frame.sort("name")

    def policy_words(self, product: DataProduct) -> dict[str, Any]:
        """The product's sandbox policy, as the sandbox itself describes it."""
        return policy_for(product.grade, product.delivery_modes, product.fields).describe()

    def data_dictionary(self, product: DataProduct) -> pl.DataFrame:
        return pl.DataFrame(
            [{"field": f.name, "type": getattr(f.dtype, "value", str(f.dtype)), "description": f.description,
              "personal": f.personal}
             for f in product.fields],
            schema={"field": pl.String, "type": pl.String, "description": pl.String, "personal": pl.Boolean},
        )

    def sample_statistics(self, product: DataProduct) -> dict[str, Any]:
        """What the registered version tells (rows, fields, when): statistics, never rows (art. 22)."""
        latest = product.latest_version
        return {
            "versions": len(product.versions),
            "rows": latest.row_count if latest else 0,
            "fields": len(product.fields),
            "personal fields (never output)": len(product.personal_fields),
            "latest version registered": str(latest.registered_at)[:10] if latest else "—",
        }

    # -- parties ---------------------------------------------------------------------------------
    def units(self, status: str | None = None) -> list[ApplicationUnit]:
        units = self.all(ApplicationUnit)
        return [u for u in units if status is None or u.status.value == status]

    def personas(self) -> list[Persona]:
        """Everyone the store records, in each role it records for them (for the dev sign-in)."""
        out = [
            Persona(s.user_id, role.value, f"{s.user_id} — {s.name}, {role.value}")
            for s in sorted(self.all(StaffMember), key=lambda s: s.user_id)
            for role in s.roles
        ]
        for p in sorted(self.all(Provider), key=lambda p: p.name):
            out += [Persona(u, "provider_staff", f"{u} — provider staff of {p.name}", provider_id=str(p.id))
                    for u in p.staff]
        for u in sorted(self.all(ApplicationUnit), key=lambda u: u.name):
            out += [Persona(user, role.value, f"{user} — {role.value} of {u.name} ({u.status.value})",
                            unit_id=str(u.id)) for user, role in u.members.items()]
        return out

    def memberships(self, user_id: str) -> list[Persona]:
        """The roles the store records for ``user_id`` (what a signed-in person may act as)."""
        return [p for p in self.personas() if p.user_id == user_id]

    # -- demand and licensing ------------------------------------------------------------------
    def applications(self, *, unit_id: UUID | None = None, statuses: Iterable[str] = ()) -> list[DemandApplication]:
        chosen = set(statuses)
        apps = [a for a in self.all(DemandApplication)
                if (unit_id is None or a.unit_id == unit_id) and (not chosen or a.status.value in chosen)]
        return sorted(apps, key=lambda a: (a.filed_on, str(a.id)), reverse=True)

    def subscriptions(self, *, unit_id: UUID | None = None, application_id: UUID | None = None) -> list[Subscription]:
        return [s for s in self.all(Subscription)
                if (unit_id is None or s.unit_id == unit_id)
                and (application_id is None or s.application_id == application_id)]

    def ledgers(self, subscription_ids: Iterable[UUID]) -> pl.DataFrame:
        wanted = set(subscription_ids)
        rows = [{"subscription_id": str(g.subscription_id), "period": g.period, "queries": g.queries_used,
                 "rows": g.rows_used, "budget": float(g.budget_used), "refusals": g.refusals}
                for g in self.all(UsageLedger) if g.subscription_id in wanted]
        return pl.DataFrame(rows, schema={"subscription_id": pl.String, "period": pl.String, "queries": pl.Int64,
                                          "rows": pl.Int64, "budget": pl.Float64, "refusals": pl.Int64})

    def clients(self, unit_id: UUID) -> list[ApiClient]:
        return [c for c in self.all(ApiClient) if c.unit_id == unit_id]

    def posts(self) -> list[DemandPost]:
        return sorted(self.all(DemandPost), key=lambda p: -p.interest)

    # -- catalog, quality, feedback, incentives ------------------------------------------------
    def resources(self, provider_id: UUID | None = None) -> list[CatalogResource]:
        return [r for r in self.all(CatalogResource) if provider_id is None or r.provider_id == provider_id]

    def issues(self, *, provider_id: UUID | None = None, statuses: Iterable[str] = ()) -> list[QualityIssue]:
        chosen = set(statuses)
        return [i for i in self.all(QualityIssue)
                if (provider_id is None or i.provider_id == provider_id) and (not chosen or i.status.value in chosen)]

    def feedback(self, product_id: UUID | None = None) -> list[Feedback]:
        return [f for f in self.all(Feedback) if product_id is None or f.product_id == product_id]

    def evaluations(self, provider_id: UUID | None = None) -> list[ContributionEvaluation]:
        return [e for e in self.all(ContributionEvaluation) if provider_id is None or e.provider_id == provider_id]

    def products(self) -> list[DataProduct]:
        return sorted(self.all(DataProduct), key=lambda p: p.name)

    # -- audit -----------------------------------------------------------------------------------
    def audit(
        self, *, user: str = "", aggregate_type: str = "", event: str = "", limit: int = 500
    ) -> pl.DataFrame:
        """The audit trail read model, newest first, filtered."""
        db = self.runner.db
        if not db.table_exists(AUDIT):
            return pl.DataFrame()
        clauses, params = [], []
        for column, value in (("actor_user_id", user), ("aggregate_type", aggregate_type), ("event_name", event)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        columns, rows = db.query(
            db.sql(f"SELECT notification_id, timestamp, aggregate_type, event_name, actor_user_id, actor_role, "
                   f"aggregate_id, summary FROM {AUDIT}{where} ORDER BY notification_id DESC LIMIT {int(limit)}"),
            tuple(params),
        )
        return pl.DataFrame([dict(zip(columns, (str(v) if v is not None else None for v in r), strict=True))
                             for r in rows], schema=dict.fromkeys(columns, pl.String))

    def audit_facets(self) -> tuple[list[str], list[str]]:
        db = self.runner.db
        if not db.table_exists(AUDIT):
            return [], []
        _, types = db.query(f"SELECT DISTINCT aggregate_type FROM {AUDIT} ORDER BY 1")
        _, users = db.query(f"SELECT DISTINCT actor_user_id FROM {AUDIT} WHERE actor_user_id IS NOT NULL ORDER BY 1")
        return [str(t[0]) for t in types], [str(u[0]) for u in users]


CATALOG_SCHEMA: dict[str, Any] = {
    "product_id": pl.String, "name": pl.String, "category": pl.String, "providers": pl.String,
    "grade": pl.String, "delivery": pl.String, "lowest_price": pl.Float64, "price_cap": pl.Float64,
    "free_for_public_welfare": pl.Boolean, "rating": pl.Float64, "ratings": pl.Int64, "subscribers": pl.Int64,
    "status": pl.String,
}


def money(value: Decimal | float | None) -> str:
    return "—" if value is None else f"¥{Decimal(str(value)):,.2f}"


def today() -> date:
    return datetime.now(UTC).date()
