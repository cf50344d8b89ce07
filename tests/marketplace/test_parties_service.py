"""Parties use cases on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from domain.errors import AlreadyExists, DomainError, InvalidInput, InvalidState, NotFound, PermissionDenied
from domain.identity import SYSTEM, Actor, Role
from domain.parties import ApplicationUnit, StaffMember, UnitStatus, credit_code_check_char
from marketplace.bootstrap import Marketplace
from marketplace.directory import Directory

BODY = "91150203MA13QK9E0"
CODE = BODY + credit_code_check_char(BODY)
ADMIN = Actor("op-admin", Role.OPERATOR_ADMIN)


def register(mp: Marketplace, user: str = "alice", code: str = CODE) -> ApplicationUnit:
    unit_id = mp.parties.register_unit(
        Actor(user, Role.APPLICANT), name="包头智慧出行有限公司", credit_code=code,
        kind="company", contact_email="ops@example.cn",
    )
    return mp.parties.get(ApplicationUnit, unit_id)


def unchanged(mp: Marketplace, command: Callable[[], object], error: type[DomainError]) -> DomainError:
    """Run a command that must be refused; prove the store did not move."""
    before = mp.app.recorder.max_notification_id()
    with pytest.raises(error) as caught:
        command()
    assert mp.app.recorder.max_notification_id() == before
    return caught.value


def test_register_and_reload_a_unit(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    assert unit.credit_code == CODE
    assert unit.members == {"alice": Role.UNIT_ADMIN}
    assert unit.status is UnitStatus.PENDING_QUALIFICATION


def test_duplicate_registration_is_refused_and_changes_nothing(marketplace: Marketplace) -> None:
    register(marketplace)
    error = unchanged(marketplace, lambda: register(marketplace, user="mallory"), AlreadyExists)
    assert CODE in error.message
    assert marketplace.parties.get(ApplicationUnit, ApplicationUnit.create_id(CODE)).members == {
        "alice": Role.UNIT_ADMIN
    }


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"credit_code": "91150203MA13QK9E0X"}, "credit_code"),
        ({"kind": "pirate"}, "kind"),
        ({"contact_email": "nope"}, "contact_email"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_registration_names_the_field_and_changes_nothing(
    marketplace: Marketplace, overrides: dict[str, str], field: str
) -> None:
    args = dict(name="某公司", credit_code=CODE, kind="company", contact_email="a@b.cn") | overrides
    error = unchanged(
        marketplace, lambda: marketplace.parties.register_unit(Actor("a", Role.APPLICANT), **args), InvalidInput
    )
    assert error.ids["field"] == field


def test_art22_only_operator_roles_qualify_units(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    analyst = Actor("eve", Role.UNIT_ADMIN, unit_id=unit.id)
    unchanged(
        marketplace,
        lambda: marketplace.parties.qualify_unit(analyst, unit.id, approved=True, reason="self"),
        PermissionDenied,
    )
    marketplace.parties.qualify_unit(ADMIN, unit.id, approved=True, reason="资质审核通过")
    assert marketplace.parties.get(ApplicationUnit, unit.id).is_qualified


def test_unknown_unit_is_not_found_and_changes_nothing(marketplace: Marketplace) -> None:
    unchanged(marketplace, lambda: marketplace.parties.qualify_unit(ADMIN, uuid4(), approved=True, reason="r"),
              NotFound)
    unchanged(marketplace, lambda: marketplace.parties.qualify_unit(ADMIN, "not-a-uuid", approved=True,  # type: ignore[arg-type]
                                                                    reason="r"), NotFound)


def test_wrong_state_is_refused_and_changes_nothing(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    unchanged(marketplace, lambda: marketplace.parties.suspend_unit(ADMIN, unit.id, reason="r"), InvalidState)


def test_unit_admin_manages_members_of_own_unit_only(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    other_body = "91150207MA0QX1TJ2"
    other = register(marketplace, user="bob", code=other_body + credit_code_check_char(other_body))
    alice = Actor("alice", Role.UNIT_ADMIN, unit_id=unit.id)
    marketplace.parties.add_member(alice, unit.id, user_id="carol", role="unit_analyst")
    unchanged(marketplace, lambda: marketplace.parties.add_member(alice, other.id, user_id="x", role="unit_analyst"),
              PermissionDenied)
    unchanged(marketplace, lambda: marketplace.parties.add_member(alice, unit.id, user_id="y", role="boss"),
              InvalidInput)
    assert marketplace.parties.get(ApplicationUnit, unit.id).members == {
        "alice": Role.UNIT_ADMIN, "carol": Role.UNIT_ANALYST
    }


def test_art16_staff_enrolment_and_directory_resolve_only_held_roles(marketplace: Marketplace) -> None:
    marketplace.parties.enrol_staff(SYSTEM, user_id="op-admin", name="管理员", roles=["operator_admin"])
    marketplace.parties.enrol_staff(ADMIN, user_id="rev", name="审核员", roles=["compliance_reviewer"])
    unchanged(marketplace, lambda: marketplace.parties.enrol_staff(ADMIN, user_id="rev", name="again", roles=[]),
              AlreadyExists)
    directory = Directory(marketplace.app)
    assert directory.staff("rev", "compliance_reviewer") == Actor("rev", Role.COMPLIANCE_REVIEWER)
    with pytest.raises(PermissionDenied):
        directory.staff("rev", "operator_admin")
    with pytest.raises(PermissionDenied):
        directory.staff("nobody", "operator_admin")
    staff = marketplace.parties.get(StaffMember, StaffMember.create_id("rev"))
    assert staff.roles == [Role.COMPLIANCE_REVIEWER]


def test_directory_resolves_unit_members_and_refuses_strangers(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    directory = Directory(marketplace.app)
    assert directory.unit_member("alice", unit.id) == Actor("alice", Role.UNIT_ADMIN, unit_id=unit.id)
    with pytest.raises(PermissionDenied):
        directory.unit_member("mallory", unit.id)
    marketplace.parties.qualify_unit(ADMIN, unit.id, approved=False, reason="材料不全")
    with pytest.raises(PermissionDenied, match="rejected"):
        directory.unit_member("alice", unit.id)


def test_events_record_who_acted(marketplace: Marketplace) -> None:
    unit = register(marketplace)
    marketplace.parties.qualify_unit(ADMIN, unit.id, approved=True, reason="ok")
    events = list(marketplace.app.events.get(unit.id))
    assert [type(e).__name__ for e in events] == ["Registered", "QualificationDecided"]
    assert [e.by for e in events] == [Actor("alice", Role.APPLICANT), ADMIN]  # type: ignore[attr-defined]
