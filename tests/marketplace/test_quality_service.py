"""Quality issue use cases on a real SQLite file and a real PostgreSQL server (art. 11, 17)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.catalog import NotProviderStaff
from domain.errors import InvalidInput, InvalidState, NotFound, PermissionDenied, SeparationOfDuties
from domain.identity import Actor, Role
from domain.quality import DeadlineAlreadyExtended, IssueStatus, QualityDimension, QualityIssue
from marketplace.bootstrap import Marketplace, build
from marketplace.services.quality import QualityService
from tests.scenario import Staff, Unit, approved_resource, built_product, provider, qualified_unit, refused, staff


@dataclass(frozen=True)
class World:
    mp: Marketplace
    people: Staff
    unit: Unit
    provider_id: UUID
    clerk: Actor
    resource_id: UUID
    product_id: UUID


@pytest.fixture
def w(marketplace: Marketplace) -> World:
    """A provider with an approved, versioned resource feeding a built product, and a qualified unit."""
    people = staff(marketplace)
    provider_id, clerk = provider(marketplace, people)
    resource_id = approved_resource(marketplace, people, source=(provider_id, clerk))
    product_id = built_product(marketplace, people, resource_ids=[resource_id])
    return World(marketplace, people, qualified_unit(marketplace, people), provider_id, clerk, resource_id, product_id)


def report(w: World, by: Actor | None = None, **overrides: Any) -> UUID:
    args: dict[str, Any] = {
        "resource_id": w.resource_id, "product_id": w.product_id, "dimension": "accuracy",
        "description": "consumption_m3 is negative for 12 meters in 昆都仑区", "evidence": "sandbox query #4411",
    }
    args.update(overrides)
    return w.mp.quality.report_issue(by or w.unit.analyst, **args)


def at(w: World, days: float) -> QualityService:
    """The quality service as seen ``days`` from now."""
    now = w.mp.quality.clock()
    return QualityService(w.mp.app, clock=lambda: now + timedelta(days=days))


def issue(w: World, issue_id: UUID) -> QualityIssue:
    return w.mp.quality.get(QualityIssue, issue_id)


# -- report ------------------------------------------------------------------------------------------
def test_art17_report_takes_the_provider_from_the_catalog(w: World) -> None:
    iid = report(w)
    reopened = build(w.mp.config)
    try:
        stored = reopened.quality.get(QualityIssue, iid)
    finally:
        reopened.close()
    assert stored.provider_id == w.provider_id
    assert stored.resource_id == w.resource_id and stored.product_id == w.product_id
    assert stored.dimension is QualityDimension.ACCURACY
    assert stored.status is IssueStatus.REPORTED
    assert stored.reported_by == w.unit.analyst.user_id


def test_art17_product_is_optional_and_operator_staff_may_report(w: World) -> None:
    iid = report(w, by=w.people.product_manager, product_id=None, dimension=QualityDimension.TIMELINESS)
    assert issue(w, iid).product_id is None


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("dimension", {"dimension": "prettiness"}),
        ("description", {"description": "bad data"}),
        ("evidence", {"evidence": ""}),
        ("resource_id", {"resource_id": "no-such-thing"}),
        ("product_id", {"product_id": "42"}),
    ],
)
def test_art17_bad_report_names_the_field_and_changes_nothing(
    w: World, field: str, overrides: dict[str, Any]
) -> None:
    with refused(w.mp, InvalidInput) as info:
        report(w, **overrides)
    assert info.value.field == field


def test_report_against_unknown_resource_or_product_is_not_found(w: World) -> None:
    with refused(w.mp, NotFound):
        report(w, resource_id=uuid4())
    with refused(w.mp, NotFound):
        report(w, product_id=uuid4())
    with refused(w.mp, NotFound):
        report(w, resource_id=w.product_id)  # an id of the wrong kind


def test_report_naming_a_product_that_does_not_use_the_resource_is_refused(w: World) -> None:
    other_resource = approved_resource(w.mp, w.people, source=(w.provider_id, w.clerk), name="Water pressure logs")
    with refused(w.mp, InvalidInput) as info:
        report(w, resource_id=other_resource)
    assert info.value.field == "product_id"


def test_art17_roles_without_the_permission_cannot_report(w: World) -> None:
    for actor in (w.people.supervisor, w.people.admin, w.clerk):
        with refused(w.mp, PermissionDenied):
            report(w, by=actor)


# -- verify / reject ------------------------------------------------------------------------------
def test_art17_verification_sets_the_deadline_from_the_clock(w: World) -> None:
    iid = report(w)
    service = at(w, 0)
    service.verify_issue(w.people.reviewer, iid, deadline_days=15)
    stored = issue(w, iid)
    assert stored.status is IssueStatus.VERIFIED
    assert stored.deadline == service.clock() + timedelta(days=15)
    assert stored.verified_by == w.people.reviewer.user_id


def test_verify_refusals_change_nothing(w: World) -> None:
    iid = report(w, by=w.people.product_manager)
    with refused(w.mp, SeparationOfDuties):
        w.mp.quality.verify_issue(w.people.product_manager, iid, deadline_days=5)
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.verify_issue(w.people.reviewer, iid, deadline_days=91)
    assert info.value.field == "deadline_days"
    for actor in (w.unit.analyst, w.clerk, w.people.admin, w.people.supervisor):
        with refused(w.mp, PermissionDenied):
            w.mp.quality.verify_issue(actor, iid, deadline_days=5)
    with refused(w.mp, NotFound):
        w.mp.quality.verify_issue(w.people.reviewer, uuid4(), deadline_days=5)
    w.mp.quality.verify_issue(w.people.reviewer, iid, deadline_days=5)
    with refused(w.mp, InvalidState):
        w.mp.quality.verify_issue(w.people.reviewer, iid, deadline_days=5)


def test_art17_rejected_objection_cannot_be_rectified(w: World) -> None:
    iid = report(w)
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.reject_issue(w.people.reviewer, iid, reason="")
    assert info.value.field == "reason"
    with refused(w.mp, PermissionDenied):
        w.mp.quality.reject_issue(w.clerk, iid, reason="we disagree")
    w.mp.quality.reject_issue(w.people.reviewer, iid, reason="negative values are meter reversals, documented")
    assert issue(w, iid).status is IssueStatus.REJECTED
    with refused(w.mp, InvalidState):
        w.mp.quality.rectify_issue(w.clerk, iid, note="fixed anyway")
    with refused(w.mp, InvalidState):
        w.mp.quality.reject_issue(w.people.product_manager, iid, reason="again")


# -- rectify --------------------------------------------------------------------------------------
def verified(w: World, days: int = 10) -> UUID:
    iid = report(w)
    w.mp.quality.verify_issue(w.people.reviewer, iid, deadline_days=days)
    return iid


def test_art17_provider_staff_rectify_on_time_naming_the_corrected_version(w: World) -> None:
    iid = verified(w)
    at(w, 3).rectify_issue(w.clerk, iid, note="sign error in the meter import fixed", version=1)
    stored = issue(w, iid)
    assert stored.status is IssueStatus.RECTIFIED
    assert stored.rectified_version == 1
    assert stored.rectified_late is False


def test_art17_late_rectification_is_recorded_as_late(w: World) -> None:
    iid = verified(w, days=10)
    assert not at(w, 9).overdue(iid)
    assert at(w, 11).overdue(iid)
    at(w, 12).rectify_issue(w.clerk, iid, note="fixed after the holiday")
    stored = issue(w, iid)
    assert stored.rectified_late is True
    assert not at(w, 30).overdue(iid)


def test_rectify_refusals_change_nothing(w: World) -> None:
    iid = verified(w)
    other_provider, other_clerk = provider(w.mp, w.people, name="Baotou Gas Company", kind="gas",
                                           staff_user="gas-clerk")
    with refused(w.mp, PermissionDenied):
        w.mp.quality.rectify_issue(other_clerk, iid, note="not ours")
    unrostered = Actor("water-intern", Role.PROVIDER_STAFF, provider_id=w.provider_id)
    with refused(w.mp, NotProviderStaff):
        w.mp.quality.rectify_issue(unrostered, iid, note="fixed")
    for actor in (w.people.product_manager, w.unit.admin):
        with refused(w.mp, PermissionDenied):
            w.mp.quality.rectify_issue(actor, iid, note="fixed")
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.rectify_issue(w.clerk, iid, note="fixed", version=7)
    assert info.value.field == "version"
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.rectify_issue(w.clerk, iid, note=" ")
    assert info.value.field == "note"
    with refused(w.mp, NotFound):
        w.mp.quality.rectify_issue(w.clerk, uuid4(), note="fixed")
    unverified = report(w)
    with refused(w.mp, InvalidState):
        w.mp.quality.rectify_issue(w.clerk, unverified, note="fixed before verification")
    assert other_provider != w.provider_id


def test_art17_refusing_to_rectify_makes_the_issue_overdue(w: World) -> None:
    iid = verified(w, days=30)
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.refuse_rectification(w.clerk, iid, reason="")
    assert info.value.field == "reason"
    w.mp.quality.refuse_rectification(w.clerk, iid, reason="the source system has no such field")
    assert w.mp.quality.overdue(iid)
    with refused(w.mp, InvalidState):
        w.mp.quality.refuse_rectification(w.clerk, iid, reason="still no")


# -- extend / close --------------------------------------------------------------------------------
def test_art17_deadline_is_extended_once_with_a_reason(w: World) -> None:
    iid = verified(w, days=10)
    first = issue(w, iid).deadline
    assert isinstance(first, datetime)
    for actor in (w.clerk, w.unit.admin, w.people.supervisor):
        with refused(w.mp, PermissionDenied):
            w.mp.quality.extend_deadline(actor, iid, days=5, reason="please")
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.extend_deadline(w.people.admin, iid, days=5, reason="")
    assert info.value.field == "reason"
    w.mp.quality.extend_deadline(w.people.admin, iid, days=20, reason="vendor migration")
    assert issue(w, iid).deadline == first + timedelta(days=20)
    with refused(w.mp, DeadlineAlreadyExtended):
        w.mp.quality.extend_deadline(w.people.product_manager, iid, days=5, reason="more")
    assert not at(w, 25).overdue(iid)
    assert at(w, 31).overdue(iid)


def test_art17_full_flow_to_closed(w: World) -> None:
    iid = verified(w)
    with refused(w.mp, InvalidState):
        w.mp.quality.close_issue(w.people.product_manager, iid, note="too early")
    w.mp.quality.rectify_issue(w.clerk, iid, note="fixed", version=1)
    for actor in (w.clerk, w.people.admin, w.unit.analyst):
        with refused(w.mp, PermissionDenied):
            w.mp.quality.close_issue(actor, iid, note="done")
    with refused(w.mp, InvalidInput) as info:
        w.mp.quality.close_issue(w.people.product_manager, iid, note="")
    assert info.value.field == "note"
    w.mp.quality.close_issue(w.people.product_manager, iid, note="re-ran the check: no negative readings")
    stored = issue(w, iid)
    assert stored.status is IssueStatus.CLOSED and not stored.is_open
    names = [type(e).__name__ for e in w.mp.app.repository.event_store.get(iid)]
    assert names == ["Reported", "Verified", "Rectified", "Closed"]
