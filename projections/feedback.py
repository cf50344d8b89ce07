"""Feedback review: what units say about products, and the quality issues on their data (art. 11, 17, 26).

Feedback rows hold each feedback's current content (the unit may amend it) and a history
row per given, amended or replied event, so ratings can be followed over time and an
amendment never hides what was said before. Quality issues keep every date of their
workflow (reported, verified with deadline, extended, rectified, refused, closed) in
business time (the ``at`` the service passed), so whether an issue is overdue can be
decided at read time for any moment (``views.quality_issues``): being overdue is a
matter of the reader's clock, which no event records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from projections.base import (
    BOOL,
    INT,
    TEXT,
    TIMESTAMP,
    HandlerProjection,
    Insert,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)

FEEDBACK = Table(
    "rm_feedback_feedback",
    {
        "feedback_id": TEXT,
        "product_id": TEXT,
        "unit_id": TEXT,
        "subscription_id": TEXT,
        "given_by": TEXT,
        "given_at": TIMESTAMP,
        "rating": INT,
        "quality_rating": INT,
        "application_status": TEXT,
        "effect": TEXT,
        "effect_note": TEXT,
        "text": TEXT,
        "last_reply": TEXT,
        "updated_at": TIMESTAMP,
    },
    key=("feedback_id",),
    indexes=(("product_id",),),
)

HISTORY = Table(
    "rm_feedback_history",
    {
        "feedback_id": TEXT,
        "notification_id": INT,
        "change": TEXT,
        "rating": INT,
        "quality_rating": INT,
        "application_status": TEXT,
        "effect": TEXT,
        "text": TEXT,
        "by_user": TEXT,
        "at": TIMESTAMP,
    },
    key=("feedback_id", "notification_id"),
)

ISSUES = Table(
    "rm_feedback_issues",
    {
        "issue_id": TEXT,
        "resource_id": TEXT,
        "product_id": TEXT,
        "provider_id": TEXT,
        "dimension": TEXT,
        "description": TEXT,
        "evidence": TEXT,
        "status": TEXT,
        "reported_by": TEXT,
        "reported_at": TIMESTAMP,
        "verified_by": TEXT,
        "verified_at": TIMESTAMP,
        "deadline": TIMESTAMP,
        "deadline_extended": BOOL,
        "extension_reason": TEXT,
        "rejection_reason": TEXT,
        "refusal_reason": TEXT,
        "refused_at": TIMESTAMP,
        "rectified_at": TIMESTAMP,
        "rectified_late": BOOL,
        "rectified_version": INT,
        "rectification_note": TEXT,
        "closed_at": TIMESTAMP,
        "closing_note": TEXT,
        "updated_at": TIMESTAMP,
    },
    key=("issue_id",),
    indexes=(("provider_id",), ("resource_id",)),
)



# -- feedback (art. 26) -----------------------------------------------------------------------------


def _content(c: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rating": c["rating"], "quality_rating": c["quality_rating"], "application_status": c["application_status"],
        "effect": c["effect"], "effect_note": c["effect_note"], "text": c["text"],
    }


def _history(e: Recorded, change: str, c: Mapping[str, Any] | None, text: str) -> Op:
    d = e.data
    return Insert(HISTORY.name, (
        e.originator_id, e.notification_id, change,
        c["rating"] if c else None, c["quality_rating"] if c else None,
        c["application_status"] if c else None, c["effect"] if c else None,
        text, acting_user(d), d["at"],
    ))


def _given(e: Recorded) -> Sequence[Op]:
    d = e.data
    c = d["content"]
    return (
        Upsert(FEEDBACK.name, {
            "feedback_id": e.originator_id, "product_id": d["product_id"], "unit_id": d["unit_id"],
            "subscription_id": d["subscription_id"], "given_by": acting_user(d), "given_at": d["at"], **_content(c),
            "last_reply": None, "updated_at": d["at"],
        }),
        _history(e, "given", c, c["text"]),
    )


def _amended(e: Recorded) -> Sequence[Op]:
    d = e.data
    c = d["content"]
    return (
        Update(FEEDBACK.name, {"feedback_id": e.originator_id}, {**_content(c), "updated_at": d["at"]}),
        _history(e, "amended", c, d["reason"]),
    )


def _responded(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (
        Update(FEEDBACK.name, {"feedback_id": e.originator_id}, {"last_reply": d["reply"], "updated_at": d["at"]}),
        _history(e, "replied", None, d["reply"]),
    )


# -- quality issues (art. 11, 17) -----------------------------------------------------------------


def _issue(e: Recorded, **values: Any) -> Op:
    return Update(ISSUES.name, {"issue_id": e.originator_id}, {**values, "updated_at": e.data["at"]})


def _reported(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Upsert(ISSUES.name, {
        "issue_id": e.originator_id, "resource_id": d["resource_id"], "product_id": d["product_id"],
        "provider_id": d["provider_id"], "dimension": d["dimension"], "description": d["description"],
        "evidence": d["evidence"], "status": "reported", "reported_by": acting_user(d), "reported_at": d["at"],
        "verified_by": None, "verified_at": None, "deadline": None, "deadline_extended": False,
        "extension_reason": "", "rejection_reason": "", "refusal_reason": "", "refused_at": None,
        "rectified_at": None, "rectified_late": None, "rectified_version": None, "rectification_note": "",
        "closed_at": None, "closing_note": "", "updated_at": d["at"],
    }),)


def _verified(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_issue(e, status="verified", verified_by=acting_user(d), verified_at=d["at"], deadline=d["deadline"]),)


def _rejected(e: Recorded) -> Sequence[Op]:
    return (_issue(e, status="rejected", rejection_reason=e.data["reason"]),)


def _extended(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_issue(e, deadline=d["deadline"], deadline_extended=True, extension_reason=d["reason"]),)


def _rectified(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_issue(e, status="rectified", rectified_at=d["at"], rectified_late=bool(d["late"]),
                   rectified_version=d["version"], rectification_note=d["note"]),)


def _refused(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_issue(e, refusal_reason=d["reason"], refused_at=d["at"]),)


def _closed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_issue(e, status="closed", closed_at=d["at"], closing_note=d["note"]),)


_F = "domain.feedback:Feedback."
_Q = "domain.quality:QualityIssue."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _F + "Given": _given,
    _F + "Amended": _amended,
    _F + "Responded": _responded,
    _Q + "Reported": _reported,
    _Q + "Verified": _verified,
    _Q + "Rejected": _rejected,
    _Q + "DeadlineExtended": _extended,
    _Q + "Rectified": _rectified,
    _Q + "RectificationRefused": _refused,
    _Q + "Closed": _closed,
}


class FeedbackProjection(HandlerProjection):
    """Feedback per product with its history, and quality issues with every date of their workflow."""

    name = "feedback"
    version = 1
    handlers = HANDLERS
    tables = (FEEDBACK, HISTORY, ISSUES)
