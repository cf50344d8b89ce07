"""Application units and their subscriptions (art. 3, 21-23, 34).

Per unit: status, kind, members and the qualification decision (art. 22). Per
subscription: unit, product, status, the two agreements of art. 22 and who signed them
for each side, entitlements and term. What a subscription has left this period is not
stored here: it is the subscription's current entitlements minus the period's usage
ledger (``rm_usage_ledgers``), combined at read time by ``views.unit_subscriptions``,
because the current period is a matter of the reader's clock, not of any event.

The other parties are here too (art. 15-16): the operator's and the bureau's staff with
the roles each holds, in the order granted, and every provider's staff roster (who acts
for which provider). The provider's name is joined at read time from the catalog read
model (``rm_catalog_providers``) by ``views.provider_staff``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from projections.base import (
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    Delete,
    HandlerProjection,
    Insert,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    acting_user,
)
from projections.usage import business_day, plain, raw_user

UNITS = Table(
    "rm_units_units",
    {
        "unit_id": TEXT,
        "name": TEXT,
        "credit_code": TEXT,
        "kind": TEXT,
        "contact_email": TEXT,
        "status": TEXT,
        "status_reason": TEXT,
        "qualification": TEXT,
        "qualification_reason": TEXT,
        "qualified_by": TEXT,
        "qualified_at": TIMESTAMP,
        "registered_by": TEXT,
        "registered_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    key=("unit_id",),
)

MEMBERS = Table(
    "rm_units_members",
    {"unit_id": TEXT, "user_id": TEXT, "role": TEXT, "since": TIMESTAMP},
    key=("unit_id", "user_id"),
    indexes=(("user_id",),),
)

SUBSCRIPTIONS = Table(
    "rm_units_subscriptions",
    {
        "subscription_id": TEXT,
        "unit_id": TEXT,
        "product_id": TEXT,
        "application_id": TEXT,
        "purpose_class": TEXT,
        "plan_id": TEXT,
        "fields": TEXT,
        "status": TEXT,
        "status_reason": TEXT,
        "term_start": TEXT,
        "term_end": TEXT,
        "queries_per_period": INT,
        "rows_per_period": INT,
        "privacy_budget": FLOAT,
        "period": TEXT,
        "created_by": TEXT,
        "created_at": TIMESTAMP,
        "activated_at": TIMESTAMP,
        "ended_on": TEXT,
        "updated_at": TIMESTAMP,
    },
    key=("subscription_id",),
    indexes=(("unit_id",), ("product_id",)),
)

AGREEMENTS = Table(
    "rm_units_agreements",
    {
        "subscription_id": TEXT,
        "kind": TEXT,
        "purpose": TEXT,
        "scope": TEXT,
        "method": TEXT,
        "term_start": TEXT,
        "term_end": TEXT,
        "signed_by_unit": TEXT,
        "signed_at_unit": TIMESTAMP,
        "signed_by_operator": TEXT,
        "signed_at_operator": TIMESTAMP,
    },
    key=("subscription_id", "kind"),
)

STAFF = Table(
    "rm_units_staff",
    {"staff_id": TEXT, "user_id": TEXT, "name": TEXT, "enrolled_by": TEXT, "enrolled_at": TIMESTAMP},
    key=("staff_id",),
    indexes=(("user_id",),),
)

#: Roles each staff member holds now; ``granted_id`` (the grant's notification id) keeps the grant order.
STAFF_ROLES = Table(
    "rm_units_staff_roles",
    {"staff_id": TEXT, "role": TEXT, "granted_id": INT, "granted_by": TEXT, "granted_at": TIMESTAMP},
    key=("staff_id", "role"),
)

#: Providers' rosters; ``added_id`` (the notification id) keeps the roster's order.
PROVIDER_STAFF = Table(
    "rm_units_provider_staff",
    {"provider_id": TEXT, "user_id": TEXT, "added_id": INT, "added_by": TEXT, "added_at": TIMESTAMP},
    key=("provider_id", "user_id"),
    indexes=(("user_id",),),
)



# -- units (``Recorded.raw``: the parties stream is the bulk of a large log) ----------------------


def _registered(e: Recorded) -> Sequence[Op]:
    d = e.raw
    uid, at = e.originator_id, plain(d["timestamp"])
    # A unit and its first member are new rows: plain inserts, the cheapest write there is.
    return (
        Insert(UNITS.name, (uid, d["name"], d["credit_code"], plain(d["kind"]), d["contact_email"],
                            "pending_qualification", "", None, None, None, None, raw_user(d), at, at)),
        Insert(MEMBERS.name, (uid, d["admin_user_id"], "unit_admin", at)),
    )


def _qualification(e: Recorded) -> Sequence[Op]:
    d = e.raw
    at = plain(d["timestamp"])
    return (Update(UNITS.name, {"unit_id": e.originator_id}, {
        "status": "qualified" if d["approved"] else "rejected", "status_reason": d["reason"],
        "qualification": "approved" if d["approved"] else "rejected", "qualification_reason": d["reason"],
        "qualified_by": raw_user(d), "qualified_at": at, "updated_at": at,
    }),)


def _member_added(e: Recorded) -> Sequence[Op]:
    d = e.raw
    return (Upsert(MEMBERS.name, {
        "unit_id": e.originator_id, "user_id": d["user_id"], "role": plain(d["role"]), "since": plain(d["timestamp"]),
    }),)


def _member_removed(e: Recorded) -> Sequence[Op]:
    return (Delete(MEMBERS.name, {"unit_id": e.originator_id, "user_id": e.raw["user_id"]}),)


def _unit_status(status: str) -> Callable[[Recorded], Sequence[Op]]:
    def mapping(e: Recorded) -> Sequence[Op]:
        d = e.raw
        return (Update(UNITS.name, {"unit_id": e.originator_id}, {
            "status": status, "status_reason": d["reason"], "updated_at": plain(d["timestamp"]),
        }),)

    return mapping


# -- subscriptions (art. 22, 23, 34) -----------------------------------------------------------------


def _created(e: Recorded) -> Sequence[Op]:
    d = e.data
    sid, at = e.originator_id, d["timestamp"]
    ent = d["entitlements"]
    ops: list[Op] = [Upsert(SUBSCRIPTIONS.name, {
        "subscription_id": sid, "unit_id": d["unit_id"], "product_id": d["product_id"],
        "application_id": d["application_id"], "purpose_class": d["purpose_class"], "plan_id": d["plan_id"],
        "fields": ",".join(d["fields"]), "status": "pending", "status_reason": "",
        "term_start": d["term_start"], "term_end": d["term_end"],
        "queries_per_period": ent["queries_per_period"], "rows_per_period": ent["rows_per_period"],
        "privacy_budget": float(ent["privacy_budget"]), "period": ent.get("period", "month"),
        "created_by": acting_user(d), "created_at": at, "activated_at": None, "ended_on": None, "updated_at": at,
    })]
    for kind, a in d["agreements"].items():
        ops.append(Upsert(AGREEMENTS.name, {
            "subscription_id": sid, "kind": kind, "purpose": a["purpose"], "scope": ",".join(a["scope"]),
            "method": a["method"], "term_start": a["term_start"], "term_end": a["term_end"],
            "signed_by_unit": a["signed_by_unit"] or None, "signed_at_unit": None,
            "signed_by_operator": a["signed_by_operator"] or None, "signed_at_operator": None,
        }))
    return ops


def _signed(e: Recorded) -> Sequence[Op]:
    d = e.data
    party = d["party"]
    return (
        Update(AGREEMENTS.name, {"subscription_id": e.originator_id, "kind": d["kind"]},
               {f"signed_by_{party}": acting_user(d), f"signed_at_{party}": d["timestamp"]}),
        Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id}, {"updated_at": d["timestamp"]}),
    )


def _activated(e: Recorded) -> Sequence[Op]:
    at = e.data["timestamp"]
    return (Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id},
                   {"status": "active", "activated_at": at, "updated_at": at}),)


def _subscription_status(status: str) -> Callable[[Recorded], Sequence[Op]]:
    def mapping(e: Recorded) -> Sequence[Op]:
        d = e.data
        return (Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id},
                       {"status": status, "status_reason": d["reason"], "updated_at": d["timestamp"]}),)

    return mapping


def _terminated(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id}, {
        "status": "terminated", "status_reason": d["reason"], "ended_on": business_day(d["timestamp"]),
        "updated_at": d["timestamp"],
    }),)


def _expired(e: Recorded) -> Sequence[Op]:
    d = e.data
    return (Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id}, {
        "status": "expired", "status_reason": "term ended", "ended_on": d["on"], "updated_at": d["timestamp"],
    }),)


def _entitlements(e: Recorded) -> Sequence[Op]:
    d = e.data
    ent = d["entitlements"]
    return (Update(SUBSCRIPTIONS.name, {"subscription_id": e.originator_id}, {
        "queries_per_period": ent["queries_per_period"], "rows_per_period": ent["rows_per_period"],
        "privacy_budget": float(ent["privacy_budget"]), "period": ent.get("period", "month"),
        "updated_at": d["timestamp"],
    }),)


# -- operator staff and providers' rosters (art. 15-16) ---------------------------------------------


def _enrolled(e: Recorded) -> Sequence[Op]:
    d = e.raw
    return (Upsert(STAFF.name, {
        "staff_id": e.originator_id, "user_id": d["user_id"], "name": d["name"], "enrolled_by": raw_user(d),
        "enrolled_at": plain(d["timestamp"]),
    }),)


def _role_granted(e: Recorded) -> Sequence[Op]:
    d = e.raw
    return (Upsert(STAFF_ROLES.name, {
        "staff_id": e.originator_id, "role": plain(d["role"]), "granted_id": e.notification_id,
        "granted_by": raw_user(d), "granted_at": plain(d["timestamp"]),
    }),)


def _role_revoked(e: Recorded) -> Sequence[Op]:
    return (Delete(STAFF_ROLES.name, {"staff_id": e.originator_id, "role": plain(e.raw["role"])}),)


def _provider_staff_added(e: Recorded) -> Sequence[Op]:
    d = e.raw
    return (Upsert(PROVIDER_STAFF.name, {
        "provider_id": e.originator_id, "user_id": d["user_id"], "added_id": e.notification_id,
        "added_by": raw_user(d), "added_at": plain(d["timestamp"]),
    }),)


def _provider_staff_removed(e: Recorded) -> Sequence[Op]:
    return (Delete(PROVIDER_STAFF.name, {"provider_id": e.originator_id, "user_id": e.raw["user_id"]}),)


_U = "domain.parties:ApplicationUnit."
_M = "domain.parties:StaffMember."
_V = "domain.catalog:Provider."
_S = "domain.licensing:Subscription."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _U + "Registered": _registered,
    _U + "QualificationDecided": _qualification,
    _U + "MemberAdded": _member_added,
    _U + "MemberRemoved": _member_removed,
    _U + "Suspended": _unit_status("suspended"),
    _U + "Reinstated": _unit_status("qualified"),
    _U + "Terminated": _unit_status("terminated"),
    _S + "Created": _created,
    _S + "AgreementSigned": _signed,
    _S + "Activated": _activated,
    _S + "Suspended": _subscription_status("suspended"),
    _S + "Reinstated": _subscription_status("active"),
    _S + "Terminated": _terminated,
    _S + "Expired": _expired,
    _S + "EntitlementsChanged": _entitlements,
    _M + "Enrolled": _enrolled,
    _M + "RoleGranted": _role_granted,
    _M + "RoleRevoked": _role_revoked,
    _V + "StaffAdded": _provider_staff_added,
    _V + "StaffRemoved": _provider_staff_removed,
}


class UnitsProjection(HandlerProjection):
    """Units (status, kind, members, qualification), subscriptions (agreements, entitlements, term),
    operator staff with their roles, and providers' staff rosters."""

    name = "units"
    version = 2
    handlers = HANDLERS
    tables = (UNITS, MEMBERS, SUBSCRIPTIONS, AGREEMENTS, STAFF, STAFF_ROLES, PROVIDER_STAFF)
