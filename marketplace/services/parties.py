"""Use cases of application units and operator staff (art. 15-16, 21-22, 34)."""

from __future__ import annotations

from uuid import UUID

from domain.errors import parse_enum
from domain.identity import Actor, Role
from domain.licensing import Subscription
from domain.parties import ApplicationUnit, StaffMember, UnitKind
from marketplace import access
from marketplace.services.base import Service


class PartiesService(Service):
    # -- application units -------------------------------------------------------
    def register_unit(
        self, actor: Actor, *, name: str, credit_code: str, kind: UnitKind | str, contact_email: str
    ) -> UUID:
        """A unit admin registers their organisation; they become its first admin."""
        access.require(actor, "unit.register")
        kind = parse_enum("kind", UnitKind, kind)
        unit = ApplicationUnit.register(
            name=name, credit_code=credit_code, kind=kind, contact_email=contact_email,
            admin_user_id=actor.user_id, by=actor,
        )
        return self.create(unit, f"a unit with credit code {unit.credit_code} is already registered").id

    def qualify_unit(self, actor: Actor, unit_id: UUID, *, approved: bool, reason: str) -> int:
        access.require(actor, "unit.qualify")

        def command() -> list[ApplicationUnit]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.qualify(approved=approved, reason=reason, by=actor)
            return [unit]

        return self.run(command)

    def add_member(self, actor: Actor, unit_id: UUID, *, user_id: str, role: Role | str) -> int:
        access.require(actor, "unit.manage_members")
        access.require_unit(actor, unit_id)

        def command() -> list[ApplicationUnit]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.add_member(user_id=user_id, role=parse_enum("role", Role, role), by=actor)
            return [unit]

        return self.run(command)

    def remove_member(self, actor: Actor, unit_id: UUID, *, user_id: str) -> int:
        access.require(actor, "unit.manage_members")
        access.require_unit(actor, unit_id)

        def command() -> list[ApplicationUnit]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.remove_member(user_id=user_id, by=actor)
            return [unit]

        return self.run(command)

    def suspend_unit(self, actor: Actor, unit_id: UUID, *, reason: str) -> int:
        """Suspend a unit and, in the same save, every subscription it holds (art. 34)."""
        access.require(actor, "unit.suspend")

        def command() -> list[ApplicationUnit | Subscription]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.suspend(reason=reason, by=actor)
            subscriptions = [self.get(Subscription, sid) for sid in unit.subscription_ids]
            for subscription in subscriptions:
                if subscription.is_active:
                    subscription.suspend(reason=f"unit suspended: {reason}", by=actor)
            return [unit, *subscriptions]

        return self.run(command)

    def reinstate_unit(self, actor: Actor, unit_id: UUID, *, reason: str) -> int:
        """Reinstating a unit does not reactivate its subscriptions: each is reviewed on its own."""
        access.require(actor, "unit.suspend")

        def command() -> list[ApplicationUnit]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.reinstate(reason=reason, by=actor)
            return [unit]

        return self.run(command)

    def terminate_unit(self, actor: Actor, unit_id: UUID, *, reason: str) -> int:
        """Terminate a unit and every subscription it still holds (art. 34)."""
        access.require(actor, "unit.terminate")

        def command() -> list[ApplicationUnit | Subscription]:
            unit = self.get(ApplicationUnit, unit_id)
            unit.terminate(reason=reason, by=actor)
            subscriptions = [self.get(Subscription, sid) for sid in unit.subscription_ids]
            for subscription in subscriptions:
                if not subscription.has_ended:
                    subscription.terminate(reason=f"unit terminated: {reason}", by=actor)
            return [unit, *subscriptions]

        return self.run(command)

    # -- operator staff ------------------------------------------------------------
    def enrol_staff(self, actor: Actor, *, user_id: str, name: str, roles: list[Role | str]) -> UUID:
        access.require(actor, "staff.enrol")
        member = StaffMember.enrol(user_id=user_id, name=name, by=actor)
        for role in roles:
            member.grant(role=parse_enum("role", Role, role), by=actor)
        return self.create(member, f"staff member {member.user_id} is already enrolled").id

    def grant_role(self, actor: Actor, *, user_id: str, role: Role | str) -> int:
        access.require(actor, "staff.grant")

        def command() -> list[StaffMember]:
            member = self.get(StaffMember, StaffMember.create_id(user_id))
            member.grant(role=parse_enum("role", Role, role), by=actor)
            return [member]

        return self.run(command)

    def revoke_role(self, actor: Actor, *, user_id: str, role: Role | str) -> int:
        access.require(actor, "staff.grant")

        def command() -> list[StaffMember]:
            member = self.get(StaffMember, StaffMember.create_id(user_id))
            member.revoke(role=parse_enum("role", Role, role), by=actor)
            return [member]

        return self.run(command)

