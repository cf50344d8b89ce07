"""Use cases of API credentials: register and revoke clients, authenticate them, grant and check access.

A unit admin registers an OAuth 2 client for a member of their unit and receives its
secret once; only a salted scrypt hash is stored. The token endpoint authenticates the
client and asks ``grant`` which subscriptions a token may cover, checked LIVE (unit
qualified, member still in the unit, each subscription still active and the unit's).
Every API request then calls ``authorise`` with the token's claims, which repeats those
checks against the store so that revoking a client or a token, removing a member, or
suspending the unit or a subscription (art. 34) takes effect on the next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.credentials import ApiClient, ClientRevoked, MemberRemoved, ScopeNotAllowed, check_unit_admin
from domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from domain.identity import Actor, Role
from domain.licensing import Subscription
from domain.parties import ApplicationUnit
from marketplace import access
from marketplace.services.base import Service, ensure_uuid

A = TypeVar("A", bound=Aggregate)


class Loader(Protocol):
    """Loads an aggregate by class and id: ``Service.get`` or a cache in front of it."""

    def __call__(self, cls: type[A], aggregate_id: UUID) -> A: ...


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32


class IssuedClient(NamedTuple):
    """The new client's id and its secret, shown once and never stored in clear."""

    client_id: UUID
    client_secret: str


@dataclass(frozen=True)
class Grant:
    """What a token may carry, decided at the token endpoint."""

    actor: Actor
    client_id: UUID
    unit_id: UUID
    scope: tuple[UUID, ...]


@dataclass(frozen=True)
class Access:
    """A request's live authorisation: who acts, under which subscription, for which product."""

    actor: Actor
    client: ApiClient
    unit: ApplicationUnit
    subscription: Subscription


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64url), so parameters can be raised later without breaking old hashes."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


#: Checked against when the client id is unknown, so a miss costs what a hit costs (no timing oracle).
_DUMMY_HASH = "scrypt$16384$8$1$MDEyMzQ1Njc4OWFiY2RlZg$" + "A" * 43


class CredentialsService(Service):
    # -- managing clients (unit admins) -----------------------------------------------------
    def issue_client(
        self,
        actor: Actor,
        *,
        unit_id: UUID | str,
        user_id: str,
        label: str,
        subscription_ids: Sequence[UUID | str],
    ) -> IssuedClient:
        """Register a client for a member of the admin's own unit; the secret is returned once."""
        access.require(actor, "client.issue")
        unit_key = ensure_uuid("unit_id", unit_id)
        access.require_unit(actor, unit_key)
        if isinstance(subscription_ids, (str, bytes)):
            raise InvalidInput("subscription_ids", "must be a list of subscription ids")
        keys = [ensure_uuid(f"subscription_ids[{i}]", s) for i, s in enumerate(subscription_ids)]
        unit = self.get(ApplicationUnit, unit_key)
        check_unit_admin(unit, actor, "register an API client")
        subscriptions = [self._scoped_subscription(unit, key) for key in keys]
        secret = secrets.token_urlsafe(32)
        client = ApiClient.issue(
            client_id=uuid4(),
            unit=unit,
            user_id=user_id,
            label=label,
            secret_hash=hash_secret(secret),
            subscriptions=subscriptions,
            by=actor,
        )
        self.create(client, f"API client {client.id} already exists")
        return IssuedClient(client.id, secret)

    def revoke_client(self, actor: Actor, client_id: UUID | str, *, reason: str) -> int:
        access.require(actor, "client.revoke")
        key = ensure_uuid("client_id", client_id)

        def command() -> list[ApiClient]:
            client = self.get(ApiClient, key)
            access.require_unit(actor, client.unit_id)
            client.revoke(reason=reason, by=actor)
            return [client]

        return self.run(command)

    def clients_of(self, actor: Actor, unit_id: UUID | str, client_ids: Sequence[UUID]) -> list[ApiClient]:
        """The given clients of a unit (a read model lists ids; this loads them for the unit's own people)."""
        unit_key = ensure_uuid("unit_id", unit_id)
        access.require_unit(actor, unit_key)
        clients = [self.get(ApiClient, c) for c in client_ids]
        return [c for c in clients if c.unit_id == unit_key]

    # -- the token endpoint (machines) ------------------------------------------------------------
    def authenticate_client(self, client_id: str, client_secret: str) -> ApiClient:
        """The client whose secret this is, or ``InvalidClient``; costs the same whether or not it exists."""
        client: ApiClient | None = None
        try:
            client = self.get(ApiClient, UUID(client_id))
        except (ValueError, TypeError, NotFound):
            client = None
        stored = client.secret_hash if client is not None else _DUMMY_HASH
        if not verify_secret(client_secret if isinstance(client_secret, str) else "", stored) or client is None:
            raise InvalidClient("client authentication failed: unknown client or wrong secret")
        client.check_active()
        return client

    def grant(self, client: ApiClient, *, requested: Sequence[str] | None, at: datetime) -> Grant:
        """The subscriptions a new token covers: the requested ones (default: all of the client's still usable)."""
        client.check_active()
        unit = self.get(ApplicationUnit, client.unit_id)
        actor = self._member_actor(unit, client)
        if requested:
            scope = []
            for item in requested:
                try:
                    key = UUID(item)
                except ValueError:
                    raise InvalidScope(f"scope item {item!r} is not a subscription id") from None
                if key not in client.subscription_ids:
                    raise InvalidScope(f"subscription {item} is not in this client's scope")
                subscription = self.get(Subscription, key)
                if not subscription.is_active:
                    raise InvalidScope(f"subscription {item} is {subscription.status.value}, not active")
                subscription.check_usable(at)
                scope.append(key)
        else:
            scope = [
                s.id
                for s in (self.get(Subscription, k) for k in client.subscription_ids)
                if s.is_active and s.unit_id == unit.id
            ]
            if not scope:
                raise InvalidScope("none of this client's subscriptions is active")
        return Grant(actor=actor, client_id=client.id, unit_id=unit.id, scope=tuple(dict.fromkeys(scope)))

    def revoke_token(self, client: ApiClient, *, jti: str, expires_at: int) -> int:
        """RFC 7009: a client revokes one of its own access tokens before it expires."""
        unit = self.get(ApplicationUnit, client.unit_id)
        actor = self._member_actor(unit, client, require_qualified=False)

        def command() -> list[ApiClient]:
            fresh = self.get(ApiClient, client.id)
            changed = fresh.revoke_token(jti=jti, expires_at=expires_at, at=self.clock(), by=actor)
            return [fresh] if changed else []

        return self.run(command)

    # -- every API request --------------------------------------------------------------------------
    def authorise_token(
        self, *, client_id: UUID, unit_id: UUID, user_id: str, jti: str, load: Loader | None = None
    ) -> tuple[Actor, ApiClient, ApplicationUnit]:
        """The live part every request shares: client and token not revoked, unit qualified, member still in it."""
        get: Loader = load or self.get
        try:
            client = get(ApiClient, client_id)
        except NotFound:
            raise ClientRevoked(f"API client {client_id} does not exist", client=client_id) from None
        if client.unit_id != unit_id or client.user_id != user_id:
            raise ScopeNotAllowed("the token's unit or member does not match its client", client=client_id)
        client.check_active()
        client.check_token_not_revoked(jti)
        unit = get(ApplicationUnit, unit_id)
        unit.check_qualified()
        return self._member_actor(unit, client), client, unit

    def authorise(
        self,
        *,
        client_id: UUID,
        unit_id: UUID,
        user_id: str,
        jti: str,
        scope: Sequence[UUID],
        product_id: UUID | None,
        subscription_id: UUID | None,
        at: datetime,
        load: Loader | None = None,
    ) -> Access:
        """Check a verified token's claims against the store NOW (art. 23, 34).

        Raises ``ClientRevoked``, ``TokenRevoked``, ``UnitNotQualified``, ``MemberRemoved``,
        ``ScopeNotAllowed`` (subscription or product outside the token), ``SubscriptionNotActive``
        or ``OutsideTerm``.
        """
        get: Loader = load or self.get
        actor, client, unit = self.authorise_token(
            client_id=client_id, unit_id=unit_id, user_id=user_id, jti=jti, load=get
        )
        subscription = self.subscription_for(
            scope=scope, client=client, product_id=product_id, subscription_id=subscription_id, load=get
        )
        if subscription.unit_id != unit.id:
            raise ScopeNotAllowed("the subscription belongs to another unit", subscription=subscription.id)
        subscription.check_usable(at)
        return Access(actor=actor, client=client, unit=unit, subscription=subscription)

    def subscription_for(
        self,
        *,
        scope: Sequence[UUID],
        client: ApiClient | None,
        product_id: UUID | None,
        subscription_id: UUID | None,
        load: Loader | None = None,
    ) -> Subscription:
        """The subscription a request uses: the named one, or the token's one for the product."""
        get: Loader = load or self.get
        if subscription_id is not None:
            if subscription_id not in scope or (client is not None and subscription_id not in client.subscription_ids):
                raise ScopeNotAllowed(
                    f"subscription {subscription_id} is not in this token's scope", subscription=subscription_id
                )
            subscription: Subscription = get(Subscription, subscription_id)
            if product_id is not None and subscription.product_id != product_id:
                raise ScopeNotAllowed(
                    f"subscription {subscription_id} is for another product", product=product_id
                )
            return subscription
        candidates: list[Subscription] = [get(Subscription, s) for s in scope]
        if client is not None:
            candidates = [s for s in candidates if s.id in client.subscription_ids]
        if product_id is not None:
            candidates = [s for s in candidates if s.product_id == product_id]
        if not candidates:
            raise ScopeNotAllowed(
                f"product {product_id} is not covered by this token's subscriptions", product=product_id
            )
        active = [s for s in candidates if s.is_active] or candidates
        if len(active) > 1:
            raise InvalidInput(
                "subscription", "several subscriptions of this token cover the product; name one", product=product_id
            )
        return active[0]

    def _scoped_subscription(self, unit: ApplicationUnit, key: UUID) -> Subscription:
        try:
            return self.get(Subscription, key)
        except NotFound:
            raise ScopeNotAllowed(f"no subscription {key}", unit=unit.id, subscription=key) from None

    @staticmethod
    def _member_actor(unit: ApplicationUnit, client: ApiClient, *, require_qualified: bool = True) -> Actor:
        """The unit member the client acts for, with the role the unit gives them TODAY."""
        if require_qualified:
            unit.check_qualified()
        role = unit.role_of(client.user_id)
        if role not in (Role.UNIT_ADMIN, Role.UNIT_ANALYST):
            raise MemberRemoved(
                f"{client.user_id} is no longer a member of unit {unit.name!r}", client=client.id, user=client.user_id
            )
        return Actor(user_id=client.user_id, role=role, unit_id=unit.id)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- errors ---------------------------------------------------------------------------------------


class InvalidClient(PermissionDenied):
    """RFC 6749 ``invalid_client``: the client could not be authenticated."""

    code = "invalid_client"
    status = 401


class InvalidScope(DomainError):
    """RFC 6749 ``invalid_scope``: the requested scope is not the client's or not usable now."""

    code = "invalid_scope"
    status = 400


__all__ = [
    "Access",
    "ClientRevoked",
    "CredentialsService",
    "Grant",
    "InvalidClient",
    "InvalidScope",
    "IssuedClient",
    "hash_secret",
    "verify_secret",
]
