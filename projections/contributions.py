"""Contribution incentives (art. 25): published evaluations, and the explainable scoring behind them.

Art. 25 judges each participant's contribution by data quality, application and the
value realised. This module holds two things:

- the published ``ContributionEvaluation`` events as tables (every version, with its
  components), which are the official record;
- the scoring the operator can compare them with: ``WEIGHTS`` and the rules below turn
  facts from the other read models into three components per provider and period,
  each shown with its value, weight and a sentence saying how it was reached.
  ``views.contributions`` gathers the facts; the arithmetic is here, in one place.

Scoring rules (all values 0..100):

- ``data_quality``: 100 minus penalties (``QUALITY_PENALTIES``) for issues verified
  against the provider's resources in the period, issues overdue at the period's end
  (past their deadline, or refused, and not rectified), rectifications made late, and
  each day of mean rectification time (verification to rectification) in the period;
- ``application``: ``SUBSCRIPTION_POINTS`` per subscription used in the period plus one
  per query, on every product built from the provider's resources (a query uses all of
  a product's sources, so each of their providers is credited), relative to the best
  provider of the period (= 100);
- ``value_realised``: revenue (``views.revenue``) of those products in the period, split
  equally among each product's sources, relative to the best provider (= 100).

The score is the weighted sum, as ``domain.incentives.weighted_score`` computes it for
a published evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.incentives import ScoreComponent, weighted_score
from projections.base import (
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    HandlerProjection,
    Insert,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)

#: Component weights (sum 1): quality first, as art. 25 lists it, then application, then value.
WEIGHTS: dict[str, float] = {"data_quality": 0.4, "application": 0.35, "value_realised": 0.25}
#: Points deducted from 100 for data quality.
QUALITY_PENALTIES: dict[str, float] = {
    "verified_issue": 10.0,
    "overdue_issue": 20.0,
    "late_rectification": 5.0,
    "rectification_day": 1.0,
}
#: One subscription in use weighs as much as this many queries in the application component.
SUBSCRIPTION_POINTS = 50

EVALUATIONS = Table(
    "rm_contributions_evaluations",
    {
        "evaluation_id": TEXT,
        "provider_id": TEXT,
        "period": TEXT,
        "version": INT,
        "score": FLOAT,
        "components": TEXT,
        "reason": TEXT,
        "published_by": TEXT,
        "published_at": TIMESTAMP,
        "revised_by": TEXT,
        "revised_at": TIMESTAMP,
    },
    key=("evaluation_id",),
    indexes=(("provider_id",),),
)

COMPONENTS = Table(
    "rm_contributions_components",
    {
        "evaluation_id": TEXT,
        "version": INT,
        "position": INT,
        "name": TEXT,
        "value": FLOAT,
        "weight": FLOAT,
        "explanation": TEXT,
    },
    key=("evaluation_id", "version", "position"),
)



def _components(e: Recorded, components: Sequence[Mapping[str, Any]]) -> list[Op]:
    # An evaluation has only Published and Revised events, so its aggregate version is
    # the version number of the evaluation (ContributionEvaluation.history numbering).
    return [
        Insert(COMPONENTS.name, (e.originator_id, e.originator_version, i, c["name"], float(c["value"]),
                                 float(c["weight"]), c["explanation"]))
        for i, c in enumerate(components)
    ]


def _published(e: Recorded) -> Sequence[Op]:
    d = e.data
    return [
        Upsert(EVALUATIONS.name, {
            "evaluation_id": e.originator_id, "provider_id": d["provider_id"], "period": d["period"],
            "version": e.originator_version, "score": float(d["score"]),
            "components": json.dumps(d["components"], ensure_ascii=False), "reason": "published",
            "published_by": acting_user(d), "published_at": d["at"], "revised_by": None, "revised_at": None,
        }),
        *_components(e, d["components"]),
    ]


def _revised(e: Recorded) -> Sequence[Op]:
    d = e.data
    return [
        Update(EVALUATIONS.name, {"evaluation_id": e.originator_id}, {
            "version": e.originator_version, "score": float(d["score"]),
            "components": json.dumps(d["components"], ensure_ascii=False), "reason": d["reason"],
            "revised_by": acting_user(d), "revised_at": d["at"],
        }),
        *_components(e, d["components"]),
    ]


_E = "domain.incentives:ContributionEvaluation."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _E + "Published": _published,
    _E + "Revised": _revised,
}


class ContributionsProjection(HandlerProjection):
    """Published contribution evaluations (art. 25), every version with its components."""

    name = "contributions"
    version = 1
    handlers = HANDLERS
    tables = (EVALUATIONS, COMPONENTS)


# -- scoring (pure arithmetic over facts gathered by views.contributions) -----------------------------


@dataclass(frozen=True)
class ProviderFacts:
    """What one provider did in one period, as the other read models record it."""

    issues_verified: int = 0
    issues_overdue: int = 0
    rectified: int = 0
    late_rectifications: int = 0
    mean_rectification_days: float | None = None
    subscriptions: int = 0
    queries: int = 0
    revenue: float = 0.0


def quality_component(f: ProviderFacts) -> ScoreComponent:
    p = QUALITY_PENALTIES
    days = f.mean_rectification_days or 0.0
    parts = [
        (f.issues_verified * p["verified_issue"], f"{f.issues_verified} issue(s) verified"),
        (f.issues_overdue * p["overdue_issue"], f"{f.issues_overdue} overdue"),
        (f.late_rectifications * p["late_rectification"], f"{f.late_rectifications} rectified late"),
        (days * p["rectification_day"], f"{days:.1f} day(s) mean rectification"),
    ]
    value = max(0.0, min(100.0, 100.0 - sum(points for points, _ in parts)))
    explanation = "100 - " + ", ".join(f"{text} (-{points:g})" for points, text in parts) + f" = {value:g}"
    return ScoreComponent("data_quality", round(value, 4), WEIGHTS["data_quality"], explanation)


def application_raw(f: ProviderFacts) -> float:
    return float(SUBSCRIPTION_POINTS * f.subscriptions + f.queries)


def relative(raw: float, best: float) -> float:
    """``raw`` as a share of the best provider's, 0..100 (0 when nobody did anything)."""
    return round(100.0 * raw / best, 4) if best > 0 else 0.0


def score_providers(facts: Mapping[str, ProviderFacts]) -> dict[str, tuple[list[ScoreComponent], float]]:
    """Components and weighted score of every provider of one period (relative components need all of them)."""
    best_application = max((application_raw(f) for f in facts.values()), default=0.0)
    best_revenue = max((f.revenue for f in facts.values()), default=0.0)
    scored: dict[str, tuple[list[ScoreComponent], float]] = {}
    for provider, f in facts.items():
        raw = application_raw(f)
        components = [
            quality_component(f),
            ScoreComponent(
                "application", relative(raw, best_application), WEIGHTS["application"],
                f"{f.subscriptions} subscription(s) x {SUBSCRIPTION_POINTS} + {f.queries} quer(ies) = {raw:g}, "
                f"best provider {best_application:g}",
            ),
            ScoreComponent(
                "value_realised", relative(f.revenue, best_revenue), WEIGHTS["value_realised"],
                f"revenue attributed {f.revenue:.2f} yuan, best provider {best_revenue:.2f}",
            ),
        ]
        scored[provider] = (components, round(weighted_score(components), 4))
    return scored
