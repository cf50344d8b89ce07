"""Demand applications (art. 6, 21-22) and the demand board (art. 19-20).

Per application: every field of art. 21 the unit filed (scenario, purpose and its class,
the scope of products and fields, the period, the security controls), who filed it and
when, the risk assessment, the expert committee's opinions (art. 6), the decision and
who took it (art. 22: never the filer), or the withdrawal. The scope and the security
controls are lists filed once, so they are kept as JSON text and decoded by
``views.demand_applications``; expert opinions arrive one event at a time, so they are
rows of their own.

Per post on the demand board: the need as posted, its status, how many units need it
(the poster plus every unit that seconded it), the units that seconded it and the
operator's answers.

Demand events are few next to the parties and usage streams: each handler decodes its
event once (``Recorded.data``) and writes plain rows, never a domain object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from projections.base import (
    INT,
    TEXT,
    TIMESTAMP,
    HandlerProjection,
    Increment,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)

APPLICATIONS = Table(
    "rm_demand_applications",
    {
        "application_id": TEXT,
        "unit_id": TEXT,
        "status": TEXT,
        "scenario": TEXT,
        "purpose": TEXT,
        "purpose_class": TEXT,
        #: JSON: ``[{"product_id": ..., "fields": [...]}, ...]`` as filed.
        "scope": TEXT,
        "period_start": TEXT,
        "period_end": TEXT,
        #: JSON: ``["...", ...]`` as filed.
        "security_controls": TEXT,
        "filed_on": TEXT,
        "filed_by": TEXT,
        "filed_at": TIMESTAMP,
        "risk_level": TEXT,
        "risk_notes": TEXT,
        "assessed_by": TEXT,
        "assessed_at": TIMESTAMP,
        "expert_opinion_count": INT,
        "decided_by": TEXT,
        "decided_at": TIMESTAMP,
        "decision_reason": TEXT,
        "withdrawn_by": TEXT,
        "withdrawn_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    key=("application_id",),
    indexes=(("unit_id",), ("status",)),
)

OPINIONS = Table(
    "rm_demand_expert_opinions",
    {
        "application_id": TEXT,
        #: The notification id of the opinion's event: orders a file's opinions as recorded.
        "opinion_id": INT,
        "expert": TEXT,
        "opinion": TEXT,
        "recommendation": TEXT,
        "recorded_by": TEXT,
        "recorded_at": TIMESTAMP,
    },
    key=("application_id", "opinion_id"),
)

POSTS = Table(
    "rm_demand_posts",
    {
        "post_id": TEXT,
        "unit_id": TEXT,
        "title": TEXT,
        "description": TEXT,
        "data_wanted": TEXT,
        "purpose_class": TEXT,
        "status": TEXT,
        #: Units that need this: the poster and every unit that seconded it (``DemandPost.interest``).
        "interest": INT,
        "response_count": INT,
        "posted_by": TEXT,
        "posted_at": TIMESTAMP,
        "close_reason": TEXT,
        "closed_by": TEXT,
        "closed_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    key=("post_id",),
)

RESPONSES = Table(
    "rm_demand_post_responses",
    {
        "post_id": TEXT,
        #: The notification id of the answer's event: orders a post's answers as given.
        "response_id": INT,
        "text": TEXT,
        "product_id": TEXT,
        "responded_by": TEXT,
        "responded_at": TIMESTAMP,
    },
    key=("post_id", "response_id"),
)

#: Units that seconded a post; ``seconded_id`` (the notification id) keeps the order they did.
SECONDS = Table(
    "rm_demand_post_seconds",
    {"post_id": TEXT, "unit_id": TEXT, "seconded_id": INT, "seconded_by": TEXT, "seconded_at": TIMESTAMP},
    key=("post_id", "unit_id"),
)


def _json(value: Any) -> str:
    """Compact, stable JSON text (the same bytes on a rebuild as on the first run)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- applications (art. 21-22) ---------------------------------------------------------------------


def _filed(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    scope = [{"product_id": item["product_id"], "fields": list(item["fields"])} for item in d["scope"]]
    return (Upsert(APPLICATIONS.name, {
        "application_id": e.originator_id, "unit_id": d["unit_id"], "status": "submitted",
        "scenario": d["scenario"], "purpose": d["purpose"], "purpose_class": d["purpose_class"],
        "scope": _json(scope), "period_start": d["period_start"], "period_end": d["period_end"],
        "security_controls": _json(list(d["security_controls"])), "filed_on": d["filed_on"],
        "filed_by": acting_user(d), "filed_at": at, "risk_level": None, "risk_notes": "", "assessed_by": None,
        "assessed_at": None, "expert_opinion_count": 0, "decided_by": None, "decided_at": None,
        "decision_reason": "", "withdrawn_by": None, "withdrawn_at": None, "updated_at": at,
    }),)


def _risk_assessed(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    return (Update(APPLICATIONS.name, {"application_id": e.originator_id}, {
        "status": "under_review", "risk_level": d["level"], "risk_notes": d["notes"],
        "assessed_by": acting_user(d), "assessed_at": at, "updated_at": at,
    }),)


def _opinion_added(e: Recorded) -> Sequence[Op]:
    d = e.data
    opinion = d["opinion"]
    aid, at = e.originator_id, d["timestamp"]
    return (
        Upsert(OPINIONS.name, {
            "application_id": aid, "opinion_id": e.notification_id, "expert": opinion["expert"],
            "opinion": opinion["opinion"], "recommendation": opinion["recommendation"],
            "recorded_by": opinion["recorded_by"], "recorded_at": at,
        }),
        Increment(APPLICATIONS.name, {"application_id": aid}, {"expert_opinion_count": 1}),
        Update(APPLICATIONS.name, {"application_id": aid}, {"updated_at": at}),
    )


def _decided(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    return (Update(APPLICATIONS.name, {"application_id": e.originator_id}, {
        "status": "approved" if d["approved"] else "rejected", "decided_by": acting_user(d), "decided_at": at,
        "decision_reason": d["reason"], "updated_at": at,
    }),)


def _withdrawn(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    # As the aggregate does: the withdrawal's reason is the application's closing reason.
    return (Update(APPLICATIONS.name, {"application_id": e.originator_id}, {
        "status": "withdrawn", "decision_reason": d["reason"], "withdrawn_by": acting_user(d), "withdrawn_at": at,
        "updated_at": at,
    }),)


# -- the demand board (art. 19-20) ----------------------------------------------------------------------


def _posted(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    return (Upsert(POSTS.name, {
        "post_id": e.originator_id, "unit_id": d["unit_id"], "title": d["title"], "description": d["description"],
        "data_wanted": d["data_wanted"], "purpose_class": d["purpose_class"], "status": "open", "interest": 1,
        "response_count": 0, "posted_by": acting_user(d), "posted_at": at, "close_reason": "", "closed_by": None,
        "closed_at": None, "updated_at": at,
    }),)


def _responded(e: Recorded) -> Sequence[Op]:
    d = e.data
    response = d["response"]
    pid, at = e.originator_id, d["timestamp"]
    return (
        Upsert(RESPONSES.name, {
            "post_id": pid, "response_id": e.notification_id, "text": response["text"],
            "product_id": response["product_id"], "responded_by": response["responded_by"], "responded_at": at,
        }),
        Increment(POSTS.name, {"post_id": pid}, {"response_count": 1}),
        Update(POSTS.name, {"post_id": pid}, {"status": "answered", "updated_at": at}),
    )


def _seconded(e: Recorded) -> Sequence[Op]:
    d = e.data
    pid, at = e.originator_id, d["timestamp"]
    return (
        Upsert(SECONDS.name, {"post_id": pid, "unit_id": d["unit_id"], "seconded_id": e.notification_id,
                              "seconded_by": acting_user(d), "seconded_at": at}),
        Increment(POSTS.name, {"post_id": pid}, {"interest": 1}),
        Update(POSTS.name, {"post_id": pid}, {"updated_at": at}),
    )


def _closed(e: Recorded) -> Sequence[Op]:
    d = e.data
    at = d["timestamp"]
    return (Update(POSTS.name, {"post_id": e.originator_id}, {
        "status": "closed", "close_reason": d["reason"], "closed_by": acting_user(d), "closed_at": at,
        "updated_at": at,
    }),)


_A = "domain.demand:DemandApplication."
_P = "domain.demand:DemandPost."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _A + "Filed": _filed,
    _A + "RiskAssessed": _risk_assessed,
    _A + "ExpertOpinionAdded": _opinion_added,
    _A + "Decided": _decided,
    _A + "Withdrawn": _withdrawn,
    _P + "Posted": _posted,
    _P + "Responded": _responded,
    _P + "Seconded": _seconded,
    _P + "Closed": _closed,
}


class DemandProjection(HandlerProjection):
    """Demand applications with every art. 21 field, their review and decision; the demand board."""

    name = "demand"
    version = 1
    handlers = HANDLERS
    tables = (APPLICATIONS, OPINIONS, POSTS, RESPONSES, SECONDS)
