"""Credentials: OAuth 2 clients through which a unit's machines use data (art. 8, 23, 34).

A unit admin registers an ``ApiClient`` for one member of their own unit (a notebook,
a script). The client is scoped to some of the unit's active subscriptions: the token
endpoint issues access tokens only for those, so a credential is useless for another
unit's data (art. 23). A client can be revoked (by its unit's admins, or by the
operator on misuse, art. 34), and single access tokens can be revoked before they
expire (RFC 7009); the API checks both on every request, so revocation takes effect at
once rather than at token expiry.

The secret itself never reaches the domain: the service hashes it and the aggregate
stores only the hash, so the event log (kept 20 years, art. 18) holds no usable secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput, InvalidState, PermissionDenied, require_text
from domain.identity import Actor, Role
from domain.licensing import Subscription
from domain.parties import ApplicationUnit

MAX_LABEL = 200


class ClientStatus(Enum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ApiClient(Aggregate):
    """An OAuth 2 confidential client of one unit member, scoped to some of the unit's subscriptions."""

    #: Token revocations accumulate over the client's life: snapshot it.
    grows = True

    @staticmethod
    def create_id(client_id: UUID, **_: Any) -> UUID:
        """The client id is random (chosen by the service): guessing one must not be feasible."""
        return client_id

    @classmethod
    def issue(
        cls,
        *,
        client_id: UUID,
        unit: ApplicationUnit,
        user_id: str,
        label: str,
        secret_hash: str,
        subscriptions: Sequence[Subscription],
        by: Actor,
    ) -> ApiClient:
        """Only a unit admin of ``unit``, for a member of ``unit``, over its active subscriptions."""
        if not isinstance(client_id, UUID):
            raise InvalidInput("client_id", f"must be a UUID, got {client_id!r}")
        check_unit_admin(unit, by, "register an API client")
        unit.check_qualified()
        user_id = require_text("user_id", user_id, max_length=200)
        if unit.role_of(user_id) is None:
            raise NotAUnitMember(
                "user_id", f"{user_id} is not a member of unit {unit.name!r}", unit=unit.id, user=user_id
            )
        label = require_text("label", label, max_length=MAX_LABEL)
        secret_hash = require_text("secret_hash", secret_hash, min_length=16, max_length=1000)
        scope = check_scope(unit, subscriptions)
        return cls(
            client_id=client_id,
            unit_id=unit.id,
            user_id=user_id,
            label=label,
            secret_hash=secret_hash,
            subscription_ids=scope,
            by=by,
        )

    @event("Issued")
    def __init__(
        self,
        *,
        client_id: UUID,
        unit_id: UUID,
        user_id: str,
        label: str,
        secret_hash: str,
        subscription_ids: tuple[UUID, ...],
        by: Actor,
    ) -> None:
        self.unit_id = unit_id
        self.user_id = user_id
        self.label = label
        self.secret_hash = secret_hash
        self.subscription_ids: list[UUID] = list(subscription_ids)
        self.status = ClientStatus.ACTIVE
        self.status_reason = ""
        #: jti -> expiry (POSIX seconds) of access tokens revoked before they expired.
        self.revoked_tokens: dict[str, int] = {}

    # -- revocation (art. 34, RFC 7009) ------------------------------------------------
    def revoke(self, *, reason: str, by: Actor) -> None:
        """By a unit admin of the client's unit, or by the operator on misuse (art. 34)."""
        if not (by.role in (Role.OPERATOR_ADMIN, Role.SYSTEM) or self._is_unit_admin(by)):
            raise NotUnitAdmin(
                "only a unit admin of the client's unit or an operator admin revokes a client",
                client=self.id,
                user=by.user_id,
            )
        self.check_active()
        self._revoked(reason=require_text("reason", reason, max_length=2000), by=by)

    @event("Revoked")
    def _revoked(self, *, reason: str, by: Actor) -> None:
        self.status = ClientStatus.REVOKED
        self.status_reason = reason

    def revoke_token(self, *, jti: str, expires_at: int, at: datetime, by: Actor) -> bool:
        """Revoke one access token; ``False`` when it is already revoked or expired (RFC 7009: no error)."""
        jti = require_text("jti", jti, max_length=200)
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise InvalidInput("expires_at", f"must be POSIX seconds, got {expires_at!r}")
        if jti in self.revoked_tokens or expires_at <= int(at.timestamp()):
            return False
        self._token_revoked(jti=jti, expires_at=expires_at, now=int(at.timestamp()), by=by)
        return True

    @event("TokenRevoked")
    def _token_revoked(self, *, jti: str, expires_at: int, now: int, by: Actor) -> None:
        # Forget revocations of tokens that have expired since: they fail on expiry anyway,
        # and the list must not grow with the client's age.
        self.revoked_tokens = {j: e for j, e in self.revoked_tokens.items() if e > now}
        self.revoked_tokens[jti] = expires_at

    # -- guards -------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self.status is ClientStatus.ACTIVE

    def check_active(self) -> None:
        if not self.is_active:
            raise ClientRevoked(
                f"API client {self.label!r} was revoked: {self.status_reason}", client=self.id
            )

    def check_token_not_revoked(self, jti: str) -> None:
        if jti in self.revoked_tokens:
            raise TokenRevoked("this access token was revoked", client=self.id, jti=jti)

    def check_in_scope(self, subscription_id: UUID) -> None:
        if subscription_id not in self.subscription_ids:
            raise ScopeNotAllowed(
                f"subscription {subscription_id} is not in the scope of API client {self.label!r}",
                client=self.id,
                subscription=subscription_id,
            )

    def _is_unit_admin(self, by: Actor) -> bool:
        return by.role is Role.UNIT_ADMIN and by.unit_id == self.unit_id


def check_unit_admin(unit: ApplicationUnit, by: Actor, doing: str) -> None:
    """Clients are the unit's business: only its own admins manage them."""
    if by.role is not Role.UNIT_ADMIN or by.unit_id != unit.id or unit.role_of(by.user_id) is not Role.UNIT_ADMIN:
        raise NotUnitAdmin(f"only a unit admin of {unit.name!r} may {doing}", unit=unit.id, user=by.user_id)


def check_scope(unit: ApplicationUnit, subscriptions: Sequence[Subscription]) -> tuple[UUID, ...]:
    """A client's scope: at least one subscription, each the unit's own and active (art. 23)."""
    if not subscriptions:
        raise InvalidInput("subscription_ids", "at least one subscription is required")
    ids: list[UUID] = []
    for subscription in subscriptions:
        if subscription.unit_id != unit.id:
            raise ScopeNotAllowed(
                f"subscription {subscription.id} belongs to another unit",
                unit=unit.id,
                subscription=subscription.id,
            )
        if not subscription.is_active:
            raise ScopeNotAllowed(
                f"subscription {subscription.id} is {subscription.status.value}, not active",
                unit=unit.id,
                subscription=subscription.id,
            )
        if subscription.id in ids:
            raise InvalidInput("subscription_ids", f"subscription {subscription.id} is listed twice")
        ids.append(subscription.id)
    return tuple(ids)


# -- errors ------------------------------------------------------------------------------


class NotUnitAdmin(PermissionDenied):
    code = "not_unit_admin"


class NotAUnitMember(InvalidInput):
    code = "not_unit_member"


class MemberRemoved(PermissionDenied):
    """The member a client acts for has left the unit: the client acts for nobody."""

    code = "member_removed"


class ScopeNotAllowed(PermissionDenied):
    """Art. 23: a credential reaches only the unit's own, active subscriptions."""

    code = "scope_not_allowed"


class ClientRevoked(InvalidState):
    code = "client_revoked"
    status = 401


class TokenRevoked(InvalidState):
    code = "token_revoked"
    status = 401
