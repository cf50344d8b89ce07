"""Use cases of usage metering (art. 8, 23, 26).

Every use goes through ``record_use``: it authorises the person as a current member of
the subscribing unit, checks the use against the subscription and the month's ledger,
and records it. A use the rules refuse is recorded as a refusal on the ledger and saved
before the error is raised again, so refused attempts are as traceable as granted ones
(art. 8) while consuming nothing. Malformed input (``InvalidInput``) is not a use at all
and leaves the store unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from domain.errors import DomainError, PermissionDenied
from domain.identity import Actor
from domain.licensing import Subscription
from domain.parties import ApplicationUnit
from domain.usage import USE_REFUSALS, Remaining, UsageKind, UsageLedger, period_of
from marketplace import access
from marketplace.services.base import Service, ensure_uuid


@dataclass(frozen=True)
class UseReceipt:
    """What the caller learns of a recorded use: ids, whether it counted, what is left."""

    use_id: str
    subscription_id: UUID
    ledger_id: UUID
    period: str
    counted: bool  # False when the same use_id had already been counted (a retry)
    remaining: Remaining
    notification_id: int


class UsageService(Service):
    def record_use(
        self,
        actor: Actor,
        *,
        subscription_id: UUID | str,
        kind: UsageKind | str,
        product_version: int | str,
        query: Mapping[str, Any],
        fields: Sequence[str],
        rows_out: int,
        budget_spent: float,
        use_id: str | None = None,
    ) -> UseReceipt:
        """Meter one use; pass ``use_id`` to make a retry safe (it is then counted once).

        Raises the rule's refusal (``QuotaExceeded``, ``PrivacyBudgetExhausted``,
        ``OutOfScope``, ``OutsideTerm``, ``SubscriptionNotActive``) after saving it on the ledger.
        """
        access.require(actor, "usage.use")
        sid = ensure_uuid("subscription_id", subscription_id)
        use = use_id if use_id is not None else str(uuid4())
        outcome: dict[str, Any] = {}

        def command() -> list[UsageLedger]:
            outcome.clear()
            at = self.clock()
            subscription = self._authorised(actor, sid)
            ledger = self._ledger(subscription, period_of(at), actor)
            try:
                counted = ledger.record_use(
                    use_id=use, user_id=actor.user_id, kind=kind, product_version=product_version,
                    query=query, fields=fields, rows_out=rows_out, budget_spent=budget_spent,
                    at=at, terms=subscription.terms, by=actor,
                )
            except USE_REFUSALS as error:
                ledger.record_refusal(
                    use_id=use, user_id=actor.user_id, query=query, reason=error.code,
                    message=error.message, at=at, by=actor,
                )
                outcome["refused"] = error
                return [ledger]
            outcome.update(counted=counted, ledger=ledger, subscription=subscription)
            return [ledger]

        notification_id = self.run(command)
        if "refused" in outcome:
            refusal: DomainError = outcome["refused"]
            raise refusal
        ledger: UsageLedger = outcome["ledger"]
        subscription: Subscription = outcome["subscription"]
        return UseReceipt(
            use_id=use,
            subscription_id=sid,
            ledger_id=ledger.id,
            period=ledger.period,
            counted=outcome["counted"],
            remaining=ledger.remaining(subscription.entitlements),
            notification_id=notification_id,
        )

    def remaining(self, actor: Actor, subscription_id: UUID | str) -> Remaining:
        """What the subscription has left this month (Baotou calendar)."""
        access.require(actor, "usage.view")
        subscription = self.get(Subscription, subscription_id)
        access.require_unit(actor, subscription.unit_id)
        period = period_of(self.clock())
        ledger_id = UsageLedger.create_id(subscription.id, period)
        if not self.exists(ledger_id):
            return Remaining.full(subscription.entitlements, period)
        return self.get(UsageLedger, ledger_id).remaining(subscription.entitlements)

    # -- helpers -----------------------------------------------------------------------------------
    def _authorised(self, actor: Actor, subscription_id: UUID) -> Subscription:
        """The subscription, if ``actor`` is a current member of its unit (art. 23: no third party)."""
        subscription = self.get(Subscription, subscription_id)
        access.require_unit(actor, subscription.unit_id)
        if actor.role.is_unit:
            unit = self.get(ApplicationUnit, subscription.unit_id)
            if unit.role_of(actor.user_id) is None:
                raise PermissionDenied(
                    f"{actor.user_id} is no longer a member of unit {unit.name!r}", unit=unit.id, user=actor.user_id
                )
        return subscription

    def _ledger(self, subscription: Subscription, period: str, actor: Actor) -> UsageLedger:
        """The period's ledger, opened on first use, following the subscription's entitlements."""
        ledger_id = UsageLedger.create_id(subscription.id, period)
        if self.exists(ledger_id):
            ledger = self.get(UsageLedger, ledger_id)
            if ledger.entitlements != subscription.entitlements:
                ledger.adopt_entitlements(entitlements=subscription.entitlements, by=actor)
            return ledger
        return UsageLedger.open(
            subscription_id=subscription.id, period=period, unit_id=subscription.unit_id,
            product_id=subscription.product_id, entitlements=subscription.entitlements, by=actor,
        )
