"""Who is signed in: resolve a user id and a claimed role to an ``Actor`` the store vouches for.

Entry points (CLI, API, UI) authenticate people and machines, then call this so that a
role is only ever taken from the store's own records (staff grants, unit membership,
provider staff lists), never from what a caller says. Deny by default: an unknown user
or a role not held raises ``PermissionDenied``.
"""

from __future__ import annotations

from uuid import UUID

from domain.catalog import Provider
from domain.errors import NotFound, PermissionDenied
from domain.identity import Actor, Role
from domain.parties import ApplicationUnit, StaffMember, UnitStatus
from marketplace.services.base import Service


class Directory(Service):
    def staff(self, user_id: str, role: Role | str) -> Actor:
        role = Role(role)
        try:
            member = self.get(StaffMember, StaffMember.create_id(user_id))
        except NotFound:
            raise PermissionDenied(f"{user_id} is not operator or bureau staff", user=user_id) from None
        if role not in member.roles:
            raise PermissionDenied(f"{user_id} does not hold the role {role.value}", user=user_id)
        return Actor(user_id=user_id, role=role)

    def unit_member(self, user_id: str, unit_id: UUID) -> Actor:
        try:
            unit = self.get(ApplicationUnit, unit_id)
        except NotFound:
            raise PermissionDenied(f"no such unit {unit_id}", user=user_id) from None
        role = unit.role_of(user_id)
        if role is None:
            raise PermissionDenied(f"{user_id} is not a member of unit {unit.name}", user=user_id, unit=unit_id)
        if unit.status in (UnitStatus.TERMINATED, UnitStatus.REJECTED):
            raise PermissionDenied(f"unit {unit.name} is {unit.status.value}", user=user_id, unit=unit_id)
        return Actor(user_id=user_id, role=role, unit_id=unit_id)

    def provider_staff(self, user_id: str, provider_id: UUID) -> Actor:
        try:
            provider = self.get(Provider, provider_id)
        except NotFound:
            raise PermissionDenied(f"no such provider {provider_id}", user=user_id) from None
        if not provider.has_staff(user_id):
            raise PermissionDenied(f"{user_id} is not staff of {provider.name}", user=user_id)
        return Actor(user_id=user_id, role=Role.PROVIDER_STAFF, provider_id=provider_id)

    def applicant(self, user_id: str) -> Actor:
        """Someone about to register a unit: signed in, member of nothing yet."""
        return Actor(user_id=user_id, role=Role.APPLICANT)
