"""API credentials through the service, on SQLite and PostgreSQL (art. 8, 23, 34)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.credentials import (
    ApiClient,
    ClientRevoked,
    MemberRemoved,
    NotAUnitMember,
    NotUnitAdmin,
    ScopeNotAllowed,
    TokenRevoked,
)
from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.identity import Actor, Role
from domain.licensing import Subscription, SubscriptionNotActive
from domain.parties import UnitNotQualified
from marketplace.bootstrap import Marketplace
from marketplace.services.credentials import InvalidClient, InvalidScope
from tests.scenario import Unit, active_subscription, qualified_unit, refused, staff


@pytest.fixture
def world(marketplace: Marketplace) -> tuple[Marketplace, Unit, UUID]:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    subscription = active_subscription(marketplace, people, unit=unit)
    return marketplace, unit, subscription


def issue(mp: Marketplace, unit: Unit, subscription: UUID, **overrides: object) -> tuple[UUID, str]:
    args: dict[str, object] = dict(unit_id=unit.id, user_id=unit.analyst.user_id, label="notebook",
                                   subscription_ids=[subscription])
    args.update(overrides)
    return tuple(mp.credentials.issue_client(unit.admin, **args))  # type: ignore[arg-type,return-value]


def test_art23_unit_admin_issues_a_client_and_gets_the_secret_once(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, secret = issue(mp, unit, subscription)
    client = mp.credentials.get(ApiClient, client_id)
    assert client.subscription_ids == [subscription] and client.user_id == unit.analyst.user_id
    assert secret not in client.secret_hash and len(secret) >= 40
    assert mp.credentials.authenticate_client(str(client_id), secret).id == client_id


@pytest.mark.parametrize(
    ("who", "error"),
    [("analyst", PermissionDenied), ("operator", PermissionDenied), ("other_admin", PermissionDenied)],
)
def test_art23_only_the_units_own_admin_issues_clients(
    world: tuple[Marketplace, Unit, UUID], who: str, error: type[PermissionDenied]
) -> None:
    mp, unit, subscription = world
    actor = {
        "analyst": unit.analyst,
        "operator": Actor("admin", Role.OPERATOR_ADMIN),
        "other_admin": Actor("mallory", Role.UNIT_ADMIN, unit_id=uuid4()),
    }[who]
    with refused(mp, error):
        mp.credentials.issue_client(actor, unit_id=unit.id, user_id=unit.analyst.user_id, label="x",
                                    subscription_ids=[subscription])


def test_art23_an_admin_who_left_the_unit_cannot_issue(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    with refused(mp, NotUnitAdmin):
        mp.credentials.issue_client(Actor("ghost", Role.UNIT_ADMIN, unit_id=unit.id), unit_id=unit.id,
                                    user_id=unit.analyst.user_id, label="x", subscription_ids=[subscription])


def test_art23_bad_input_names_the_field_and_changes_nothing(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    with refused(mp, NotAUnitMember):
        issue(mp, unit, subscription, user_id="stranger")
    with refused(mp, InvalidInput, match="label"):
        issue(mp, unit, subscription, label="")
    with refused(mp, InvalidInput, match="subscription_ids"):
        issue(mp, unit, subscription, subscription_ids=[])
    with refused(mp, InvalidInput, match=r"subscription_ids\[0\]"):
        issue(mp, unit, subscription, subscription_ids=["not-an-id"])
    with refused(mp, InvalidInput, match="subscription_ids"):
        issue(mp, unit, subscription, subscription_ids=str(subscription))
    with refused(mp, ScopeNotAllowed):
        issue(mp, unit, subscription, subscription_ids=[uuid4()])
    ghost_unit = uuid4()
    with refused(mp, NotFound):
        mp.credentials.issue_client(Actor("alice", Role.UNIT_ADMIN, unit_id=ghost_unit), unit_id=ghost_unit,
                                    user_id="ana", label="x", subscription_ids=[subscription])


def test_art23_scope_excludes_another_units_and_pending_subscriptions(marketplace: Marketplace) -> None:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    other = qualified_unit(marketplace, people, name="包头另一家公司", code_body="91150200MA0N7X9Y8",
                           admin_user="o-admin", analyst_user="o-analyst")
    theirs = active_subscription(marketplace, people, unit=other)
    product_id = marketplace.licensing.get(Subscription, theirs).product_id
    pending = active_subscription(marketplace, people, unit=unit, product_id=product_id, sign=False)
    with refused(marketplace, ScopeNotAllowed, match="another unit"):
        issue(marketplace, unit, theirs)
    with refused(marketplace, ScopeNotAllowed, match="pending"):
        issue(marketplace, unit, pending)


def test_art34_revoking_a_client_stops_authentication(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, secret = issue(mp, unit, subscription)
    with refused(mp, PermissionDenied):
        mp.credentials.revoke_client(unit.analyst, client_id, reason="x")
    with refused(mp, InvalidInput, match="reason"):
        mp.credentials.revoke_client(unit.admin, client_id, reason="")
    mp.credentials.revoke_client(unit.admin, client_id, reason="laptop lost")
    with pytest.raises(ClientRevoked):
        mp.credentials.authenticate_client(str(client_id), secret)
    with refused(mp, ClientRevoked):
        mp.credentials.revoke_client(Actor("admin", Role.OPERATOR_ADMIN), client_id, reason="again")


def test_art23_wrong_secret_unknown_or_malformed_client_fail_alike(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, secret = issue(mp, unit, subscription)
    attempts = ((str(client_id), secret + "x"), (str(uuid4()), secret), ("nonsense", secret), (str(client_id), ""))
    for cid, sec in attempts:
        with pytest.raises(InvalidClient) as info:
            mp.credentials.authenticate_client(cid, sec)
        assert info.value.message == "client authentication failed: unknown client or wrong secret"


def test_art23_grant_covers_only_the_clients_active_subscriptions(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, secret = issue(mp, unit, subscription)
    client = mp.credentials.authenticate_client(str(client_id), secret)
    now = mp.credentials.clock()
    grant = mp.credentials.grant(client, requested=None, at=now)
    assert grant.scope == (subscription,) and grant.actor == unit.analyst and grant.unit_id == unit.id
    assert mp.credentials.grant(client, requested=[str(subscription)], at=now).scope == (subscription,)
    with pytest.raises(InvalidScope, match="not in this client's scope"):
        mp.credentials.grant(client, requested=[str(uuid4())], at=now)
    with pytest.raises(InvalidScope, match="not a subscription id"):
        mp.credentials.grant(client, requested=["everything"], at=now)
    mp.licensing.suspend_subscription(Actor("admin", Role.OPERATOR_ADMIN), subscription, reason="audit")
    with pytest.raises(InvalidScope, match="suspended"):
        mp.credentials.grant(client, requested=[str(subscription)], at=now)
    with pytest.raises(InvalidScope, match="none of this client's subscriptions"):
        mp.credentials.grant(client, requested=None, at=now)


def test_art34_authorise_follows_suspension_revocation_and_membership(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, _ = issue(mp, unit, subscription)
    client = mp.credentials.get(ApiClient, client_id)
    product_id = mp.licensing.get(Subscription, subscription).product_id
    now = mp.credentials.clock()

    def authorise(jti: str = "t1", product: UUID | None = product_id, sub: UUID | None = None) -> object:
        return mp.credentials.authorise(client_id=client_id, unit_id=unit.id, user_id=unit.analyst.user_id,
                                        jti=jti, scope=[subscription], product_id=product, subscription_id=sub, at=now)

    access = authorise()
    assert access.subscription.id == subscription and access.actor == unit.analyst  # type: ignore[attr-defined]
    with pytest.raises(ScopeNotAllowed, match="not covered"):
        authorise(product=uuid4())
    with pytest.raises(ScopeNotAllowed, match="not in this token's scope"):
        authorise(sub=uuid4())
    with pytest.raises(ScopeNotAllowed, match="does not match"):
        mp.credentials.authorise(client_id=client_id, unit_id=uuid4(), user_id=unit.analyst.user_id, jti="t",
                                 scope=[subscription], product_id=product_id, subscription_id=None, at=now)
    mp.credentials.revoke_token(client, jti="t1", expires_at=int((now + timedelta(minutes=5)).timestamp()))
    with pytest.raises(TokenRevoked):
        authorise("t1")
    authorise("t2")
    admin = Actor("admin", Role.OPERATOR_ADMIN)
    mp.licensing.suspend_subscription(admin, subscription, reason="audit")
    with pytest.raises(SubscriptionNotActive):
        authorise("t2")
    mp.licensing.reinstate_subscription(admin, subscription, reason="cleared")
    authorise("t2")
    mp.parties.remove_member(unit.admin, unit.id, user_id=unit.analyst.user_id)
    with pytest.raises(MemberRemoved):
        authorise("t2")
    mp.parties.add_member(unit.admin, unit.id, user_id=unit.analyst.user_id, role="unit_analyst")
    authorise("t2")
    mp.parties.suspend_unit(admin, unit.id, reason="leak under investigation")
    with pytest.raises(UnitNotQualified):
        authorise("t2")
    with pytest.raises(ClientRevoked):
        mp.credentials.authorise(client_id=uuid4(), unit_id=unit.id, user_id=unit.analyst.user_id, jti="t",
                                 scope=[subscription], product_id=product_id, subscription_id=None, at=now)


def test_art23_token_revocation_is_idempotent_and_stored(world: tuple[Marketplace, Unit, UUID]) -> None:
    mp, unit, subscription = world
    client_id, _ = issue(mp, unit, subscription)
    client = mp.credentials.get(ApiClient, client_id)
    expires = int((mp.credentials.clock() + timedelta(minutes=10)).timestamp())
    before = mp.app.recorder.max_notification_id()
    mp.credentials.revoke_token(client, jti="abc", expires_at=expires)
    after = mp.app.recorder.max_notification_id()
    assert after is not None and before is not None and after == before + 1
    mp.credentials.revoke_token(client, jti="abc", expires_at=expires)
    assert mp.app.recorder.max_notification_id() == after
    assert mp.credentials.get(ApiClient, client_id).revoked_tokens == {"abc": expires}
