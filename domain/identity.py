"""Who acts: roles of the measures and the actor recorded on every event.

Authentication (OIDC for people, OAuth 2 tokens for machines) happens in
``marketplace``; it resolves a signed-in person to an ``Actor``. The domain records that
actor on every event so the log answers "who did what, when" (art. 8, 18) and checks
separation of duties (art. 15-16, 22) by comparing actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from domain.errors import PermissionDenied


class Role(Enum):
    """Roles of the measures' parties; ``applicant`` is a signed-in person who belongs to no unit yet."""

    PROVIDER_STAFF = "provider_staff"
    PRODUCT_MANAGER = "product_manager"
    COMPLIANCE_REVIEWER = "compliance_reviewer"
    OPERATOR_ADMIN = "operator_admin"
    SUPERVISOR = "supervisor"
    UNIT_ADMIN = "unit_admin"
    UNIT_ANALYST = "unit_analyst"
    APPLICANT = "applicant"
    SYSTEM = "system"

    @property
    def is_operator(self) -> bool:
        return self in OPERATOR_ROLES

    @property
    def is_unit(self) -> bool:
        return self in UNIT_ROLES


OPERATOR_ROLES = frozenset({Role.PRODUCT_MANAGER, Role.COMPLIANCE_REVIEWER, Role.OPERATOR_ADMIN})
UNIT_ROLES = frozenset({Role.UNIT_ADMIN, Role.UNIT_ANALYST})


@dataclass(frozen=True)
class Actor:
    """A person (or the system) acting in one role, for one organisation at most."""

    user_id: str
    role: Role
    unit_id: UUID | None = None
    provider_id: UUID | None = None

    def __post_init__(self) -> None:
        if not self.user_id:
            raise PermissionDenied("an anonymous actor cannot act")
        if self.role.is_unit and self.unit_id is None:
            raise PermissionDenied("a unit role needs the unit it acts for", user=self.user_id)
        if self.role is Role.PROVIDER_STAFF and self.provider_id is None:
            raise PermissionDenied("provider staff need the provider they act for", user=self.user_id)

    def __str__(self) -> str:
        return f"{self.user_id} ({self.role.value})"


SYSTEM = Actor(user_id="system", role=Role.SYSTEM)
