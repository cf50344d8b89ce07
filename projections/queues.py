"""Review queues: what each role must act on next.

One table of work items, one row per (queue, item), opened and closed by the events of
the workflow it belongs to. Each row names the roles that act on it (as
``marketplace.access`` grants them), the provider or unit it belongs to when only that
organisation's people act (supply consent and rectification: the provider's staff;
agreement signatures: the unit's admins), and the user who must not act on it
(separation of duties, art. 15-16, 22: the builder of a product does not review it, the
filer of an application does not decide it, the reporter of an issue does not verify
or close it). ``views.queue`` filters by role, user and organisation and flags overdue
deadlines at read time.

Queues (``QUEUES``):

- ``unit_qualification``: registered units awaiting the qualification review (art. 22);
- ``demand_assessment`` / ``demand_decision``: applications to assess, then decide (art. 21-22);
- ``compliance_review``: products in compliance review (art. 22), never their builder's;
- ``catalog_review``: catalog entries for the bureau to review (art. 5, 10);
- ``supply_consent``: supply requests for the provider's staff (art. 14);
- ``quality_verification`` / ``quality_rectification`` / ``quality_closing``: the
  objection workflow of art. 17 (the provider rectifies by a deadline);
- ``agreement_signature``: agreements of art. 22 awaiting a signature, per side;
- ``demand_post_response``: needs posted on the demand board, awaiting an answer (art. 19-20).

A product goes back to compliance review when a version is registered while it is
approved or listed, which the version event itself does not say; its row therefore
keeps whether the last review approved it (``armed``, with that review's notification
id) and the last version's id (``trigger_id``), and is open when submitted or when a
version came after an approval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from projections.base import (
    BOOL,
    INT,
    TEXT,
    TIMESTAMP,
    HandlerProjection,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)
from projections.usage import plain, raw_user

#: queue -> (roles that act on it, what acting means).
QUEUES: dict[str, tuple[tuple[str, ...], str]] = {
    "unit_qualification": (("operator_admin", "compliance_reviewer"), "decide the unit's qualification"),
    "demand_assessment": (("compliance_reviewer",), "assess the application's risk"),
    "demand_decision": (("compliance_reviewer", "operator_admin"), "decide the application"),
    "compliance_review": (("compliance_reviewer",), "review the product for compliance"),
    "catalog_review": (("supervisor",), "review the catalog entry"),
    "supply_consent": (("provider_staff",), "consent to or refuse supplying the resource"),
    "quality_verification": (("product_manager", "compliance_reviewer"), "verify or reject the quality issue"),
    "quality_rectification": (("provider_staff",), "rectify the data by the deadline"),
    "quality_closing": (("product_manager", "compliance_reviewer"), "check the rectification and close"),
    "agreement_signature": (("unit_admin", "operator_admin"), "sign the agreement"),
    "demand_post_response": (("product_manager", "operator_admin"), "answer the posted need"),
}

ITEMS = Table(
    "rm_queues_items",
    {
        "queue": TEXT,
        "item_id": TEXT,
        "subject": TEXT,
        "roles": TEXT,
        "provider_id": TEXT,
        "unit_id": TEXT,
        "excluded_user": TEXT,
        "opened": BOOL,
        "since": TIMESTAMP,
        "deadline": TIMESTAMP,
        "note": TEXT,
        "armed": BOOL,
        "armed_id": INT,
        "trigger_id": INT,
        "trigger_at": TIMESTAMP,
        "closed_at": TIMESTAMP,
        "closed_by": TEXT,
    },
    key=("queue", "item_id"),
    indexes=(("opened",),),
)

#: Catalog resources' provider and name: supply requests name only the resource.
RESOURCES = Table(
    "rm_queues_resources",
    {"resource_id": TEXT, "provider_id": TEXT, "name": TEXT},
    key=("resource_id",),
)

#: Product names, for the subject of supply requests.
PRODUCTS = Table("rm_queues_products", {"product_id": TEXT, "name": TEXT}, key=("product_id",))

AGREEMENT_KINDS = ("service", "confidentiality")
PARTIES = {"unit": "unit_admin", "operator": "operator_admin"}



def _open(
    queue: str, item_id: str, subject: str, at: str, *, opened: bool = True, roles: Sequence[str] | None = None,
    provider_id: str | None = None, unit_id: str | None = None, excluded_user: str | None = None,
    deadline: str | None = None, note: str = "",
) -> Op:
    return Upsert(ITEMS.name, {
        "queue": queue, "item_id": item_id, "subject": subject, "roles": ",".join(roles or QUEUES[queue][0]),
        "provider_id": provider_id, "unit_id": unit_id, "excluded_user": excluded_user, "opened": opened,
        "since": at if opened else None, "deadline": deadline, "note": note, "armed": False, "armed_id": 0,
        "trigger_id": 0, "trigger_at": None, "closed_at": None, "closed_by": None,
    })


def _update(queue: str, item_id: str, **values: Any) -> Op:
    return Update(ITEMS.name, {"queue": queue, "item_id": item_id}, values)


def _close(e: Recorded, queue: str, item_id: str | None = None, **values: Any) -> Op:
    d = e.data
    return _update(queue, item_id or e.originator_id, opened=False, closed_at=d["timestamp"], closed_by=acting_user(d),
                   **values)


def _drop(queue: str, item_id: str, note: str) -> Op:
    """Close an item that may already be closed (a withdrawal, a termination): its closing stays as it was."""
    return _update(queue, item_id, opened=False, note=note)


def _reopen(e: Recorded, queue: str, item_id: str | None = None, **values: Any) -> Op:
    return _update(queue, item_id or e.originator_id, opened=True, since=e.data["timestamp"], closed_at=None,
                   closed_by=None, **values)


# -- units (art. 22) ------------------------------------------------------------------------------


def _unit_registered(e: Recorded) -> Sequence[Op]:
    d = e.raw  # the parties stream is the bulk of a large log: the cheapest decoding
    uid = e.originator_id
    return (_open("unit_qualification", uid, d["name"], plain(d["timestamp"]), unit_id=uid),)


def _unit_decided(e: Recorded) -> Sequence[Op]:
    d = e.raw
    return (_update("unit_qualification", e.originator_id, opened=False, closed_at=plain(d["timestamp"]),
                    closed_by=raw_user(d)),)


def _unit_terminated(e: Recorded) -> Sequence[Op]:
    return (_drop("unit_qualification", e.originator_id, "unit terminated"),)


# -- demand applications (art. 21-22) ---------------------------------------------------------------


def _filed(e: Recorded) -> Sequence[Op]:
    d = e.data
    aid, at, filer = e.originator_id, d["timestamp"], acting_user(d)
    subject = f"{d['purpose']} ({d['purpose_class']})"
    return (
        _open("demand_assessment", aid, subject, at, unit_id=d["unit_id"], excluded_user=filer),
        _open("demand_decision", aid, subject, at, opened=False, unit_id=d["unit_id"], excluded_user=filer),
    )


def _risk_assessed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (
        _close(e, "demand_assessment", note=f"risk {d['level']}"),
        _reopen(e, "demand_decision", note=f"risk {d['level']}"),
    )


def _decided(e: Recorded) -> Sequence[Op]:
    return (_close(e, "demand_decision", note="approved" if e.data["approved"] else "rejected"),)


def _withdrawn(e: Recorded) -> Sequence[Op]:
    aid = e.originator_id
    return (_drop("demand_assessment", aid, "withdrawn"), _drop("demand_decision", aid, "withdrawn"))


# -- products (art. 22) ------------------------------------------------------------------------------


def _built(e: Recorded) -> Sequence[Op]:
    d = e.data
    pid = e.originator_id
    return (
        _open("compliance_review", pid, d["name"], d["timestamp"], opened=False, excluded_user=acting_user(d)),
        Upsert(PRODUCTS.name, {"product_id": pid, "name": d["name"]}),
    )


def _submitted(e: Recorded) -> Sequence[Op]:
    return (_reopen(e, "compliance_review"),)


def _reviewed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_close(e, "compliance_review", armed=bool(d["approved"]), armed_id=e.notification_id),)


def _product_version(e: Recorded) -> Sequence[Op]:
    return (_update("compliance_review", e.originator_id, trigger_id=e.notification_id,
                    trigger_at=e.data["timestamp"]),)


# -- catalog (art. 5, 10, 14) ---------------------------------------------------------------------------


def _compiled(e: Recorded) -> Sequence[Op]:
    d = e.data
    rid = e.originator_id
    return (
        _open("catalog_review", rid, d["name"], d["timestamp"], provider_id=d["provider_id"]),
        Upsert(RESOURCES.name, {"resource_id": rid, "provider_id": d["provider_id"], "name": d["name"]}),
    )


def _revised(e: Recorded) -> Sequence[Op]:
    return (_reopen(e, "catalog_review", note="revised"),)


def _resource_reviewed(e: Recorded) -> Sequence[Op]:
    return (_close(e, "catalog_review"),)


def _supply_requested(e: Recorded) -> Sequence[Op]:
    d = e.data
    # provider_id and the subject's names are joined at read time from rm_queues_resources / _products.
    return (_open("supply_consent", f"{e.originator_id}/{d['product_id']}", "", d["timestamp"]),)


def _supply_decided(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_close(e, "supply_consent", f"{e.originator_id}/{d['product_id']}",
                   note="granted" if d["granted"] else "refused"),)


# -- quality issues (art. 11, 17) ---------------------------------------------------------------------


def _issue_reported(e: Recorded) -> Sequence[Op]:
    d = e.data
    iid, at, reporter, provider = e.originator_id, d["timestamp"], acting_user(d), d["provider_id"]
    subject = f"{d['dimension']}: {d['description']}"
    return (
        _open("quality_verification", iid, subject, at, provider_id=provider, excluded_user=reporter),
        _open("quality_rectification", iid, subject, at, opened=False, provider_id=provider),
        _open("quality_closing", iid, subject, at, opened=False, provider_id=provider, excluded_user=reporter),
    )


def _issue_verified(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (
        _close(e, "quality_verification", note="verified"),
        _reopen(e, "quality_rectification", deadline=d["deadline"]),
    )


def _issue_rejected(e: Recorded) -> Sequence[Op]:
    return (_close(e, "quality_verification", note="rejected"),)


def _issue_extended(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_update("quality_rectification", e.originator_id, deadline=d["deadline"],
                    note=f"deadline extended: {d['reason']}"),)


def _issue_refused(e: Recorded) -> Sequence[Op]:
    return (_update("quality_rectification", e.originator_id, note=f"refused: {e.data['reason']}"),)


def _issue_rectified(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (
        _close(e, "quality_rectification", note="rectified late" if d["late"] else "rectified"),
        _reopen(e, "quality_closing", note=d["note"]),
    )


def _issue_closed(e: Recorded) -> Sequence[Op]:
    return (_close(e, "quality_closing"),)


# -- agreements (art. 22) -----------------------------------------------------------------------------


def _subscription_created(e: Recorded) -> Sequence[Op]:
    d = e.data
    sid, at = e.originator_id, d["timestamp"]
    return [
        _open("agreement_signature", f"{sid}/{kind}/{party}", f"{kind} agreement, {party} side", at,
              roles=(role,), unit_id=d["unit_id"])
        for kind in AGREEMENT_KINDS
        for party, role in PARTIES.items()
    ]


def _signed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_close(e, "agreement_signature", f"{e.originator_id}/{d['kind']}/{d['party']}"),)


def _subscription_ended(e: Recorded) -> Sequence[Op]:
    """A pending subscription terminated or expired needs no more signatures (no-op on closed rows)."""
    sid = e.originator_id
    return [
        _drop("agreement_signature", f"{sid}/{kind}/{party}", f"subscription {e.event_name.lower()}")
        for kind in AGREEMENT_KINDS
        for party in PARTIES
    ]


# -- demand board (art. 19-20) --------------------------------------------------------------------------


def _posted(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_open("demand_post_response", e.originator_id, d["title"], d["timestamp"], unit_id=d["unit_id"]),)


def _post_answered(e: Recorded) -> Sequence[Op]:
    return (_close(e, "demand_post_response"),)


HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    "domain.parties:ApplicationUnit.Registered": _unit_registered,
    "domain.parties:ApplicationUnit.QualificationDecided": _unit_decided,
    "domain.parties:ApplicationUnit.Terminated": _unit_terminated,
    "domain.demand:DemandApplication.Filed": _filed,
    "domain.demand:DemandApplication.RiskAssessed": _risk_assessed,
    "domain.demand:DemandApplication.Decided": _decided,
    "domain.demand:DemandApplication.Withdrawn": _withdrawn,
    "domain.products:DataProduct.Built": _built,
    "domain.products:DataProduct.SubmittedForReview": _submitted,
    "domain.products:DataProduct.ComplianceReviewed": _reviewed,
    "domain.products:DataProduct.VersionRegistered": _product_version,
    "domain.catalog:CatalogResource.Compiled": _compiled,
    "domain.catalog:CatalogResource.Revised": _revised,
    "domain.catalog:CatalogResource.Reviewed": _resource_reviewed,
    "domain.catalog:CatalogResource.SupplyRequested": _supply_requested,
    "domain.catalog:CatalogResource.SupplyDecided": _supply_decided,
    "domain.quality:QualityIssue.Reported": _issue_reported,
    "domain.quality:QualityIssue.Verified": _issue_verified,
    "domain.quality:QualityIssue.Rejected": _issue_rejected,
    "domain.quality:QualityIssue.DeadlineExtended": _issue_extended,
    "domain.quality:QualityIssue.RectificationRefused": _issue_refused,
    "domain.quality:QualityIssue.Rectified": _issue_rectified,
    "domain.quality:QualityIssue.Closed": _issue_closed,
    "domain.licensing:Subscription.Created": _subscription_created,
    "domain.licensing:Subscription.AgreementSigned": _signed,
    "domain.licensing:Subscription.Terminated": _subscription_ended,
    "domain.licensing:Subscription.Expired": _subscription_ended,
    "domain.demand:DemandPost.Posted": _posted,
    "domain.demand:DemandPost.Responded": _post_answered,
    "domain.demand:DemandPost.Closed": _post_answered,
}


class QueuesProjection(HandlerProjection):
    """Open work items per queue, with who acts, for which organisation, and who may not."""

    name = "queues"
    version = 1
    handlers = HANDLERS
    tables = (ITEMS, RESOURCES, PRODUCTS)
