"""Parties: application units (art. 3, 21-22) and operator staff (art. 15-16).

An application unit registers itself, is qualified by the operator before it may
file demand applications (art. 22 "qualification review"), and can be suspended or
terminated on misuse (art. 34). Suspending a unit suspends its subscriptions; the
unit remembers which subscriptions it holds so the service can do both in one save.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import AlreadyExists, InvalidInput, InvalidState, PermissionDenied, require_text
from domain.identity import OPERATOR_ROLES, Actor, Role

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def credit_code_check_char(first17: str) -> str:
    """The check character of a unified social credit code (GB 32100-2015)."""
    total = sum(CREDIT_CODE_ALPHABET.index(c) * w for c, w in zip(first17, _CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(code: object) -> str:
    """Return the normalised 18-character code or raise ``InvalidInput``."""
    if not isinstance(code, str):
        raise InvalidInput("credit_code", "must be text")
    code = code.strip().upper()
    if len(code) != 18:
        raise InvalidInput("credit_code", f"must be 18 characters, got {len(code)}")
    bad = sorted({c for c in code if c not in CREDIT_CODE_ALPHABET})
    if bad:
        raise InvalidInput("credit_code", f"contains characters not allowed: {''.join(bad)}")
    if credit_code_check_char(code[:17]) != code[17]:
        raise InvalidInput("credit_code", "check character does not match (GB 32100-2015)")
    return code


def validate_email(field: str, value: object) -> str:
    text = require_text(field, value, max_length=254)
    if not _EMAIL.match(text):
        raise InvalidInput(field, f"is not an e-mail address: {text!r}")
    return text


class UnitKind(Enum):
    COMPANY = "company"
    RESEARCH_INSTITUTE = "research_institute"
    NGO = "ngo"
    PUBLIC_INSTITUTION = "public_institution"


class UnitStatus(Enum):
    PENDING_QUALIFICATION = "pending_qualification"
    QUALIFIED = "qualified"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class ApplicationUnit(Aggregate):
    """A company, institute or organisation that uses data products (art. 3)."""

    @staticmethod
    def create_id(credit_code: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/unit/{credit_code}")

    @classmethod
    def register(
        cls, *, name: str, credit_code: str, kind: UnitKind, contact_email: str, admin_user_id: str, by: Actor
    ) -> ApplicationUnit:
        if not isinstance(kind, UnitKind):
            raise InvalidInput("kind", f"must be one of {[k.value for k in UnitKind]}")
        return cls(
            credit_code=validate_credit_code(credit_code),
            name=require_text("name", name, min_length=2, max_length=200),
            kind=kind,
            contact_email=validate_email("contact_email", contact_email),
            admin_user_id=require_text("admin_user_id", admin_user_id, max_length=200),
            by=by,
        )

    @event("Registered")
    def __init__(
        self, *, credit_code: str, name: str, kind: UnitKind, contact_email: str, admin_user_id: str, by: Actor
    ) -> None:
        self.credit_code = credit_code
        self.name = name
        self.kind = kind
        self.contact_email = contact_email
        self.status = UnitStatus.PENDING_QUALIFICATION
        self.members: dict[str, Role] = {admin_user_id: Role.UNIT_ADMIN}
        self.subscription_ids: list[UUID] = []
        self.status_reason = ""

    # -- qualification (art. 22) -------------------------------------------------
    def qualify(self, *, approved: bool, reason: str, by: Actor) -> None:
        self.check_status("decide the qualification of", UnitStatus.PENDING_QUALIFICATION)
        self._qualification_decided(approved=approved, reason=require_text("reason", reason), by=by)

    @event("QualificationDecided")
    def _qualification_decided(self, *, approved: bool, reason: str, by: Actor) -> None:
        self.status = UnitStatus.QUALIFIED if approved else UnitStatus.REJECTED
        self.status_reason = reason

    # -- members ------------------------------------------------------------------
    def add_member(self, *, user_id: str, role: Role, by: Actor) -> None:
        self.check_not_ended()
        if role not in (Role.UNIT_ADMIN, Role.UNIT_ANALYST):
            raise InvalidInput("role", "a unit member is unit_admin or unit_analyst")
        user_id = require_text("user_id", user_id, max_length=200)
        if self.members.get(user_id) is role:
            raise AlreadyExists(f"{user_id} is already {role.value} of this unit", unit=self.id, user=user_id)
        self._member_added(user_id=user_id, role=role, by=by)

    @event("MemberAdded")
    def _member_added(self, *, user_id: str, role: Role, by: Actor) -> None:
        self.members[user_id] = role

    def remove_member(self, *, user_id: str, by: Actor) -> None:
        self.check_not_ended()
        if user_id not in self.members:
            raise InvalidInput("user_id", f"{user_id} is not a member of this unit", unit=self.id)
        admins = [u for u, r in self.members.items() if r is Role.UNIT_ADMIN]
        if admins == [user_id]:
            raise InvalidState("a unit keeps at least one unit admin", unit=self.id, user=user_id)
        self._member_removed(user_id=user_id, by=by)

    @event("MemberRemoved")
    def _member_removed(self, *, user_id: str, by: Actor) -> None:
        del self.members[user_id]

    def role_of(self, user_id: str) -> Role | None:
        return self.members.get(user_id)

    # -- supervision (art. 34) ------------------------------------------------------
    def suspend(self, *, reason: str, by: Actor) -> None:
        self.check_status("suspend", UnitStatus.QUALIFIED)
        self._suspended(reason=require_text("reason", reason), by=by)

    @event("Suspended")
    def _suspended(self, *, reason: str, by: Actor) -> None:
        self.status = UnitStatus.SUSPENDED
        self.status_reason = reason

    def reinstate(self, *, reason: str, by: Actor) -> None:
        self.check_status("reinstate", UnitStatus.SUSPENDED)
        self._reinstated(reason=require_text("reason", reason), by=by)

    @event("Reinstated")
    def _reinstated(self, *, reason: str, by: Actor) -> None:
        self.status = UnitStatus.QUALIFIED
        self.status_reason = reason

    def terminate(self, *, reason: str, by: Actor) -> None:
        self.check_not_ended()
        self._terminated(reason=require_text("reason", reason), by=by)

    @event("Terminated")
    def _terminated(self, *, reason: str, by: Actor) -> None:
        self.status = UnitStatus.TERMINATED
        self.status_reason = reason

    # -- subscriptions held (for suspension cascades) -------------------------------
    def link_subscription(self, subscription_id: UUID) -> None:
        self.check_status("take a subscription for", UnitStatus.QUALIFIED)
        if subscription_id not in self.subscription_ids:
            self._subscription_linked(subscription_id=subscription_id)

    @event("SubscriptionLinked")
    def _subscription_linked(self, *, subscription_id: UUID) -> None:
        self.subscription_ids.append(subscription_id)

    # -- guards -------------------------------------------------------------------
    @property
    def is_qualified(self) -> bool:
        return self.status is UnitStatus.QUALIFIED

    def check_qualified(self) -> None:
        if not self.is_qualified:
            raise UnitNotQualified(
                f"unit {self.name!r} is {self.status.value}, not qualified", unit=self.id, status=self.status.value
            )

    def check_status(self, doing: str, *allowed: UnitStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} a unit that is {self.status.value}", unit=self.id, status=self.status.value
            )

    def check_not_ended(self) -> None:
        if self.status in (UnitStatus.TERMINATED, UnitStatus.REJECTED):
            raise InvalidState(f"unit is {self.status.value}", unit=self.id, status=self.status.value)


class StaffMember(Aggregate):
    """An operator employee or bureau supervisor and the roles they hold (art. 15-16)."""

    @staticmethod
    def create_id(user_id: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/staff/{user_id}")

    @classmethod
    def enrol(cls, *, user_id: str, name: str, by: Actor) -> StaffMember:
        return cls(
            user_id=require_text("user_id", user_id, max_length=200),
            name=require_text("name", name, max_length=200),
            by=by,
        )

    @event("Enrolled")
    def __init__(self, *, user_id: str, name: str, by: Actor) -> None:
        self.user_id = user_id
        self.name = name
        self.roles: list[Role] = []

    def grant(self, *, role: Role, by: Actor) -> None:
        if role not in OPERATOR_ROLES and role is not Role.SUPERVISOR:
            raise InvalidInput("role", f"{role.value} is not a staff role")
        if role in self.roles:
            raise AlreadyExists(f"{self.user_id} already holds {role.value}", user=self.user_id)
        if by.user_id == self.user_id and by.role is not Role.SYSTEM:
            raise PermissionDenied("nobody grants roles to themselves", user=self.user_id)
        self._granted(role=role, by=by)

    @event("RoleGranted")
    def _granted(self, *, role: Role, by: Actor) -> None:
        self.roles.append(role)

    def revoke(self, *, role: Role, by: Actor) -> None:
        if role not in self.roles:
            raise InvalidInput("role", f"{self.user_id} does not hold {role.value}")
        self._revoked(role=role, by=by)

    @event("RoleRevoked")
    def _revoked(self, *, role: Role, by: Actor) -> None:
        self.roles.remove(role)


class UnitNotQualified(InvalidState):
    code = "unit_not_qualified"
