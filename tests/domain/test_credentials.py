"""Rules of API clients: who registers them, what they may reach, revocation (art. 8, 23, 34)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.credentials import (
    ApiClient,
    ClientRevoked,
    ClientStatus,
    NotAUnitMember,
    NotUnitAdmin,
    ScopeNotAllowed,
    TokenRevoked,
)
from domain.demand import DemandApplication
from domain.errors import InvalidInput
from domain.identity import Actor, Role
from domain.licensing import AgreementKind, Entitlements, Subscription
from domain.parties import ApplicationUnit, UnitKind, UnitNotQualified, credit_code_check_char

PRODUCT = UUID("00000000-0000-4000-8000-0000000000b1")
OP_ADMIN = Actor("oscar", Role.OPERATOR_ADMIN)
REVIEWER = Actor("rita", Role.COMPLIANCE_REVIEWER)
HASH = "scrypt$16384$8$1$c2FsdA$ZGlnZXN0ZGlnZXN0ZGlnZXN0"
NOW = datetime(2025, 6, 1, 4, tzinfo=UTC)


def unit(body: str = "91150200MA0N7X2B1", *, qualify: bool = True) -> ApplicationUnit:
    u = ApplicationUnit.register(
        name=f"包头数据应用{body[-3:]}", credit_code=body + credit_code_check_char(body), kind=UnitKind.COMPANY,
        contact_email="ops@example.cn", admin_user_id="alice", by=Actor("alice", Role.APPLICANT),
    )
    if qualify:
        u.qualify(approved=True, reason="documents complete", by=OP_ADMIN)
        u.add_member(user_id="ana", role=Role.UNIT_ANALYST, by=Actor("alice", Role.UNIT_ADMIN, unit_id=u.id))
    return u


UNIT = unit()
OTHER = unit("91150200MA0N7X2C2")
ADMIN = Actor("alice", Role.UNIT_ADMIN, unit_id=UNIT.id)
ANALYST = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT.id)
OTHER_ADMIN = Actor("alice", Role.UNIT_ADMIN, unit_id=OTHER.id)


def subscription(of: ApplicationUnit = UNIT, *, activate: bool = True, product: UUID = PRODUCT) -> Subscription:
    app = DemandApplication.file(
        unit_id=of.id, scenario="Plan maintenance crews from district water use per month",
        purpose="maintenance planning", purpose_class="industry",
        scope=[{"product_id": product, "fields": ["district", "consumption_m3"]}],
        period_start=date(2025, 4, 1), period_end=date(2026, 3, 31), security_controls=["sandbox only"],
        available={product: ("district", "month", "consumption_m3")}, today=date(2025, 3, 1),
        by=Actor("ana", Role.UNIT_ANALYST, unit_id=of.id),
    )
    app.assess_risk(level="low", notes="aggregates", by=REVIEWER)
    app.decide(approved=True, reason="ok", by=OP_ADMIN)
    sub = Subscription.create(
        application=app, unit=of, product_id=product, product_listed=True, plan_ids=["basic"], plan_id="basic",
        entitlements=Entitlements(queries_per_period=10, rows_per_period=100, privacy_budget=1.0),
        method="sandbox", by=OP_ADMIN,
    )
    if activate:
        for kind in AgreementKind:
            sub.sign(kind=kind, by=Actor("alice", Role.UNIT_ADMIN, unit_id=of.id))
            sub.sign(kind=kind, by=OP_ADMIN)
        sub.activate(by=OP_ADMIN)
    return sub


SUB = subscription()


def issue(**overrides: Any) -> ApiClient:
    args: dict[str, Any] = dict(
        client_id=uuid4(), unit=UNIT, user_id="ana", label="forecast notebook", secret_hash=HASH,
        subscriptions=[SUB], by=ADMIN,
    )
    args.update(overrides)
    return ApiClient.issue(**args)


def replay(client: ApiClient) -> ApiClient:
    """Rebuild the aggregate from its events, as the store does on load."""
    rebuilt: Any = None
    for event in client.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, ApiClient)
    return rebuilt


# -- issuing (art. 23) -------------------------------------------------------------------------
def test_art23_unit_admin_issues_client_for_a_member_over_active_subscriptions() -> None:
    client_id = uuid4()
    client = issue(client_id=client_id)
    assert client.id == client_id
    assert (client.unit_id, client.user_id, client.label) == (UNIT.id, "ana", "forecast notebook")
    assert client.subscription_ids == [SUB.id]
    assert client.status is ClientStatus.ACTIVE and client.is_active
    assert client.secret_hash == HASH


def test_art23_an_analyst_cannot_issue_clients() -> None:
    with pytest.raises(NotUnitAdmin):
        issue(by=ANALYST)


def test_art23_an_admin_of_another_unit_cannot_issue_clients_for_this_unit() -> None:
    with pytest.raises(NotUnitAdmin):
        issue(by=OTHER_ADMIN)


def test_art23_an_operator_cannot_issue_unit_clients() -> None:
    with pytest.raises(NotUnitAdmin):
        issue(by=OP_ADMIN)


def test_art23_a_client_is_only_for_a_member_of_the_unit() -> None:
    with pytest.raises(NotAUnitMember) as info:
        issue(user_id="mallory")
    assert info.value.field == "user_id"


def test_art23_scope_cannot_include_another_units_subscription() -> None:
    with pytest.raises(ScopeNotAllowed, match="another unit"):
        issue(subscriptions=[SUB, subscription(OTHER)])


def test_art23_scope_cannot_include_an_inactive_subscription() -> None:
    with pytest.raises(ScopeNotAllowed, match="pending"):
        issue(subscriptions=[subscription(activate=False)])


def test_art23_scope_needs_at_least_one_subscription_and_no_duplicates() -> None:
    with pytest.raises(InvalidInput, match="subscription_ids"):
        issue(subscriptions=[])
    with pytest.raises(InvalidInput, match="twice"):
        issue(subscriptions=[SUB, SUB])


def test_art22_an_unqualified_unit_gets_no_clients() -> None:
    pending = unit("91150200MA0N7X2D3", qualify=False)
    with pytest.raises(UnitNotQualified):
        issue(unit=pending, user_id="alice", by=Actor("alice", Role.UNIT_ADMIN, unit_id=pending.id))


@pytest.mark.parametrize(("field", "value"), [("label", "  "), ("secret_hash", "short"), ("user_id", "")])
def test_art23_required_fields_are_named(field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        issue(**{field: value})
    assert info.value.field == field


def test_art18_the_event_log_holds_only_the_secret_hash() -> None:
    client = issue()
    events = client.collect_events()
    assert [type(e).__name__ for e in events] == ["Issued"]
    assert events[0].__dict__["secret_hash"] == HASH


# -- revocation (art. 34, RFC 7009) ------------------------------------------------------------
@pytest.mark.parametrize("by", [ADMIN, OP_ADMIN])
def test_art34_unit_admin_or_operator_admin_revokes_a_client(by: Actor) -> None:
    client = issue()
    client.revoke(reason="notebook decommissioned", by=by)
    assert client.status is ClientStatus.REVOKED and not client.is_active
    with pytest.raises(ClientRevoked):
        client.check_active()
    assert replay(client).status is ClientStatus.REVOKED


@pytest.mark.parametrize("by", [ANALYST, OTHER_ADMIN, Actor("pm", Role.PRODUCT_MANAGER)])
def test_art34_others_cannot_revoke_a_client(by: Actor) -> None:
    client = issue()
    with pytest.raises(NotUnitAdmin):
        client.revoke(reason="x", by=by)
    assert client.is_active


def test_art34_a_revoked_client_cannot_be_revoked_again_and_needs_a_reason() -> None:
    client = issue()
    with pytest.raises(InvalidInput, match="reason"):
        client.revoke(reason=" ", by=ADMIN)
    client.revoke(reason="leaked", by=ADMIN)
    with pytest.raises(ClientRevoked):
        client.revoke(reason="again", by=ADMIN)


def test_art23_a_revoked_token_is_refused_and_revocation_is_idempotent() -> None:
    client = issue()
    expires = int(NOW.timestamp()) + 600
    assert client.revoke_token(jti="t1", expires_at=expires, at=NOW, by=ANALYST) is True
    assert client.revoke_token(jti="t1", expires_at=expires, at=NOW, by=ANALYST) is False
    with pytest.raises(TokenRevoked):
        client.check_token_not_revoked("t1")
    client.check_token_not_revoked("t2")
    assert replay(client).revoked_tokens == {"t1": expires}


def test_art23_revoking_an_expired_token_records_nothing() -> None:
    client = issue()
    assert client.revoke_token(jti="old", expires_at=int(NOW.timestamp()), at=NOW, by=ANALYST) is False
    assert client.revoked_tokens == {}


def test_art18_revocations_of_expired_tokens_are_forgotten() -> None:
    client = issue()
    base = int(NOW.timestamp())
    client.revoke_token(jti="a", expires_at=base + 60, at=NOW, by=ANALYST)
    client.revoke_token(jti="b", expires_at=base + 900, at=NOW + timedelta(seconds=120), by=ANALYST)
    assert client.revoked_tokens == {"b": base + 900}


def test_art23_check_in_scope_names_the_subscription() -> None:
    client = issue()
    client.check_in_scope(SUB.id)
    other = uuid4()
    with pytest.raises(ScopeNotAllowed) as info:
        client.check_in_scope(other)
    assert info.value.ids["subscription"] == str(other)


@given(jti=st.text(min_size=1, max_size=50).filter(lambda s: s.strip()), ttl=st.integers(-1000, 1000))
def test_art23_revoke_token_validates_and_counts_once(jti: str, ttl: int) -> None:
    client = issue()
    expires = int(NOW.timestamp()) + ttl
    first = client.revoke_token(jti=jti, expires_at=expires, at=NOW, by=ANALYST)
    assert first is (ttl > 0)
    assert client.revoke_token(jti=jti, expires_at=expires, at=NOW, by=ANALYST) is False
    assert (jti.strip() in client.revoked_tokens) is first


# -- no command sequence reaches an invalid state -------------------------------------------------
class ApiClientMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = issue()
        self.now = NOW
        self.revoked = False
        self.live: dict[str, int] = {}

    @rule(by=st.sampled_from([ADMIN, OP_ADMIN, ANALYST, OTHER_ADMIN]))
    def revoke(self, by: Actor) -> None:
        try:
            self.client.revoke(reason="misuse", by=by)
        except (NotUnitAdmin, ClientRevoked):
            return
        assert by in (ADMIN, OP_ADMIN) and not self.revoked
        self.revoked = True

    @rule(jti=st.sampled_from(["a", "b", "c", "d"]), ttl=st.integers(-60, 900))
    def revoke_token(self, jti: str, ttl: int) -> None:
        expires = int(self.now.timestamp()) + ttl
        before = dict(self.client.revoked_tokens)
        changed = self.client.revoke_token(jti=jti, expires_at=expires, at=self.now, by=ANALYST)
        assert changed == (jti not in before and ttl > 0)
        if changed:
            assert self.client.revoked_tokens[jti] == expires
            assert all(e > int(self.now.timestamp()) for e in self.client.revoked_tokens.values())
        else:
            assert self.client.revoked_tokens == before

    @rule(seconds=st.integers(0, 600))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: self.revoked)
    @invariant()
    def revoked_stays_revoked(self) -> None:
        assert self.client.status is ClientStatus.REVOKED

    @invariant()
    def state_is_consistent(self) -> None:
        assert self.client.is_active is (not self.revoked)
        assert len(self.client.revoked_tokens) <= 4
        assert self.client.subscription_ids == [SUB.id]


ApiClientMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=25, deadline=None)
TestApiClientMachine = ApiClientMachine.TestCase
