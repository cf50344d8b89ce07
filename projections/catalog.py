"""Catalog and listings: providers, catalog resources, products, their schemas and versions.

The storefront (art. 7, 24) and the bureau's catalogue review (art. 5, 10, 14) read these
tables. Each row holds what the events say, nothing computed from other aggregates:
ratings, subscriber counts and prices live in their own read models and are joined by
``projections.views``.

One rule of the product lifecycle needs care in a pure mapping: a new version of an
approved or listed product sends it back to compliance review (art. 22), but the
``VersionRegistered`` event does not say which state the product was in. So a product
row keeps the status set by the last status-changing event (``status_event``, with its
notification id) and the notification id of its last version; ``product_status``
derives the current status from the two, exactly as ``DataProduct`` does.

Resource schemas can be replaced wholesale (a rejected entry is revised), and a pure
mapping cannot delete rows it does not know; so field rows carry the notification id
of the event that declared them (``revision``) and the resource row names the current
revision.
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
    Increment,
    Insert,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)

PROVIDERS = Table(
    "rm_catalog_providers",
    {
        "provider_id": TEXT,
        "name": TEXT,
        "kind": TEXT,
        "contact_email": TEXT,
        "staff_count": INT,
        "registered_at": TIMESTAMP,
    },
    key=("provider_id",),
)

RESOURCES = Table(
    "rm_catalog_resources",
    {
        "resource_id": TEXT,
        "provider_id": TEXT,
        "name": TEXT,
        "description": TEXT,
        "category": TEXT,
        "grade": TEXT,
        "openness": TEXT,
        "update_frequency": TEXT,
        "status": TEXT,
        "review_reason": TEXT,
        "reviewed_by": TEXT,
        "reviewed_at": TIMESTAMP,
        "fields_revision": INT,
        "field_count": INT,
        "personal_field_count": INT,
        "version_count": INT,
        "latest_hash": TEXT,
        "latest_rows": INT,
        "latest_version_at": TIMESTAMP,
        "compiled_by": TEXT,
        "compiled_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    key=("resource_id",),
    indexes=(("provider_id",),),
)

RESOURCE_FIELDS = Table(
    "rm_catalog_resource_fields",
    {
        "resource_id": TEXT,
        "revision": INT,
        "position": INT,
        "name": TEXT,
        "dtype": TEXT,
        "description": TEXT,
        "personal": BOOL,
    },
    key=("resource_id", "revision", "position"),
)

RESOURCE_VERSIONS = Table(
    "rm_catalog_resource_versions",
    {
        "resource_id": TEXT,
        "number": INT,
        "content_hash": TEXT,
        "row_count": INT,
        "at": TIMESTAMP,
        "registered_by": TEXT,
    },
    key=("resource_id", "number"),
)

SUPPLY = Table(
    "rm_catalog_supply",
    {
        "resource_id": TEXT,
        "product_id": TEXT,
        "status": TEXT,
        "requested_by": TEXT,
        "requested_at": TIMESTAMP,
        "decided_by": TEXT,
        "decided_at": TIMESTAMP,
        "reason": TEXT,
    },
    key=("resource_id", "product_id"),
    indexes=(("product_id",),),
)

PRODUCTS = Table(
    "rm_catalog_products",
    {
        "product_id": TEXT,
        "name": TEXT,
        "description": TEXT,
        "category": TEXT,
        "grade": TEXT,
        "delivery_modes": TEXT,
        "builder_id": TEXT,
        "status_event": TEXT,
        "status_event_id": INT,
        "version_event_id": INT,
        "review_reason": TEXT,
        "reviewer_id": TEXT,
        "reviewed_at": TIMESTAMP,
        "listed_at": TIMESTAMP,
        "unlist_reason": TEXT,
        "field_count": INT,
        "personal_field_count": INT,
        "source_count": INT,
        "version_count": INT,
        "latest_hash": TEXT,
        "latest_rows": INT,
        "latest_version_at": TIMESTAMP,
        "showcase_count": INT,
        "expert_opinion_count": INT,
        "built_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    key=("product_id",),
)

PRODUCT_SOURCES = Table(
    "rm_catalog_product_sources",
    {
        "product_id": TEXT,
        "resource_id": TEXT,
        "provider_id": TEXT,
        "grade": TEXT,
        "openness": TEXT,
        "consent_granted": BOOL,
    },
    key=("product_id", "resource_id"),
    indexes=(("provider_id",),),
)

PRODUCT_FIELDS = Table(
    "rm_catalog_product_fields",
    {
        "product_id": TEXT,
        "position": INT,
        "name": TEXT,
        "dtype": TEXT,
        "description": TEXT,
        "personal": BOOL,
    },
    key=("product_id", "position"),
)

PRODUCT_VERSIONS = Table(
    "rm_catalog_product_versions",
    {
        "product_id": TEXT,
        "number": INT,
        "content_hash": TEXT,
        "row_count": INT,
        "at": TIMESTAMP,
        "registered_by": TEXT,
    },
    key=("product_id", "number"),
)

SHOWCASES = Table(
    "rm_catalog_showcases",
    {
        "product_id": TEXT,
        "notification_id": INT,
        "title": TEXT,
        "unit_name": TEXT,
        "summary": TEXT,
        "added_at": TIMESTAMP,
    },
    key=("product_id", "notification_id"),
)

EXPERT_OPINIONS = Table(
    "rm_catalog_expert_opinions",
    {
        "product_id": TEXT,
        #: The notification id of the opinion's event: orders a product's opinions as recorded.
        "opinion_id": INT,
        "expert": TEXT,
        "opinion": TEXT,
        "recommendation": TEXT,
        "recorded_by": TEXT,
        "recorded_at": TIMESTAMP,
    },
    key=("product_id", "opinion_id"),
)

#: Statuses a new product version sends back to compliance review (``DataProduct._version_registered``).
REVIEWED_AGAIN_ON_NEW_VERSION = frozenset({"approved", "listed"})


def product_status(status_event: str | None, status_event_id: int | None, version_event_id: int | None) -> str:
    """The product's current status from its last status event and its last version (see module doc)."""
    status = status_event or "draft"
    if status in REVIEWED_AGAIN_ON_NEW_VERSION and (version_event_id or 0) > (status_event_id or 0):
        return "in_review"
    return status



# -- providers -------------------------------------------------------------------------------


def _provider_registered(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Upsert(PROVIDERS.name, {
        "provider_id": e.originator_id, "name": d["name"], "kind": d["kind"], "contact_email": d["contact_email"],
        "staff_count": 0, "registered_at": d["timestamp"],
    }),)


def _staff_added(e: Recorded) -> Sequence[Op]:
    return (Increment(PROVIDERS.name, {"provider_id": e.originator_id}, {"staff_count": 1}),)


def _staff_removed(e: Recorded) -> Sequence[Op]:
    return (Increment(PROVIDERS.name, {"provider_id": e.originator_id}, {"staff_count": -1}),)


# -- catalog resources (art. 5, 10-14) -----------------------------------------------------------


def _fields(e: Recorded, fields: Sequence[Mapping[str, Any]]) -> list[Op]:
    rid, revision = e.originator_id, e.notification_id
    return [
        Insert(RESOURCE_FIELDS.name, (rid, revision, i, f["name"], f["dtype"], f["description"], bool(f["personal"])))
        for i, f in enumerate(fields)
    ]


def _description(d: Mapping[str, Any]) -> dict[str, Any]:
    fields = d["fields"]
    return {
        "description": d["description"], "category": d["category"], "grade": d["grade"], "openness": d["openness"],
        "update_frequency": d["update_frequency"], "field_count": len(fields),
        "personal_field_count": sum(1 for f in fields if f["personal"]),
    }


def _resource_compiled(e: Recorded) -> Sequence[Op]:
    d = e.data
    row = {
        "resource_id": e.originator_id, "provider_id": d["provider_id"], "name": d["name"], **_description(d),
        "status": "submitted", "review_reason": "", "reviewed_by": None, "reviewed_at": None,
        "fields_revision": e.notification_id, "version_count": 0, "latest_hash": None, "latest_rows": None,
        "latest_version_at": None, "compiled_by": acting_user(d), "compiled_at": d["timestamp"],
        "updated_at": d["timestamp"],
    }
    return [Upsert(RESOURCES.name, row), *_fields(e, d["fields"])]


def _resource_revised(e: Recorded) -> Sequence[Op]:
    d = e.data
    values = {**_description(d), "status": "submitted", "fields_revision": e.notification_id,
              "updated_at": d["timestamp"]}
    return [Update(RESOURCES.name, {"resource_id": e.originator_id}, values), *_fields(e, d["fields"])]


def _resource_reviewed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Update(RESOURCES.name, {"resource_id": e.originator_id}, {
        "status": "approved" if d["approved"] else "rejected", "review_reason": d["reason"],
        "reviewed_by": acting_user(d), "reviewed_at": d["timestamp"], "updated_at": d["timestamp"],
    }),)


def _resource_version(e: Recorded) -> Sequence[Op]:
    d = e.data
    rid = e.originator_id
    return (
        Insert(RESOURCE_VERSIONS.name, (rid, d["number"], d["content_hash"], d["row_count"], d["at"], acting_user(d))),
        Update(RESOURCES.name, {"resource_id": rid}, {
            "version_count": d["number"], "latest_hash": d["content_hash"], "latest_rows": d["row_count"],
            "latest_version_at": d["at"], "updated_at": d["timestamp"],
        }),
    )


def _supply_requested(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Upsert(SUPPLY.name, {
        "resource_id": e.originator_id, "product_id": d["product_id"], "status": "pending",
        "requested_by": acting_user(d),
        "requested_at": d["timestamp"], "decided_by": None, "decided_at": None, "reason": "",
    }),)


def _supply_decided(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Update(SUPPLY.name, {"resource_id": e.originator_id, "product_id": d["product_id"]}, {
        "status": "granted" if d["granted"] else "refused", "decided_by": acting_user(d), "decided_at": d["timestamp"],
        "reason": d["reason"],
    }),)


# -- products (art. 7, 14, 22, 27) ---------------------------------------------------------------


def _sources(e: Recorded, sources: Sequence[Mapping[str, Any]]) -> list[Op]:
    return [
        Upsert(PRODUCT_SOURCES.name, {
            "product_id": e.originator_id, "resource_id": s["resource_id"], "provider_id": s["provider_id"],
            "grade": s["grade"], "openness": s["openness"], "consent_granted": bool(s["consent_granted"]),
        })
        for s in sources
    ]


def _product_built(e: Recorded) -> Sequence[Op]:
    d = e.data
    pid = e.originator_id
    fields = d["fields"]
    row = {
        "product_id": pid, "name": d["name"], "description": d["description"], "category": d["category"],
        "grade": d["grade"], "delivery_modes": ",".join(d["delivery_modes"]), "builder_id": acting_user(d),
        "status_event": "draft", "status_event_id": e.notification_id, "version_event_id": 0,
        "review_reason": "", "reviewer_id": None, "reviewed_at": None, "listed_at": None, "unlist_reason": "",
        "field_count": len(fields), "personal_field_count": sum(1 for f in fields if f["personal"]),
        "source_count": len(d["sources"]), "version_count": 0, "latest_hash": None, "latest_rows": None,
        "latest_version_at": None, "showcase_count": 0, "expert_opinion_count": 0,
        "built_at": d["timestamp"], "updated_at": d["timestamp"],
    }
    return [
        Upsert(PRODUCTS.name, row),
        *_sources(e, d["sources"]),
        *(
            Insert(PRODUCT_FIELDS.name, (pid, i, f["name"], f["dtype"], f["description"], bool(f["personal"])))
            for i, f in enumerate(fields)
        ),
    ]


def _status(e: Recorded, status: str, **values: Any) -> Op:
    return Update(PRODUCTS.name, {"product_id": e.originator_id}, {
        "status_event": status, "status_event_id": e.notification_id, **values, "updated_at": e.data["timestamp"],
    })


def _product_version(e: Recorded) -> Sequence[Op]:
    d = e.data
    pid = e.originator_id
    return (
        Insert(PRODUCT_VERSIONS.name, (pid, d["number"], d["content_hash"], d["row_count"], d["at"], acting_user(d))),
        Update(PRODUCTS.name, {"product_id": pid}, {
            "version_event_id": e.notification_id, "version_count": d["number"], "latest_hash": d["content_hash"],
            "latest_rows": d["row_count"], "latest_version_at": d["at"], "updated_at": d["timestamp"],
        }),
    )


def _product_submitted(e: Recorded) -> Sequence[Op]:
    return [_status(e, "in_review", review_reason=""), *_sources(e, e.data["sources"])]


def _product_reviewed(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (_status(e, "approved" if d["approved"] else "rejected", review_reason=d["reason"],
                    reviewer_id=acting_user(d), reviewed_at=d["timestamp"]),)


def _product_listed(e: Recorded) -> Sequence[Op]:
    return (_status(e, "listed", listed_at=e.data["timestamp"], unlist_reason=""),)


def _product_unlisted(e: Recorded) -> Sequence[Op]:
    return (_status(e, "approved", unlist_reason=e.data["reason"]),)


def _showcase_added(e: Recorded) -> Sequence[Op]:
    d = e.data
    s = d["showcase"]
    pid = e.originator_id
    return (
        Insert(SHOWCASES.name, (pid, e.notification_id, s["title"], s["unit_name"], s["summary"], d["timestamp"])),
        Increment(PRODUCTS.name, {"product_id": pid}, {"showcase_count": 1}),
    )


def _expert_opinion(e: Recorded) -> Sequence[Op]:
    # The opinion itself, not only its count: the storefront and the compliance reviewer read it (art. 6).
    d = e.data
    o = d["opinion"]
    pid = e.originator_id
    return (
        Insert(EXPERT_OPINIONS.name, (pid, e.notification_id, o["expert"], o["opinion"], o["recommendation"],
                                      o["recorded_by"], d["timestamp"])),
        Increment(PRODUCTS.name, {"product_id": pid}, {"expert_opinion_count": 1}),
    )


_C = "domain.catalog:"
_P = "domain.products:DataProduct."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _C + "Provider.Registered": _provider_registered,
    _C + "Provider.StaffAdded": _staff_added,
    _C + "Provider.StaffRemoved": _staff_removed,
    _C + "CatalogResource.Compiled": _resource_compiled,
    _C + "CatalogResource.Revised": _resource_revised,
    _C + "CatalogResource.Reviewed": _resource_reviewed,
    _C + "CatalogResource.VersionRegistered": _resource_version,
    _C + "CatalogResource.SupplyRequested": _supply_requested,
    _C + "CatalogResource.SupplyDecided": _supply_decided,
    _P + "Built": _product_built,
    _P + "VersionRegistered": _product_version,
    _P + "SubmittedForReview": _product_submitted,
    _P + "ComplianceReviewed": _product_reviewed,
    _P + "Listed": _product_listed,
    _P + "Unlisted": _product_unlisted,
    _P + "ShowcaseAdded": _showcase_added,
    _P + "ExpertOpinionAdded": _expert_opinion,
}


class CatalogProjection(HandlerProjection):
    """Providers, catalog resources (schema, grade, openness, review, versions, consents) and products
    (with their showcases and the expert committee's opinions on them)."""

    name = "catalog"
    #: 2: the expert committee's opinions on products (``rm_catalog_expert_opinions``), not only their count.
    version = 2
    handlers = HANDLERS
    tables = (
        PROVIDERS, RESOURCES, RESOURCE_FIELDS, RESOURCE_VERSIONS, SUPPLY,
        PRODUCTS, PRODUCT_SOURCES, PRODUCT_FIELDS, PRODUCT_VERSIONS, SHOWCASES, EXPERT_OPINIONS,
    )
