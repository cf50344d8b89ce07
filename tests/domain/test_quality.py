"""Quality issues and objections: report -> verify -> rectify -> close (art. 11, 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.errors import DomainError, InvalidInput, InvalidState, PermissionDenied, SeparationOfDuties
from domain.identity import Actor, Role
from domain.quality import (
    MAX_DEADLINE_DAYS,
    DeadlineAlreadyExtended,
    IssueStatus,
    QualityDimension,
    QualityIssue,
    parse_days,
)

RESOURCE = UUID("00000000-0000-0000-0000-00000000d001")
PRODUCT = UUID("00000000-0000-0000-0000-00000000e001")
PROVIDER = UUID("00000000-0000-0000-0000-00000000f001")
OTHER_PROVIDER = UUID("00000000-0000-0000-0000-00000000f002")
UNIT = UUID("00000000-0000-0000-0000-0000000000a1")
T0 = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)

ANALYST = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT)
PM = Actor("pm", Role.PRODUCT_MANAGER)
PM2 = Actor("pm2", Role.PRODUCT_MANAGER)
REVIEWER = Actor("rev", Role.COMPLIANCE_REVIEWER)
ADMIN = Actor("adm", Role.OPERATOR_ADMIN)
STAFF = Actor("water-staff", Role.PROVIDER_STAFF, provider_id=PROVIDER)
OTHER_STAFF = Actor("gas-staff", Role.PROVIDER_STAFF, provider_id=OTHER_PROVIDER)
SUPERVISOR = Actor("sup", Role.SUPERVISOR)


def reported(by: Actor = ANALYST, **overrides: Any) -> QualityIssue:
    args: dict[str, Any] = {
        "resource_id": RESOURCE, "provider_id": PROVIDER, "dimension": "completeness",
        "description": "district column empty for 3% of rows", "evidence": "query q-17 result attached",
        "by": by, "at": T0, "product_id": PRODUCT,
    }
    args.update(overrides)
    return QualityIssue.report(**args)


def verified(days: int = 10) -> QualityIssue:
    issue = reported()
    issue.verify(deadline_days=days, by=REVIEWER, at=T0 + timedelta(hours=1))
    return issue


# -- reporting --------------------------------------------------------------------------------
def test_art17_anyone_with_the_permission_reports_against_a_resource_and_dimension() -> None:
    issue = reported()
    assert issue.status is IssueStatus.REPORTED
    assert issue.dimension is QualityDimension.COMPLETENESS
    assert issue.resource_id == RESOURCE and issue.product_id == PRODUCT and issue.provider_id == PROVIDER
    assert issue.reported_by == "ana" and issue.deadline is None
    assert [type(e).__name__ for e in issue.collect_events()] == ["Reported"]


def test_art11_the_four_quality_dimensions() -> None:
    assert {d.value for d in QualityDimension} == {"completeness", "consistency", "accuracy", "timeliness"}


def test_product_id_is_optional() -> None:
    assert reported(product_id=None).product_id is None


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("description", {"description": "too short"}),
        ("description", {"description": None}),
        ("evidence", {"evidence": "  "}),
        ("dimension", {"dimension": "beauty"}),
        ("resource_id", {"resource_id": "not-an-id"}),
        ("provider_id", {"provider_id": None}),
        ("product_id", {"product_id": "x"}),
        ("at", {"at": datetime(2025, 1, 1)}),
    ],
)
def test_art17_report_fields_are_validated_and_named(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as e:
        reported(**overrides)
    assert e.value.field == field


# -- verification -----------------------------------------------------------------------------
def test_art17_verification_sets_a_deadline_n_days_ahead() -> None:
    issue = reported()
    issue.verify(deadline_days=14, by=PM, at=T0 + timedelta(days=1))
    assert issue.status is IssueStatus.VERIFIED
    assert issue.deadline == T0 + timedelta(days=15)
    assert issue.verified_by == "pm"


@given(st.integers(-1000, 1000))
def test_deadline_days_are_one_to_ninety(days: int) -> None:
    if 1 <= days <= MAX_DEADLINE_DAYS:
        assert parse_days("deadline_days", days) == days
    else:
        with pytest.raises(InvalidInput):
            parse_days("deadline_days", days)


@pytest.mark.parametrize("days", [0, 91, 1.5, "10", True, None])
def test_art17_bad_deadline_is_refused_and_nothing_changes(days: object) -> None:
    issue = reported()
    with pytest.raises(InvalidInput) as e:
        issue.verify(deadline_days=days, by=PM, at=T0)  # type: ignore[arg-type]
    assert e.value.field == "deadline_days"
    assert issue.status is IssueStatus.REPORTED and issue.version == 1


def test_art15_reporter_cannot_verify_or_reject_own_report() -> None:
    issue = reported(by=PM)
    with pytest.raises(SeparationOfDuties):
        issue.verify(deadline_days=5, by=PM, at=T0)
    with pytest.raises(SeparationOfDuties):
        issue.reject(reason="not a problem", by=PM, at=T0)
    issue.verify(deadline_days=5, by=PM2, at=T0)
    assert issue.verified_by == "pm2"


@pytest.mark.parametrize("actor", [ADMIN, SUPERVISOR, ANALYST, STAFF])
def test_art17_only_product_manager_or_compliance_reviewer_verifies(actor: Actor) -> None:
    issue = reported()
    with pytest.raises(PermissionDenied):
        issue.verify(deadline_days=5, by=actor, at=T0)
    with pytest.raises(PermissionDenied):
        issue.reject(reason="nope", by=actor, at=T0)
    assert issue.version == 1


def test_art17_rejected_objection_keeps_its_reason_and_ends_the_issue() -> None:
    issue = reported()
    issue.reject(reason="the empty districts are rural addresses, documented", by=REVIEWER, at=T0)
    assert issue.status is IssueStatus.REJECTED
    assert issue.rejection_reason.startswith("the empty districts")
    assert not issue.is_open
    with pytest.raises(InvalidState):
        issue.verify(deadline_days=5, by=PM, at=T0)
    with pytest.raises(InvalidInput) as e:
        reported().reject(reason="", by=REVIEWER, at=T0)
    assert e.value.field == "reason"


# -- rectification ----------------------------------------------------------------------------
def test_art17_provider_staff_of_that_provider_rectify_on_time() -> None:
    issue = verified(days=10)
    issue.rectify(note="backfilled districts from address register", version=4, by=STAFF, at=T0 + timedelta(days=5))
    assert issue.status is IssueStatus.RECTIFIED
    assert issue.rectified_version == 4
    assert issue.rectified_late is False
    assert not issue.is_overdue(T0 + timedelta(days=100))


@pytest.mark.parametrize("actor", [OTHER_STAFF, PM, REVIEWER, ADMIN, ANALYST])
def test_art17_nobody_else_rectifies(actor: Actor) -> None:
    issue = verified()
    with pytest.raises(PermissionDenied):
        issue.rectify(note="fixed", by=actor, at=T0)
    assert issue.status is IssueStatus.VERIFIED


def test_art17_rectification_needs_verification_first() -> None:
    with pytest.raises(InvalidState):
        reported().rectify(note="fixed", by=STAFF, at=T0)


@pytest.mark.parametrize(("field", "kwargs"), [("note", {"note": ""}), ("version", {"version": 0}),
                                               ("version", {"version": "3"}), ("at", {"at": datetime(2025, 5, 1)})])
def test_rectification_fields_are_validated(field: str, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"note": "fixed", "by": STAFF, "at": T0 + timedelta(days=1)}
    args.update(kwargs)
    issue = verified()
    with pytest.raises(InvalidInput) as e:
        issue.rectify(**args)
    assert e.value.field == field
    assert issue.status is IssueStatus.VERIFIED


def test_art17_rectification_after_the_deadline_is_accepted_but_late() -> None:
    issue = verified(days=10)
    deadline = issue.deadline
    assert deadline is not None
    assert not issue.is_overdue(deadline)
    assert issue.is_overdue(deadline + timedelta(seconds=1))
    issue.rectify(note="finally fixed", by=STAFF, at=deadline + timedelta(days=3))
    assert issue.status is IssueStatus.RECTIFIED and issue.rectified_late is True
    assert not issue.is_overdue(deadline + timedelta(days=30))


def test_art17_refusal_to_rectify_makes_the_issue_overdue_at_once() -> None:
    issue = verified(days=30)
    assert not issue.is_overdue(T0 + timedelta(days=2))
    issue.refuse(reason="source system cannot record districts", by=STAFF, at=T0 + timedelta(days=1))
    assert issue.status is IssueStatus.VERIFIED
    assert issue.is_overdue(T0 + timedelta(days=2))
    with pytest.raises(InvalidState):
        issue.refuse(reason="again", by=STAFF, at=T0 + timedelta(days=2))
    with pytest.raises(PermissionDenied):
        verified().refuse(reason="not ours", by=OTHER_STAFF, at=T0)
    # Refusing does not end the duty: a later rectification is still recorded.
    issue.rectify(note="fixed after all", by=STAFF, at=T0 + timedelta(days=40))
    assert issue.rectified_late is True


def test_is_overdue_is_false_before_verification_and_after_rejection() -> None:
    far = T0 + timedelta(days=1000)
    assert not reported().is_overdue(far)
    issue = reported()
    issue.reject(reason="not an error", by=PM, at=T0)
    assert not issue.is_overdue(far)


# -- deadline extension -------------------------------------------------------------------------
def test_art17_operator_extends_the_deadline_once_with_a_reason() -> None:
    issue = verified(days=10)
    first = issue.deadline
    assert first is not None
    issue.extend_deadline(days=20, reason="supplier migration", by=ADMIN, at=T0 + timedelta(days=9))
    assert issue.deadline == first + timedelta(days=20)
    assert issue.deadline_extended and issue.extension_reason == "supplier migration"
    with pytest.raises(DeadlineAlreadyExtended):
        issue.extend_deadline(days=5, reason="again", by=ADMIN, at=T0 + timedelta(days=20))
    assert issue.deadline == first + timedelta(days=20)


def test_extension_rules() -> None:
    issue = verified()
    with pytest.raises(PermissionDenied):
        issue.extend_deadline(days=5, reason="please", by=STAFF, at=T0)
    with pytest.raises(InvalidInput) as e:
        issue.extend_deadline(days=5, reason="", by=PM, at=T0)
    assert e.value.field == "reason"
    with pytest.raises(InvalidInput) as e:
        issue.extend_deadline(days=0, reason="r", by=PM, at=T0)
    assert e.value.field == "days"
    with pytest.raises(InvalidState):
        reported().extend_deadline(days=5, reason="r", by=PM, at=T0)
    assert not issue.deadline_extended


# -- closing -----------------------------------------------------------------------------------
def test_art17_operator_closes_a_rectified_issue() -> None:
    issue = verified()
    with pytest.raises(InvalidState):
        issue.close(note="done", by=PM, at=T0)
    issue.rectify(note="fixed", by=STAFF, at=T0 + timedelta(days=1))
    with pytest.raises(PermissionDenied):
        issue.close(note="done", by=STAFF, at=T0)
    issue.close(note="checked: district completeness 100%", by=PM, at=T0 + timedelta(days=2))
    assert issue.status is IssueStatus.CLOSED and not issue.is_open
    with pytest.raises(InvalidState):
        issue.close(note="again", by=PM, at=T0)


def test_art15_reporter_cannot_close_own_issue() -> None:
    issue = reported(by=PM)
    issue.verify(deadline_days=5, by=REVIEWER, at=T0)
    issue.rectify(note="fixed", by=STAFF, at=T0)
    with pytest.raises(SeparationOfDuties):
        issue.close(note="done", by=PM, at=T0)


def test_art8_replay_rebuilds_the_same_issue() -> None:
    issue = verified()
    issue.extend_deadline(days=3, reason="holiday", by=PM, at=T0)
    issue.rectify(note="fixed", version=2, by=STAFF, at=T0 + timedelta(days=2))
    issue.close(note="ok", by=REVIEWER, at=T0 + timedelta(days=3))
    copy: Any = None
    for e in issue.collect_events():
        copy = e.mutate(copy)
    assert isinstance(copy, QualityIssue)
    for name in ("status", "deadline", "deadline_extended", "rectified_version", "rectified_late", "closing_note"):
        assert getattr(copy, name) == getattr(issue, name)
    assert [type(e).__name__ for e in issue.collect_events()] == []


# -- no command sequence reaches an invalid state -------------------------------------------------
ACTORS = [ANALYST, PM, PM2, REVIEWER, ADMIN, STAFF, OTHER_STAFF, SUPERVISOR]
TRANSITIONS = {
    IssueStatus.REPORTED: {IssueStatus.VERIFIED, IssueStatus.REJECTED},
    IssueStatus.VERIFIED: {IssueStatus.RECTIFIED},
    IssueStatus.RECTIFIED: {IssueStatus.CLOSED},
    IssueStatus.REJECTED: set(),
    IssueStatus.CLOSED: set(),
}


class QualityIssueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.issue = reported(by=PM)
        self.clock = T0
        self.previous = IssueStatus.REPORTED
        self.extensions = 0
        self.rectified_clock: datetime | None = None

    def attempt(self, command: Any, **kwargs: Any) -> bool:
        before = (self.issue.version, self.issue.status, self.issue.deadline)
        try:
            command(**kwargs)
        except DomainError:
            assert (self.issue.version, self.issue.status, self.issue.deadline) == before
            return False
        return True

    @rule(hours=st.integers(0, 24 * 40))
    def time_passes(self, hours: int) -> None:
        self.clock += timedelta(hours=hours)

    @rule(actor=st.sampled_from(ACTORS), days=st.integers(-2, 100))
    def verify(self, actor: Actor, days: int) -> None:
        self.attempt(self.issue.verify, deadline_days=days, by=actor, at=self.clock)

    @rule(actor=st.sampled_from(ACTORS), reason=st.sampled_from(["", "not upheld"]))
    def reject(self, actor: Actor, reason: str) -> None:
        self.attempt(self.issue.reject, reason=reason, by=actor, at=self.clock)

    @rule(actor=st.sampled_from(ACTORS), days=st.integers(0, 95))
    def extend(self, actor: Actor, days: int) -> None:
        if self.attempt(self.issue.extend_deadline, days=days, reason="need time", by=actor, at=self.clock):
            self.extensions += 1

    @rule(actor=st.sampled_from(ACTORS), version=st.one_of(st.none(), st.integers(-1, 5)))
    def rectify(self, actor: Actor, version: int | None) -> None:
        if self.attempt(self.issue.rectify, note="fixed", version=version, by=actor, at=self.clock):
            self.rectified_clock = self.clock

    @rule(actor=st.sampled_from(ACTORS))
    def refuse(self, actor: Actor) -> None:
        self.attempt(self.issue.refuse, reason="cannot", by=actor, at=self.clock)

    @rule(actor=st.sampled_from(ACTORS))
    def close(self, actor: Actor) -> None:
        self.attempt(self.issue.close, note="ok", by=actor, at=self.clock)

    @precondition(lambda self: self.issue.status is IssueStatus.VERIFIED)
    @rule()
    def overdue_follows_the_deadline(self) -> None:
        deadline = self.issue.deadline
        assert deadline is not None
        assert self.issue.is_overdue(deadline + timedelta(seconds=1))
        assert self.issue.is_overdue(deadline) == bool(self.issue.refusal_reason)

    @invariant()
    def valid_state(self) -> None:
        issue = self.issue
        assert issue.status is self.previous or issue.status in TRANSITIONS[self.previous]
        self.previous = issue.status
        assert (issue.deadline is not None) == (issue.status in (
            IssueStatus.VERIFIED, IssueStatus.RECTIFIED, IssueStatus.CLOSED))
        assert self.extensions <= 1 and issue.deadline_extended == (self.extensions == 1)
        assert issue.verified_by != issue.reported_by
        if issue.status in (IssueStatus.RECTIFIED, IssueStatus.CLOSED):
            assert issue.rectified_at == self.rectified_clock
            assert issue.deadline is not None and issue.rectified_at is not None
            assert issue.rectified_late == (issue.rectified_at > issue.deadline)
        if issue.status is not IssueStatus.VERIFIED:
            assert not issue.is_overdue(self.clock + timedelta(days=1000))


TestQualityIssueMachine = QualityIssueMachine.TestCase
TestQualityIssueMachine.settings = settings(max_examples=80, stateful_step_count=25, deadline=None)
