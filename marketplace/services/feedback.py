"""Use cases of unit feedback on products (art. 26)."""

from __future__ import annotations

from uuid import UUID

from domain.feedback import ApplicationStatus, Effect, Feedback, FeedbackContent, NotUnitMember
from domain.identity import Actor
from domain.licensing import Subscription, SubscriptionNotActive
from domain.parties import ApplicationUnit
from marketplace import access
from marketplace.services.base import Service


class FeedbackService(Service):
    def give_feedback(
        self, actor: Actor, *, subscription_id: UUID | str, quality_rating: int,
        application_status: ApplicationStatus | str, effect: Effect | str, effect_note: str = "",
        rating: int, text: str = "",
    ) -> UUID:
        """A member of the subscribing unit reports quality, application status and effect.

        Feedback is tied to a subscription so that only units that actually hold the
        product speak about it, and the product and unit are taken from that subscription
        rather than from the caller.
        """
        access.require(actor, "feedback.give")
        subscription = self.get(Subscription, subscription_id)
        access.require_unit(actor, subscription.unit_id)
        self.check_member(actor, subscription.unit_id)
        if not subscription.is_active:
            raise SubscriptionNotActive(
                f"subscription is {subscription.status.value}: only a unit holding an active subscription "
                "gives feedback", subscription=subscription.id,
            )
        content = FeedbackContent.parse(
            quality_rating=quality_rating, application_status=application_status, effect=effect,
            effect_note=effect_note, rating=rating, text=text,
        )
        feedback = Feedback.give(
            unit_id=subscription.unit_id, product_id=subscription.product_id, subscription_id=subscription.id,
            content=content, by=actor, at=self.clock(),
        )
        self.run(lambda: [feedback])
        return feedback.id

    def amend_feedback(
        self, actor: Actor, feedback_id: UUID | str, *, reason: str, quality_rating: int | None = None,
        application_status: ApplicationStatus | str | None = None, effect: Effect | str | None = None,
        effect_note: str | None = None, rating: int | None = None, text: str | None = None,
    ) -> int:
        """The unit corrects its feedback; fields left as None keep their current value."""
        access.require(actor, "feedback.give")

        def command() -> list[Feedback]:
            feedback = self.get(Feedback, feedback_id)
            access.require_unit(actor, feedback.unit_id)
            self.check_member(actor, feedback.unit_id)
            old = feedback.content
            content = FeedbackContent.parse(
                quality_rating=old.quality_rating if quality_rating is None else quality_rating,
                application_status=old.application_status if application_status is None else application_status,
                effect=old.effect if effect is None else effect,
                effect_note=old.effect_note if effect_note is None else effect_note,
                rating=old.rating if rating is None else rating,
                text=old.text if text is None else text,
            )
            feedback.amend(content=content, reason=reason, by=actor, at=self.clock())
            return [feedback]

        return self.run(command)

    def respond_to_feedback(self, actor: Actor, feedback_id: UUID | str, *, reply: str) -> int:
        """The operator answers a unit's feedback (art. 26)."""
        access.require(actor, "feedback.respond")

        def command() -> list[Feedback]:
            feedback = self.get(Feedback, feedback_id)
            feedback.respond(reply=reply, by=actor, at=self.clock())
            return [feedback]

        return self.run(command)

    def check_member(self, actor: Actor, unit_id: UUID) -> None:
        """A unit login alone is not enough: the person must still be on the unit's member list."""
        unit = self.get(ApplicationUnit, unit_id)
        if unit.role_of(actor.user_id) is None:
            raise NotUnitMember(f"{actor.user_id} is not a member of unit {unit.name!r}", unit=unit_id,
                                user=actor.user_id)
