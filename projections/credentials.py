"""API clients: the OAuth 2 credentials of units' members (art. 8, 23, 34).

Per client: its unit, the member it acts for, its label, the subscriptions it is scoped
to (art. 23), whether it is active or revoked and why, who issued and who revoked it and
when, and how many single access tokens were revoked before they expired (RFC 7009).

The client's secret never reaches the domain (the service hashes it), and the hash the
``Issued`` event carries is deliberately left out here: a read model is copied, exported
and shown on pages, and nothing in it may help anyone authenticate as the client. The
token ids (``jti``) of revoked tokens are left out too: only their count is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

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
)
from projections.usage import plain, raw_user, raw_uuid

CLIENTS = Table(
    "rm_credentials_clients",
    {
        "client_id": TEXT,
        "unit_id": TEXT,
        "user_id": TEXT,
        "label": TEXT,
        #: JSON: ``["<subscription id>", ...]``, the scope the client was issued for.
        "subscription_ids": TEXT,
        "status": TEXT,
        "status_reason": TEXT,
        "issued_by": TEXT,
        "issued_at": TIMESTAMP,
        "revoked_by": TEXT,
        "revoked_at": TIMESTAMP,
        "tokens_revoked": INT,
        "updated_at": TIMESTAMP,
    },
    key=("client_id",),
    indexes=(("unit_id",),),
)


def _issued(e: Recorded) -> Sequence[Op]:
    # ``raw`` and only the attributes named here: the secret hash is never even unwrapped.
    d = e.raw
    at = plain(d["timestamp"])
    scope = [raw_uuid(s) for s in d["subscription_ids"]]
    return (Upsert(CLIENTS.name, {
        "client_id": e.originator_id, "unit_id": raw_uuid(d["unit_id"]), "user_id": d["user_id"],
        "label": d["label"], "subscription_ids": json.dumps(scope, separators=(",", ":")), "status": "active",
        "status_reason": "", "issued_by": raw_user(d), "issued_at": at, "revoked_by": None, "revoked_at": None,
        "tokens_revoked": 0, "updated_at": at,
    }),)


def _revoked(e: Recorded) -> Sequence[Op]:
    d = e.raw
    at = plain(d["timestamp"])
    return (Update(CLIENTS.name, {"client_id": e.originator_id}, {
        "status": "revoked", "status_reason": d["reason"], "revoked_by": raw_user(d), "revoked_at": at,
        "updated_at": at,
    }),)


def _token_revoked(e: Recorded) -> Sequence[Op]:
    return (
        Increment(CLIENTS.name, {"client_id": e.originator_id}, {"tokens_revoked": 1}),
        Update(CLIENTS.name, {"client_id": e.originator_id}, {"updated_at": plain(e.raw["timestamp"])}),
    )


_C = "domain.credentials:ApiClient."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _C + "Issued": _issued,
    _C + "Revoked": _revoked,
    _C + "TokenRevoked": _token_revoked,
}


class CredentialsProjection(HandlerProjection):
    """API clients per unit: member, label, scope, status; never a secret or its hash."""

    name = "credentials"
    version = 1
    handlers = HANDLERS
    tables = (CLIENTS,)
