"""Use cases of contribution evaluation (art. 25)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from domain.catalog import Provider
from domain.identity import Actor
from domain.incentives import ContributionEvaluation, ScoreComponent, validate_period
from marketplace import access
from marketplace.services.base import Service, ensure_uuid

Components = Sequence[ScoreComponent | Mapping[str, Any]]


class IncentivesService(Service):
    def publish_evaluation(
        self, actor: Actor, *, provider_id: UUID | str, period: str, components: Components
    ) -> UUID:
        """Publish a provider's contribution score for a period; one evaluation per provider and period."""
        access.require(actor, "incentives.publish")
        provider = self.get(Provider, ensure_uuid("provider_id", provider_id))
        period = validate_period(period)
        evaluation = ContributionEvaluation.publish(
            provider_id=provider.id, period=period, components=components, by=actor, at=self.clock()
        )
        self.create(
            evaluation, f"the contribution of {provider.name!r} for {period} is published already; revise it instead"
        )
        return evaluation.id

    def revise_evaluation(
        self, actor: Actor, evaluation_id: UUID | str, *, components: Components, reason: str
    ) -> int:
        """Publish a corrected version of an evaluation; earlier versions stay in its history."""
        access.require(actor, "incentives.publish")

        def command() -> list[ContributionEvaluation]:
            evaluation = self.get(ContributionEvaluation, evaluation_id)
            evaluation.revise(components=components, reason=reason, by=actor, at=self.clock())
            return [evaluation]

        return self.run(command)

    def evaluation_id(self, provider_id: UUID | str, period: str) -> UUID:
        """The id of a provider's evaluation for ``period`` (whether or not it is published)."""
        return ContributionEvaluation.create_id(ensure_uuid("provider_id", provider_id), validate_period(period))
