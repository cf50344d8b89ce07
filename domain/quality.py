"""Quality issues and objections on source data (art. 11, 17).

Art. 11 names the dimensions of source data quality (completeness, consistency,
accuracy, timeliness); art. 17 asks for monitoring, error correction and objection
handling: problems found are fed back and the providing body rectifies them. The
workflow here:

    reported -> verified (deadline set) -> rectified -> closed
             \\-> rejected (objection not upheld)

Verification is done by the operator (product manager or compliance reviewer) and
never by whoever reported the issue (separation of duties, art. 15-16). Only staff of
the provider that holds the resource rectify it. A rectification after the deadline is
accepted but recorded as late; the operator may extend the deadline once, with a reason.
A provider may also refuse to rectify (with a reason): the issue then stays open and
counts as overdue, because a verified error is not made right by refusing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput, InvalidState, PermissionDenied, SeparationOfDuties, parse_enum, require_text
from domain.feedback import require_time
from domain.identity import Actor, Role

DESCRIPTION_MIN = 10
TEXT_MAX = 4000
MIN_DEADLINE_DAYS = 1
MAX_DEADLINE_DAYS = 90

#: Roles that verify, reject and close quality issues (art. 17: the operator handles objections).
VERIFIER_ROLES = frozenset({Role.PRODUCT_MANAGER, Role.COMPLIANCE_REVIEWER})


class QualityDimension(Enum):
    COMPLETENESS = "completeness"
    CONSISTENCY = "consistency"
    ACCURACY = "accuracy"
    TIMELINESS = "timeliness"


class IssueStatus(Enum):
    REPORTED = "reported"
    VERIFIED = "verified"
    REJECTED = "rejected"
    RECTIFIED = "rectified"
    CLOSED = "closed"


def parse_days(field: str, value: object) -> int:
    """A deadline or extension in whole days, 1..90."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be a whole number of days, got {value!r}")
    if not MIN_DEADLINE_DAYS <= value <= MAX_DEADLINE_DAYS:
        raise InvalidInput(field, f"must be from {MIN_DEADLINE_DAYS} to {MAX_DEADLINE_DAYS} days, got {value}")
    return value


def parse_version(value: object) -> int | None:
    """The resource version that carries the correction, if the provider published one."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("version", f"must be a resource version number >= 1, got {value!r}")
    return value


class QualityIssue(Aggregate):
    """A reported problem with the quality of a catalog resource (art. 11, 17)."""

    @classmethod
    def report(
        cls, *, resource_id: UUID, provider_id: UUID, dimension: QualityDimension | str, description: str,
        evidence: str, by: Actor, at: datetime, product_id: UUID | None = None,
    ) -> QualityIssue:
        if not isinstance(resource_id, UUID):
            raise InvalidInput("resource_id", "is required")
        if not isinstance(provider_id, UUID):
            raise InvalidInput("provider_id", "is required")
        if product_id is not None and not isinstance(product_id, UUID):
            raise InvalidInput("product_id", "must be an id")
        return cls(
            resource_id=resource_id,
            product_id=product_id,
            provider_id=provider_id,
            dimension=parse_enum("dimension", QualityDimension, dimension),
            description=require_text("description", description, min_length=DESCRIPTION_MIN, max_length=TEXT_MAX),
            evidence=require_text("evidence", evidence, max_length=TEXT_MAX),
            by=by,
            at=require_time("at", at),
        )

    @event("Reported")
    def __init__(
        self, *, resource_id: UUID, product_id: UUID | None, provider_id: UUID, dimension: QualityDimension,
        description: str, evidence: str, by: Actor, at: datetime,
    ) -> None:
        self.resource_id = resource_id
        self.product_id = product_id
        self.provider_id = provider_id
        self.dimension = dimension
        self.description = description
        self.evidence = evidence
        self.reported_by = by.user_id
        self.reported_at = at
        self.status = IssueStatus.REPORTED
        self.verified_by: str | None = None
        self.deadline: datetime | None = None
        self.deadline_extended = False
        self.extension_reason = ""
        self.rejection_reason = ""
        self.refusal_reason = ""
        self.rectification_note = ""
        self.rectified_version: int | None = None
        self.rectified_at: datetime | None = None
        self.rectified_late = False
        self.closing_note = ""

    # -- verification (operator) -------------------------------------------------------------
    def verify(self, *, deadline_days: int, by: Actor, at: datetime) -> None:
        """Uphold the report and give the provider ``deadline_days`` to rectify."""
        self.check_status("verify", IssueStatus.REPORTED)
        self.check_verifier(by, "verify")
        days = parse_days("deadline_days", deadline_days)
        at = require_time("at", at)
        self._verified(deadline=at + timedelta(days=days), by=by, at=at)

    @event("Verified")
    def _verified(self, *, deadline: datetime, by: Actor, at: datetime) -> None:
        self.status = IssueStatus.VERIFIED
        self.verified_by = by.user_id
        self.deadline = deadline

    def reject(self, *, reason: str, by: Actor, at: datetime) -> None:
        """The objection is not upheld; the reason tells the reporter why."""
        self.check_status("reject", IssueStatus.REPORTED)
        self.check_verifier(by, "reject")
        self._rejected(reason=require_text("reason", reason, max_length=TEXT_MAX), by=by, at=require_time("at", at))

    @event("Rejected")
    def _rejected(self, *, reason: str, by: Actor, at: datetime) -> None:
        self.status = IssueStatus.REJECTED
        self.rejection_reason = reason

    def extend_deadline(self, *, days: int, reason: str, by: Actor, at: datetime) -> None:
        """Once only: a second extension would let a deadline slide forever."""
        self.check_status("extend the deadline of", IssueStatus.VERIFIED)
        if not by.role.is_operator:
            raise PermissionDenied(f"only the operator extends deadlines, not {by.role.value}", issue=self.id)
        if self.deadline_extended:
            raise DeadlineAlreadyExtended("the deadline was extended once already", issue=self.id)
        days = parse_days("days", days)
        reason = require_text("reason", reason, max_length=TEXT_MAX)
        assert self.deadline is not None
        self._deadline_extended(deadline=self.deadline + timedelta(days=days), reason=reason, by=by,
                                at=require_time("at", at))

    @event("DeadlineExtended")
    def _deadline_extended(self, *, deadline: datetime, reason: str, by: Actor, at: datetime) -> None:
        self.deadline = deadline
        self.deadline_extended = True
        self.extension_reason = reason

    # -- rectification (provider) ---------------------------------------------------------------
    def rectify(self, *, note: str, by: Actor, at: datetime, version: int | None = None) -> None:
        """The provider corrected its data; after the deadline it counts as late."""
        self.check_status("rectify", IssueStatus.VERIFIED)
        self.check_provider_staff(by, "rectify")
        note = require_text("note", note, max_length=TEXT_MAX)
        version = parse_version(version)
        at = require_time("at", at)
        assert self.deadline is not None
        self._rectified(note=note, version=version, late=at > self.deadline, by=by, at=at)

    @event("Rectified")
    def _rectified(self, *, note: str, version: int | None, late: bool, by: Actor, at: datetime) -> None:
        self.status = IssueStatus.RECTIFIED
        self.rectification_note = note
        self.rectified_version = version
        self.rectified_at = at
        self.rectified_late = late

    def refuse(self, *, reason: str, by: Actor, at: datetime) -> None:
        """The provider says it will not rectify; the issue stays open and is overdue."""
        self.check_status("refuse rectification of", IssueStatus.VERIFIED)
        self.check_provider_staff(by, "refuse rectification of")
        if self.refusal_reason:
            raise InvalidState("rectification was refused already", issue=self.id)
        self._refused(reason=require_text("reason", reason, max_length=TEXT_MAX), by=by, at=require_time("at", at))

    @event("RectificationRefused")
    def _refused(self, *, reason: str, by: Actor, at: datetime) -> None:
        self.refusal_reason = reason

    # -- closing (operator) -----------------------------------------------------------------------
    def close(self, *, note: str, by: Actor, at: datetime) -> None:
        """The operator confirms the rectification and closes the issue."""
        self.check_status("close", IssueStatus.RECTIFIED)
        self.check_verifier(by, "close")
        self._closed(note=require_text("note", note, max_length=TEXT_MAX), by=by, at=require_time("at", at))

    @event("Closed")
    def _closed(self, *, note: str, by: Actor, at: datetime) -> None:
        self.status = IssueStatus.CLOSED
        self.closing_note = note

    # -- queries and guards ---------------------------------------------------------------------
    def is_overdue(self, at: datetime) -> bool:
        """Verified, not rectified, and either refused or past the deadline at ``at``."""
        if self.status is not IssueStatus.VERIFIED or self.deadline is None:
            return False
        return bool(self.refusal_reason) or require_time("at", at) > self.deadline

    @property
    def is_open(self) -> bool:
        return self.status in (IssueStatus.REPORTED, IssueStatus.VERIFIED, IssueStatus.RECTIFIED)

    def check_status(self, doing: str, *allowed: IssueStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} an issue that is {self.status.value}", issue=self.id, status=self.status.value
            )

    def check_verifier(self, by: Actor, doing: str) -> None:
        if by.role not in VERIFIER_ROLES:
            raise PermissionDenied(
                f"only a product manager or compliance reviewer may {doing} a quality issue, not {by.role.value}",
                issue=self.id, user=by.user_id,
            )
        if by.user_id == self.reported_by:
            raise SeparationOfDuties(
                f"{by.user_id} reported this issue and cannot {doing} it", issue=self.id, user=by.user_id
            )

    def check_provider_staff(self, by: Actor, doing: str) -> None:
        if by.role is not Role.PROVIDER_STAFF or by.provider_id != self.provider_id:
            raise PermissionDenied(
                f"only staff of provider {self.provider_id} may {doing} this issue",
                issue=self.id, provider=self.provider_id, user=by.user_id,
            )


class DeadlineAlreadyExtended(InvalidState):
    code = "deadline_already_extended"
