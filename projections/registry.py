"""Every read model the runner keeps: add a projection here (one line) to have it built.

The CLI, the runner and ``read_frame`` look projections up here by name.
"""

from __future__ import annotations

from projections.audit import AuditProjection
from projections.base import Projection, ProjectionError
from projections.catalog import CatalogProjection
from projections.contributions import ContributionsProjection
from projections.credentials import CredentialsProjection
from projections.demand import DemandProjection
from projections.feedback import FeedbackProjection
from projections.pricing import PricingProjection
from projections.queues import QueuesProjection
from projections.units import UnitsProjection
from projections.usage import UsageProjection

PROJECTIONS: list[Projection] = [
    AuditProjection(),
    CatalogProjection(),
    UnitsProjection(),
    UsageProjection(),
    PricingProjection(),
    FeedbackProjection(),
    ContributionsProjection(),
    QueuesProjection(),
    DemandProjection(),
    CredentialsProjection(),
]


def all_projections() -> list[Projection]:
    return list(PROJECTIONS)


def get(name: str) -> Projection:
    for projection in PROJECTIONS:
        if projection.name == name:
            return projection
    known = ", ".join(p.name for p in PROJECTIONS)
    raise ProjectionError(f"no projection named {name!r}; known: {known}")
