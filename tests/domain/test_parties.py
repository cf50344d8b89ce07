"""Rules of application units and operator staff (art. 3, 15-16, 21-22, 34)."""

from __future__ import annotations

import string
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.errors import AlreadyExists, InvalidInput, InvalidState, PermissionDenied
from domain.identity import SYSTEM, Actor, Role
from domain.parties import (
    CREDIT_CODE_ALPHABET,
    ApplicationUnit,
    StaffMember,
    UnitKind,
    UnitNotQualified,
    UnitStatus,
    credit_code_check_char,
    validate_credit_code,
)

ADMIN = Actor("op-admin", Role.OPERATOR_ADMIN)
APPLICANT = Actor("alice", Role.APPLICANT)
code_bodies = st.text(alphabet=CREDIT_CODE_ALPHABET, min_size=17, max_size=17)


def valid_code(body: str = "91150200MA0N7X2B1") -> str:
    return body + credit_code_check_char(body)


def new_unit(**overrides: object) -> ApplicationUnit:
    args: dict[str, object] = dict(
        name="包头稀土数据科技有限公司", credit_code=valid_code(), kind=UnitKind.COMPANY,
        contact_email="data@example.cn", admin_user_id="alice", by=APPLICANT,
    )
    args.update(overrides)
    return ApplicationUnit.register(**args)  # type: ignore[arg-type]


# -- unified social credit codes: the unit's legal identity -------------------------
@given(code_bodies)
def test_art3_every_code_with_its_check_char_is_accepted(body: str) -> None:
    assert validate_credit_code(body + credit_code_check_char(body)) == body + credit_code_check_char(body)


@given(code_bodies, st.sampled_from(CREDIT_CODE_ALPHABET))
def test_art3_a_wrong_check_char_is_refused(body: str, wrong: str) -> None:
    if wrong == credit_code_check_char(body):
        return
    with pytest.raises(InvalidInput) as error:
        validate_credit_code(body + wrong)
    assert error.value.field == "credit_code"


@given(code_bodies, st.integers(0, 16), st.sampled_from(CREDIT_CODE_ALPHABET))
def test_art3_a_single_substitution_is_detected(body: str, position: int, char: str) -> None:
    code = body + credit_code_check_char(body)
    altered = code[:position] + char + code[position + 1 :]
    if altered == code:
        return
    with pytest.raises(InvalidInput):
        validate_credit_code(altered)


@given(st.text(max_size=30))
def test_credit_code_parser_never_crashes_on_junk(text: str) -> None:
    try:
        assert len(validate_credit_code(text)) == 18
    except InvalidInput as error:
        assert error.field == "credit_code"


def test_credit_code_is_normalised_to_upper_case() -> None:
    assert validate_credit_code(valid_code().lower()) == valid_code()


@pytest.mark.parametrize("code, problem", [("123", "18 characters"), ("I" * 18, "not allowed")])
def test_credit_code_errors_say_what_is_wrong(code: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        validate_credit_code(code)


# -- registration ----------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [("name", ""), ("name", "x"), ("contact_email", "not-an-address"), ("admin_user_id", "  ")],
)
def test_art21_registration_fields_are_required_and_named(field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as error:
        new_unit(**{field: value})
    assert error.value.field == field


def test_registering_admin_becomes_first_unit_admin_pending_qualification() -> None:
    unit = new_unit()
    assert unit.members == {"alice": Role.UNIT_ADMIN}
    assert unit.status is UnitStatus.PENDING_QUALIFICATION
    assert unit.id == ApplicationUnit.create_id(valid_code())


def test_art22_unqualified_unit_cannot_take_subscriptions() -> None:
    unit = new_unit()
    with pytest.raises(InvalidState):
        unit.link_subscription(uuid4())
    with pytest.raises(UnitNotQualified):
        unit.check_qualified()


def test_art22_qualification_is_decided_once_with_reason() -> None:
    unit = new_unit()
    with pytest.raises(InvalidInput, match="reason"):
        unit.qualify(approved=True, reason="", by=ADMIN)
    unit.qualify(approved=True, reason="营业执照与安全能力评估齐全", by=ADMIN)
    assert unit.is_qualified
    with pytest.raises(InvalidState):
        unit.qualify(approved=False, reason="again", by=ADMIN)


def test_rejected_unit_cannot_add_members() -> None:
    unit = new_unit()
    unit.qualify(approved=False, reason="无数据安全保障能力", by=ADMIN)
    with pytest.raises(InvalidState):
        unit.add_member(user_id="bob", role=Role.UNIT_ANALYST, by=APPLICANT)


def test_unit_members_are_admins_or_analysts_only() -> None:
    unit = new_unit()
    with pytest.raises(InvalidInput, match="role"):
        unit.add_member(user_id="bob", role=Role.OPERATOR_ADMIN, by=APPLICANT)
    unit.add_member(user_id="bob", role=Role.UNIT_ANALYST, by=APPLICANT)
    with pytest.raises(AlreadyExists):
        unit.add_member(user_id="bob", role=Role.UNIT_ANALYST, by=APPLICANT)


def test_art15_unit_keeps_at_least_one_admin() -> None:
    unit = new_unit()
    with pytest.raises(InvalidState, match="at least one unit admin"):
        unit.remove_member(user_id="alice", by=APPLICANT)


# -- supervision (art. 34) ----------------------------------------------------------
def test_art34_only_a_qualified_unit_can_be_suspended_and_reinstated() -> None:
    unit = new_unit()
    with pytest.raises(InvalidState):
        unit.suspend(reason="misuse", by=ADMIN)
    unit.qualify(approved=True, reason="ok", by=ADMIN)
    unit.suspend(reason="数据转售嫌疑", by=ADMIN)
    assert unit.status is UnitStatus.SUSPENDED
    with pytest.raises(InvalidState):
        unit.link_subscription(uuid4())
    unit.reinstate(reason="核查无误", by=ADMIN)
    assert unit.is_qualified


def test_art34_terminated_unit_is_final() -> None:
    unit = new_unit()
    unit.qualify(approved=True, reason="ok", by=ADMIN)
    unit.terminate(reason="泄露数据", by=ADMIN)
    for command in (
        lambda: unit.suspend(reason="x", by=ADMIN),
        lambda: unit.reinstate(reason="x", by=ADMIN),
        lambda: unit.terminate(reason="x", by=ADMIN),
        lambda: unit.add_member(user_id="z", role=Role.UNIT_ANALYST, by=ADMIN),
    ):
        with pytest.raises(InvalidState):
            command()


# -- operator staff (art. 15-16) -----------------------------------------------------
def test_art16_staff_roles_are_operator_or_bureau_roles() -> None:
    member = StaffMember.enrol(user_id="pm", name="产品经理", by=ADMIN)
    with pytest.raises(InvalidInput):
        member.grant(role=Role.UNIT_ADMIN, by=ADMIN)
    member.grant(role=Role.PRODUCT_MANAGER, by=ADMIN)
    with pytest.raises(AlreadyExists):
        member.grant(role=Role.PRODUCT_MANAGER, by=ADMIN)
    member.revoke(role=Role.PRODUCT_MANAGER, by=ADMIN)
    assert member.roles == []


def test_art16_nobody_grants_roles_to_themselves() -> None:
    member = StaffMember.enrol(user_id="op-admin", name="运营管理员", by=SYSTEM)
    member.grant(role=Role.OPERATOR_ADMIN, by=SYSTEM)
    with pytest.raises(PermissionDenied):
        member.grant(role=Role.COMPLIANCE_REVIEWER, by=ADMIN)


def test_actor_needs_its_organisation() -> None:
    with pytest.raises(PermissionDenied):
        Actor("x", Role.UNIT_ANALYST)
    with pytest.raises(PermissionDenied):
        Actor("x", Role.PROVIDER_STAFF)
    with pytest.raises(PermissionDenied):
        Actor("", Role.SUPERVISOR)


# -- the unit's state machine ---------------------------------------------------------
users = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=3)


class UnitMachine(RuleBasedStateMachine):
    """No sequence of commands leaves a unit without an admin or in an impossible state."""

    def __init__(self) -> None:
        super().__init__()
        self.unit = new_unit()

    def _try(self, command: object) -> None:
        version = self.unit.version
        try:
            command()  # type: ignore[operator]
        except (InvalidState, InvalidInput, AlreadyExists):
            assert self.unit.version == version, "a refused command changed the unit"

    @rule(approved=st.booleans())
    def qualify(self, approved: bool) -> None:
        self._try(lambda: self.unit.qualify(approved=approved, reason="r", by=ADMIN))

    @rule()
    def suspend(self) -> None:
        self._try(lambda: self.unit.suspend(reason="r", by=ADMIN))

    @rule()
    def reinstate(self) -> None:
        self._try(lambda: self.unit.reinstate(reason="r", by=ADMIN))

    @rule()
    def terminate(self) -> None:
        self._try(lambda: self.unit.terminate(reason="r", by=ADMIN))

    @rule(user=users, admin=st.booleans())
    def add_member(self, user: str, admin: bool) -> None:
        role = Role.UNIT_ADMIN if admin else Role.UNIT_ANALYST
        self._try(lambda: self.unit.add_member(user_id=user, role=role, by=ADMIN))

    @rule(user=users)
    def remove_member(self, user: str) -> None:
        self._try(lambda: self.unit.remove_member(user_id=user, by=ADMIN))

    @rule()
    def link(self) -> None:
        before = list(self.unit.subscription_ids)
        try:
            self.unit.link_subscription(uuid4())
        except InvalidState:
            assert self.unit.subscription_ids == before
        else:
            assert self.unit.status is UnitStatus.QUALIFIED

    @invariant()
    def always_an_admin(self) -> None:
        assert Role.UNIT_ADMIN in self.unit.members.values()

    @invariant()
    def members_have_unit_roles(self) -> None:
        assert set(self.unit.members.values()) <= {Role.UNIT_ADMIN, Role.UNIT_ANALYST}


TestUnitMachine = UnitMachine.TestCase
