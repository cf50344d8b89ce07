"""Feedback of application units on the products they use (art. 26).

Art. 26 asks units to feed back the quality of the data, the status of their
application and its effect, so that the operator can report to the bureau and the
state-assets office. Only a member of a unit holding a subscription to the product may
give feedback (the service checks the subscription; the domain checks that the actor
acts for the unit the feedback is recorded for). The unit may amend what it said, with
a reason, and the operator may reply; nothing is ever overwritten silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput, PermissionDenied, parse_enum, require_text
from domain.identity import Actor

TEXT_MAX = 4000
EFFECT_NOTE_MAX = 2000
REPLY_MAX = 4000
REASON_MAX = 1000


class ApplicationStatus(Enum):
    PLANNED = "planned"
    IN_DEVELOPMENT = "in_development"
    IN_PRODUCTION = "in_production"
    DISCONTINUED = "discontinued"


class Effect(Enum):
    NONE = "none"
    MINOR = "minor"
    SIGNIFICANT = "significant"
    TRANSFORMATIVE = "transformative"


def parse_rating(field: str, value: object) -> int:
    """A rating is a whole number of stars from 1 to 5."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be a whole number from 1 to 5, got {value!r}")
    if not 1 <= value <= 5:
        raise InvalidInput(field, f"must be from 1 to 5, got {value}")
    return value


def require_time(field: str, value: object) -> datetime:
    """Times on events are timezone-aware so that deadlines compare across servers."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, f"must be a timezone-aware datetime, got {value!r}")
    return value


@dataclass(frozen=True)
class FeedbackContent:
    """What a unit says about a product: the three things art. 26 names plus an overall rating."""

    quality_rating: int
    application_status: ApplicationStatus
    effect: Effect
    effect_note: str
    rating: int
    text: str

    @classmethod
    def parse(
        cls, *, quality_rating: object, application_status: object, effect: object, effect_note: object,
        rating: object, text: object = "",
    ) -> FeedbackContent:
        """Validate every field, naming the one that is wrong; enum values may be strings."""
        effect_value = parse_enum("effect", Effect, effect)
        if effect_note is None:
            effect_note = ""
        if effect_value is Effect.NONE:
            # No effect needs no description, but what is written is still bounded.
            note = _optional_text("effect_note", effect_note, EFFECT_NOTE_MAX)
        else:
            # A claimed effect must say what it was: the bureau's report is built from these.
            note = require_text("effect_note", effect_note, min_length=5, max_length=EFFECT_NOTE_MAX)
        return cls(
            quality_rating=parse_rating("quality_rating", quality_rating),
            application_status=parse_enum("application_status", ApplicationStatus, application_status),
            effect=effect_value,
            effect_note=note,
            rating=parse_rating("rating", rating),
            text=_optional_text("text", "" if text is None else text, TEXT_MAX),
        )


@dataclass(frozen=True)
class Reply:
    """An operator's reply to a feedback."""

    text: str
    user_id: str
    at: datetime


def _optional_text(field: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    text = value.strip()
    if len(text) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters, got {len(text)}")
    return text


class Feedback(Aggregate):
    """One feedback of a unit on a product it subscribes to (art. 26)."""

    @classmethod
    def give(
        cls, *, unit_id: UUID, product_id: UUID, subscription_id: UUID, content: FeedbackContent,
        by: Actor, at: datetime,
    ) -> Feedback:
        check_acts_for_unit(by, unit_id)
        if not isinstance(content, FeedbackContent):
            raise InvalidInput("content", "must be parsed with FeedbackContent.parse")
        return cls(
            unit_id=unit_id, product_id=product_id, subscription_id=subscription_id, content=content,
            by=by, at=require_time("at", at),
        )

    @event("Given")
    def __init__(
        self, *, unit_id: UUID, product_id: UUID, subscription_id: UUID, content: FeedbackContent,
        by: Actor, at: datetime,
    ) -> None:
        self.unit_id = unit_id
        self.product_id = product_id
        self.subscription_id = subscription_id
        self.content = content
        self.given_by = by.user_id
        self.given_at = at
        self.amendments: list[str] = []
        self.replies: list[Reply] = []
        self.updated_at = at

    # -- amend ------------------------------------------------------------------------------
    def amend(self, *, content: FeedbackContent, reason: str, by: Actor, at: datetime) -> None:
        """The unit corrects what it said; the reason is kept beside the change."""
        check_acts_for_unit(by, self.unit_id, feedback_id=self.id)
        if not isinstance(content, FeedbackContent):
            raise InvalidInput("content", "must be parsed with FeedbackContent.parse")
        reason = require_text("reason", reason, max_length=REASON_MAX)
        at = require_time("at", at)
        if content == self.content:
            raise InvalidInput("content", "the amendment changes nothing", feedback=self.id)
        self._amended(content=content, reason=reason, by=by, at=at)

    @event("Amended")
    def _amended(self, *, content: FeedbackContent, reason: str, by: Actor, at: datetime) -> None:
        self.content = content
        self.amendments.append(reason)
        self.updated_at = at

    # -- respond ----------------------------------------------------------------------------
    def respond(self, *, reply: str, by: Actor, at: datetime) -> None:
        """The operator answers; several replies over time are kept in order."""
        if not by.role.is_operator:
            raise PermissionDenied(
                f"only operator staff reply to feedback, not {by.role.value}", feedback=self.id, user=by.user_id
            )
        self._responded(reply=require_text("reply", reply, max_length=REPLY_MAX), by=by,
                        at=require_time("at", at))

    @event("Responded")
    def _responded(self, *, reply: str, by: Actor, at: datetime) -> None:
        self.replies.append(Reply(text=reply, user_id=by.user_id, at=at))
        self.updated_at = at

    @property
    def quality_rating(self) -> int:
        return self.content.quality_rating

    @property
    def rating(self) -> int:
        return self.content.rating


def check_acts_for_unit(actor: Actor, unit_id: UUID, **ids: object) -> None:
    """Feedback speaks for a unit: only its own members give or amend it."""
    if not actor.role.is_unit or actor.unit_id != unit_id:
        raise NotUnitMember(
            f"{actor} does not act for unit {unit_id}", unit=unit_id, user=actor.user_id, **ids
        )


class NotUnitMember(PermissionDenied):
    code = "not_unit_member"
