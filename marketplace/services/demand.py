"""Use cases of demand: applications (art. 6, 21-22) and the demand board (art. 19-20).

A demand application is filed by a member of a *qualified* unit; the service reads the
products named in its scope and passes the domain only the fields of those that are
listed, so an application can never ask for a product that is not on the storefront.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

from domain.demand import DemandApplication, DemandPost, RiskLevel, ScopeItem, parse_scope
from domain.errors import PermissionDenied
from domain.identity import Actor
from domain.licensing import ProductNotListed, business_date
from domain.parties import ApplicationUnit, UnitStatus
from domain.pricing import PurposeClass
from domain.products import DataProduct, ExpertRecommendation
from marketplace import access
from marketplace.services.base import Service, ensure_uuid


def check_member(unit: ApplicationUnit, actor: Actor) -> None:
    """A unit role is only as good as the membership behind it: a removed member is refused."""
    if actor.role.is_unit and unit.role_of(actor.user_id) is None:
        raise PermissionDenied(
            f"{actor.user_id} is not a member of unit {unit.name!r}", unit=unit.id, user=actor.user_id
        )


class DemandService(Service):
    # -- demand applications (art. 21-22) ----------------------------------------------------
    def file_application(
        self,
        actor: Actor,
        *,
        unit_id: UUID | str,
        scenario: str,
        purpose: str,
        purpose_class: PurposeClass | str,
        scope: Sequence[Mapping[str, Any] | ScopeItem],
        period_start: date | str,
        period_end: date | str,
        security_controls: Sequence[str],
    ) -> UUID:
        """A member of a qualified unit files an application; returns its id."""
        access.require(actor, "demand.file")
        uid = ensure_uuid("unit_id", unit_id)
        access.require_unit(actor, uid)
        items = parse_scope(scope)
        created: list[UUID] = []

        def command() -> list[DemandApplication]:
            unit = self.get(ApplicationUnit, uid)
            check_member(unit, actor)
            unit.check_qualified()
            application = DemandApplication.file(
                unit_id=unit.id,
                scenario=scenario,
                purpose=purpose,
                purpose_class=purpose_class,
                scope=items,
                period_start=period_start,
                period_end=period_end,
                security_controls=security_controls,
                available=self._listed_fields(items),
                today=business_date(self.clock()),
                by=actor,
            )
            created[:] = [application.id]
            return [application]

        self.run(command)
        return created[0]

    def _listed_fields(self, items: Sequence[ScopeItem]) -> dict[UUID, tuple[str, ...]]:
        """Fields of the listed products among ``items``; unknown and unlisted ones are left out."""
        available: dict[UUID, tuple[str, ...]] = {}
        for item in items:
            if self.exists(item.product_id):
                product = self.get(DataProduct, item.product_id)
                if product.is_listed:
                    available[product.id] = product.field_names
        return available

    def assess_risk(self, actor: Actor, application_id: UUID | str, *, level: RiskLevel | str, notes: str) -> int:
        access.require(actor, "demand.assess")

        def command() -> list[DemandApplication]:
            application = self.get(DemandApplication, application_id)
            application.assess_risk(level=level, notes=notes, by=actor)
            return [application]

        return self.run(command)

    def add_expert_opinion(
        self,
        actor: Actor,
        application_id: UUID | str,
        *,
        expert: str,
        opinion: str,
        recommendation: ExpertRecommendation | str,
    ) -> int:
        """Record the expert committee's opinion on a major or difficult application (art. 6)."""
        access.require(actor, "expert.opine")

        def command() -> list[DemandApplication]:
            application = self.get(DemandApplication, application_id)
            application.add_expert_opinion(expert=expert, opinion=opinion, recommendation=recommendation, by=actor)
            return [application]

        return self.run(command)

    def decide_application(self, actor: Actor, application_id: UUID | str, *, approved: bool, reason: str) -> int:
        access.require(actor, "demand.decide")

        def command() -> list[DemandApplication]:
            application = self.get(DemandApplication, application_id)
            application.decide(approved=approved, reason=reason, by=actor)
            return [application]

        return self.run(command)

    def withdraw(self, actor: Actor, application_id: UUID | str, *, reason: str) -> int:
        """A member of the filing unit takes the application back before it is decided."""
        access.require(actor, "demand.file")

        def command() -> list[DemandApplication]:
            application = self.get(DemandApplication, application_id)
            access.require_unit(actor, application.unit_id)
            check_member(self.get(ApplicationUnit, application.unit_id), actor)
            application.withdraw(reason=reason, by=actor)
            return [application]

        return self.run(command)

    # -- demand board (art. 19-20) ---------------------------------------------------------------
    def post_demand(
        self,
        actor: Actor,
        *,
        unit_id: UUID | str,
        title: str,
        description: str,
        data_wanted: str,
        purpose_class: PurposeClass | str,
    ) -> UUID:
        """A unit, qualified or still in qualification, posts a need no product meets yet."""
        access.require(actor, "demand.post")
        uid = ensure_uuid("unit_id", unit_id)
        access.require_unit(actor, uid)
        created: list[UUID] = []

        def command() -> list[DemandPost]:
            unit = self.get(ApplicationUnit, uid)
            check_member(unit, actor)
            unit.check_status("post a need for", UnitStatus.QUALIFIED, UnitStatus.PENDING_QUALIFICATION)
            post = DemandPost.post(
                unit_id=unit.id, title=title, description=description, data_wanted=data_wanted,
                purpose_class=purpose_class, by=actor,
            )
            created[:] = [post.id]
            return [post]

        self.run(command)
        return created[0]

    def respond_to_post(
        self, actor: Actor, post_id: UUID | str, *, text: str, product_id: UUID | str | None = None
    ) -> int:
        """The operator answers a post, optionally pointing at a listed product."""
        access.require(actor, "demand.respond")
        pid = None if product_id is None else ensure_uuid("product_id", product_id)

        def command() -> list[DemandPost]:
            post = self.get(DemandPost, post_id)
            if pid is not None:
                product = self.get(DataProduct, pid)
                if not product.is_listed:
                    raise ProductNotListed(
                        f"product {product.name!r} is not listed; point the unit at a listed product",
                        product=pid,
                    )
            post.respond(text=text, product_id=pid, by=actor)
            return [post]

        return self.run(command)

    def second_post(self, actor: Actor, post_id: UUID | str) -> int:
        """A member of another unit says "we need this too"; counted once per unit."""
        access.require(actor, "demand.post")

        def command() -> list[DemandPost]:
            post = self.get(DemandPost, post_id)
            if actor.unit_id is None:
                raise PermissionDenied("only a member of a unit seconds a post", post=post.id, user=actor.user_id)
            unit = self.get(ApplicationUnit, actor.unit_id)
            check_member(unit, actor)
            unit.check_status("second a post for", UnitStatus.QUALIFIED, UnitStatus.PENDING_QUALIFICATION)
            post.second(unit_id=unit.id, by=actor)
            return [post]

        return self.run(command)

    def close_post(self, actor: Actor, post_id: UUID | str, *, reason: str) -> int:
        """The posting unit or the operator closes a post."""
        access.require(actor, "demand.close_post")

        def command() -> list[DemandPost]:
            post = self.get(DemandPost, post_id)
            access.require_unit(actor, post.unit_id)
            if actor.role.is_unit:
                check_member(self.get(ApplicationUnit, post.unit_id), actor)
            post.close(reason=reason, by=actor)
            return [post]

        return self.run(command)
