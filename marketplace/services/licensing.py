"""Use cases of subscriptions (art. 22, 23, 34).

Activation is automatic: the signature that completes both agreements (art. 22) also
activates the subscription, in the same save. There is no separate "activate" command
because there is nothing left to decide once both sides have signed both agreements;
``Subscription.activate`` stays in the domain and refuses with ``AgreementsNotSigned``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from domain.demand import DemandApplication
from domain.errors import AlreadyExists, PermissionDenied
from domain.identity import Actor, Role
from domain.licensing import AgreementKind, Entitlements, Subscription, SubscriptionStatus, parse_entitlements
from domain.parties import ApplicationUnit
from domain.products import DataProduct, DeliveryMode
from marketplace import access
from marketplace.services.base import Service, ensure_uuid

#: The delivery method written into both agreements (art. 22 "方式"), per delivery mode.
DELIVERY_METHODS: dict[DeliveryMode, str] = {
    DeliveryMode.SANDBOX_AGGREGATE: "aggregate results of sandbox queries on the Shuyun platform",
    DeliveryMode.ROW_LEVEL_FILE: "row-level files downloaded from the Shuyun platform",
}


def delivery_method(product: DataProduct) -> str:
    """The agreements' method: how this product's data reaches the unit."""
    return "; ".join(DELIVERY_METHODS.get(mode, mode.value) for mode in product.delivery_modes)


class LicensingService(Service):
    def create_subscription(
        self,
        actor: Actor,
        *,
        application_id: UUID | str,
        product_id: UUID | str,
        plan_id: str,
        entitlements: Entitlements | Mapping[str, Any],
    ) -> UUID:
        """Create the subscription and link it to its unit in one save; returns its id.

        One per application and product (deterministic id): a second attempt is ``AlreadyExists``.
        """
        access.require(actor, "subscription.create")
        aid = ensure_uuid("application_id", application_id)
        pid = ensure_uuid("product_id", product_id)
        ents = parse_entitlements(entitlements)
        subscription_id = Subscription.create_id(aid, pid)

        def command() -> list[Subscription | ApplicationUnit]:
            if self.exists(subscription_id):
                raise AlreadyExists(
                    f"application {aid} already has a subscription to product {pid}", subscription=subscription_id
                )
            application = self.get(DemandApplication, aid)
            unit = self.get(ApplicationUnit, application.unit_id)
            product = self.get(DataProduct, pid)
            subscription = Subscription.create(
                application=application,
                unit=unit,
                product_id=product.id,
                product_listed=product.is_listed,
                plan_ids=tuple(product.plans),
                plan_id=plan_id,
                entitlements=ents,
                method=delivery_method(product),
                by=actor,
            )
            unit.link_subscription(subscription.id)
            return [subscription, unit]

        self.run(command)
        return subscription_id

    def sign_agreement(self, actor: Actor, subscription_id: UUID | str, *, kind: AgreementKind | str) -> int:
        """A unit admin signs for the unit, an operator admin for the operator.

        The signature that completes both agreements activates the subscription.
        """
        access.require(actor, "subscription.sign_unit" if actor.role.is_unit else "subscription.sign_operator")

        def command() -> list[Subscription]:
            subscription = self.get(Subscription, subscription_id)
            access.require_unit(actor, subscription.unit_id)
            unit = self.get(ApplicationUnit, subscription.unit_id)
            if actor.role.is_unit and unit.role_of(actor.user_id) is not Role.UNIT_ADMIN:
                raise PermissionDenied(
                    f"{actor.user_id} is not a unit admin of {unit.name!r}", unit=unit.id, user=actor.user_id
                )
            unit.check_qualified()
            subscription.sign(kind=kind, by=actor)
            if not subscription.missing_signatures:
                subscription.activate(by=actor)
            return [subscription]

        return self.run(command)

    def suspend_subscription(self, actor: Actor, subscription_id: UUID | str, *, reason: str) -> int:
        """Art. 34: stop use at once while misuse is investigated."""
        access.require(actor, "subscription.suspend")

        def command() -> list[Subscription]:
            subscription = self.get(Subscription, subscription_id)
            subscription.suspend(reason=reason, by=actor)
            return [subscription]

        return self.run(command)

    def reinstate_subscription(self, actor: Actor, subscription_id: UUID | str, *, reason: str) -> int:
        """Only for a qualified unit: a suspended unit's subscriptions stay suspended."""
        access.require(actor, "subscription.suspend")

        def command() -> list[Subscription]:
            subscription = self.get(Subscription, subscription_id)
            subscription.check_status("reinstate", SubscriptionStatus.SUSPENDED)
            self.get(ApplicationUnit, subscription.unit_id).check_qualified()
            subscription.reinstate(reason=reason, by=actor)
            return [subscription]

        return self.run(command)

    def terminate_subscription(self, actor: Actor, subscription_id: UUID | str, *, reason: str) -> int:
        """Art. 34: end a subscription for misuse, resale or leak."""
        access.require(actor, "subscription.terminate")

        def command() -> list[Subscription]:
            subscription = self.get(Subscription, subscription_id)
            subscription.terminate(reason=reason, by=actor)
            return [subscription]

        return self.run(command)

    def expire_due(self, actor: Actor, subscription_ids: Iterable[UUID | str]) -> list[UUID]:
        """Expire those of ``subscription_ids`` whose term is over, in one save; returns their ids.

        The caller (a scheduled job reading a projection) passes candidates; ones not yet
        due or already ended are skipped, an unknown id refuses the whole batch.
        """
        access.require(actor, "subscription.expire")
        if isinstance(subscription_ids, (str, bytes)):
            subscription_ids = [subscription_ids]
        ids = [ensure_uuid(f"subscription_ids[{i}]", s) for i, s in enumerate(subscription_ids)]
        expired: list[UUID] = []

        def command() -> list[Subscription]:
            at = self.clock()
            due = [s for s in (self.get(Subscription, sid) for sid in ids) if s.is_due_to_expire(at)]
            for subscription in due:
                subscription.expire(at=at, by=actor)
            expired[:] = [s.id for s in due]
            return due

        self.run(command)
        return expired

    def change_entitlements(
        self,
        actor: Actor,
        subscription_id: UUID | str,
        *,
        entitlements: Entitlements | Mapping[str, Any],
        reason: str,
    ) -> int:
        access.require(actor, "subscription.entitle")
        ents = parse_entitlements(entitlements)

        def command() -> list[Subscription]:
            subscription = self.get(Subscription, subscription_id)
            subscription.change_entitlements(entitlements=ents, reason=reason, by=actor)
            return [subscription]

        return self.run(command)
