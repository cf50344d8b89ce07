"""The attack suite over real HTTP: each defence refuses, and every refusal is metered (art. 8, 23, 34).

A token is bound to its unit, member, client and subscriptions: presented expired,
revoked, altered, forged, for another unit or another product, it fails, and the attempt
is on the ledger of the subscription it aimed at (for a tampered token: the ledger of
the stored client it names) before the refusal is answered.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from domain.identity import Actor, Role
from marketplace.api.dpop import make_proof
from marketplace.api.tokens import TokenAuthority
from marketplace.keys import KeyRing
from tests.api.conftest import World, tenant

QUERY = {"dimensions": ["district"], "aggregates": [{"fn": "count"}]}
ADMIN = Actor("admin", Role.OPERATOR_ADMIN)


def query(world: World, token: str | None, product: UUID, body: Any = None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with world.http() as http:
        return http.post(f"/v1/products/{product}/query", json=QUERY if body is None else body,
                         headers=headers, params=params)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"] == f"urn:shuyun:problem:{code}" and problem["detail"]
    return problem


def segments(token: str) -> list[str]:
    return token.split(".")


def b64json(part: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_art23_a_valid_token_answers_and_the_use_is_metered(world: World) -> None:
    before = world.ledger(world.sub_a3)
    used = before.queries_used if before else 0
    response = query(world, world.token(), world.water3)
    assert response.status_code == 200, response.text
    after = world.ledger(world.sub_a3)
    assert after is not None and after.queries_used == used + 1
    assert response.headers["x-shuyun-use-id"] in after.uses
    assert int(response.headers["x-shuyun-remaining-queries"]) == after.queries_remaining


def test_art23_no_token_is_refused(world: World) -> None:
    problem = assert_refused(query(world, None, world.water3), 401, "invalid_token")
    assert "Bearer" in problem["detail"]


def test_art23_an_expired_token_is_refused_and_metered(world: World) -> None:
    authority = TokenAuthority(KeyRing.load_or_create(world.config.data_dir), issuer="urn:shuyun:api")
    now = world.mp.usage.clock()
    token, _ = authority.issue(user_id=world.unit_a.analyst.user_id, unit_id=world.unit_a.id,
                               client_id=world.client_a[0], scope=(world.sub_a3,), now=now - timedelta(minutes=20))
    refusals = len(world.refusals(world.sub_a3))
    assert_refused(query(world, token, world.water3), 401, "token_expired")
    assert world.refusals(world.sub_a3)[refusals:] == ["token_expired"]


def test_art23_an_altered_token_is_refused_and_metered_on_the_client_it_names(world: World) -> None:
    header, payload, signature = segments(world.token())
    claims = b64json(payload)
    claims["scope"] = f"{claims['scope']} {world.sub_b3}"  # try to widen the scope to unit B's subscription
    altered = f"{header}.{encode(claims)}.{signature}"
    refusals = len(world.refusals(world.sub_a3))
    problem = assert_refused(query(world, altered, world.water3, subscription=str(world.sub_b3)), 401,
                             "invalid_token")
    assert "signature" in problem["detail"]
    assert world.refusals(world.sub_a3)[refusals:] == ["invalid_token"]
    assert "invalid_token" not in world.refusals(world.sub_b3)


def test_art23_a_forged_token_with_our_key_id_is_refused_and_metered(world: World) -> None:
    header, payload, _ = segments(world.token())
    attacker = ECKey.generate_key("P-256", private=True)
    forged = jwt.encode(b64json(header), b64json(payload), attacker, algorithms=["ES256"])
    unsigned = f"{encode({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    refusals = len(world.refusals(world.sub_a3))
    assert_refused(query(world, forged, world.water3), 401, "invalid_token")
    assert_refused(query(world, unsigned, world.water3), 401, "invalid_token")
    assert world.refusals(world.sub_a3)[refusals:] == ["invalid_token", "invalid_token"]


def test_art23_a_token_naming_no_known_client_is_refused_without_a_ledger(world: World) -> None:
    junk = f"{encode({'alg': 'ES256', 'kid': 'x'})}.{encode({'client_id': str(uuid4())})}.c2ln"
    before = world.mp.app.recorder.max_notification_id()
    assert_refused(query(world, junk, world.water3), 401, "invalid_token")
    assert_refused(query(world, "not a jwt", world.water3), 401, "invalid_token")
    assert world.mp.app.recorder.max_notification_id() == before


def test_art23_a_token_of_another_unit_reaches_nothing_of_this_unit(world: World) -> None:
    """Unit B's token presented for a product only unit A... or only B... subscribes: each is refused."""
    token_a = world.token()
    refusals = len(world.refusals(world.sub_a3))
    problem = assert_refused(query(world, token_a, world.b_only), 403, "scope_not_allowed")
    assert str(world.b_only) in problem["detail"]
    problem = assert_refused(query(world, token_a, world.water3, subscription=str(world.sub_b3)), 403,
                             "scope_not_allowed")
    assert str(world.sub_b3) in problem["detail"]
    assert world.refusals(world.sub_a3)[refusals:] == ["scope_not_allowed", "scope_not_allowed"]
    assert "scope_not_allowed" not in world.refusals(world.sub_b3)


def test_art23_a_token_for_one_product_fails_for_another(world: World) -> None:
    token = world.token(scope=str(world.sub_a_open))  # scoped to the open product only
    refusals = len(world.refusals(world.sub_a_open))
    assert_refused(query(world, token, world.water3), 403, "scope_not_allowed")
    assert world.refusals(world.sub_a_open)[refusals:] == ["scope_not_allowed"]


def test_art34_revoking_the_client_bites_on_the_next_request_and_is_metered(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    assert query(world, token, world.water3).status_code == 200
    world.mp.credentials.revoke_client(t.unit.admin, t.client[0], reason="notebook leaked")
    assert_refused(query(world, token, world.water3), 401, "client_revoked")
    assert world.refusals(t.subscription) == ["client_revoked"]


def test_art34_suspending_the_subscription_bites_at_once_and_reinstating_restores(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    assert query(world, token, world.water3).status_code == 200
    world.mp.licensing.suspend_subscription(ADMIN, t.subscription, reason="misuse suspected")
    assert_refused(query(world, token, world.water3), 409, "subscription_not_active")
    world.mp.licensing.reinstate_subscription(ADMIN, t.subscription, reason="cleared")
    assert query(world, token, world.water3).status_code == 200
    assert world.refusals(t.subscription) == ["subscription_not_active"]
    ledger = world.ledger(t.subscription)
    assert ledger is not None and ledger.queries_used == 2


def test_art34_suspending_the_unit_bites_at_once(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    assert query(world, token, world.water3).status_code == 200
    world.mp.parties.suspend_unit(ADMIN, t.unit.id, reason="resale of results")
    assert_refused(query(world, token, world.water3), 409, "unit_not_qualified")
    with world.http() as http:
        entitlements = http.get("/v1/entitlements", headers={"Authorization": f"Bearer {token}"})
    assert_refused(entitlements, 409, "unit_not_qualified")
    assert world.refusals(t.subscription) == ["unit_not_qualified"]


def test_art23_a_member_removed_from_the_unit_loses_access_at_once(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    world.mp.parties.remove_member(t.unit.admin, t.unit.id, user_id=t.unit.analyst.user_id)
    assert_refused(query(world, token, world.water3), 403, "member_removed")
    assert world.refusals(t.subscription) == ["member_removed"]


def test_art23_quota_is_enforced_metered_and_says_when_it_resets(world: World) -> None:
    t = tenant(world, queries=2)
    token = world.token(t.client)
    assert query(world, token, world.water3).status_code == 200
    assert query(world, token, world.water3).status_code == 200
    response = query(world, token, world.water3)
    problem = assert_refused(response, 429, "quota_exceeded")
    assert problem["quota"] == "queries" and problem["reset_on"]
    assert int(response.headers["retry-after"]) > 0
    assert world.refusals(t.subscription) == ["quota_exceeded"]
    ledger = world.ledger(t.subscription)
    assert ledger is not None and ledger.queries_used == 2 and ledger.refusals == 1


def test_art23_a_field_outside_the_subscription_is_refused_and_metered(world: World) -> None:
    """Unit A's subscription to the open product covers district and consumption, not month."""
    token = world.token()
    refusals = len(world.refusals(world.sub_a_open))
    before = world.ledger(world.sub_a_open)
    used = before.queries_used if before else 0
    body = {"dimensions": ["month"], "aggregates": [{"fn": "count"}]}
    problem = assert_refused(query(world, token, world.open2, body), 403, "out_of_scope")
    assert problem["fields"] == "month"
    assert world.refusals(world.sub_a_open)[refusals:] == ["out_of_scope"]
    after = world.ledger(world.sub_a_open)
    assert after is not None and after.queries_used == used


def test_art35_personal_fields_are_never_output_and_the_attempt_is_metered(world: World) -> None:
    token = world.token()
    refusals = len(world.refusals(world.sub_a3))
    for body in ({"dimensions": ["holder_name"], "aggregates": [{"fn": "count"}]},
                 {"dimensions": ["district"], "aggregates": [{"fn": "min", "column": "holder_name"}]}):
        response = query(world, token, world.water3, body)
        assert_refused(response, 403, "policy_violation")
        assert "户主" not in response.text
    assert world.refusals(world.sub_a3)[refusals:] == ["policy_violation", "policy_violation"]


def test_art22_rows_of_a_grade3_product_are_refused_and_metered(world: World) -> None:
    token = world.token()
    refusals = len(world.refusals(world.sub_a3))
    problem = assert_refused(query(world, token, world.water3, {"mode": "rows", "columns": ["district", "month"]}),
                             403, "policy_violation")
    assert problem["rule"] == "row_level_not_allowed"
    assert world.refusals(world.sub_a3)[refusals:] == ["policy_violation"]


def test_art23_malformed_queries_name_the_path_and_are_metered(world: World) -> None:
    token = world.token()
    refusals = len(world.refusals(world.sub_a3))
    problem = assert_refused(query(world, token, world.water3, {"aggregates": [{"fn": "median2"}]}), 400,
                             "invalid_query")
    assert problem["field"].startswith("aggregates[0]")
    with world.http() as http:
        raw = http.post(f"/v1/products/{world.water3}/query", content=b"{not json",
                        headers={"Authorization": f"Bearer {token}"})
    assert_refused(raw, 400, "invalid_query")
    assert world.refusals(world.sub_a3)[refusals:] == ["invalid_query", "invalid_query"]


def test_art8_every_refusal_above_left_a_trace_visible_in_own_usage(world: World) -> None:
    token = world.token()
    with world.http() as http:
        usage = http.get("/v1/usage", params={"subscription": str(world.sub_a3)},
                         headers={"Authorization": f"Bearer {token}"})
    assert usage.status_code == 200, usage.text
    item = usage.json()["usage"][0]
    recorded = world.refusals(world.sub_a3)
    assert item["refusals"] == len(recorded) > 0
    assert {r["reason"] for r in item["recent"] if r["outcome"] == "refused"} <= set(recorded)


# -- DPoP (RFC 9449): a bound token is useless to anyone without the client's key ----------------------


def dpop_token(world: World, key: ECKey) -> str:
    url = f"{world.url}/oauth/token"
    with world.http() as http:
        response = http.post(url, data={"grant_type": "client_credentials"}, auth=(str(world.client_a[0]),
                             world.client_a[1]), headers={"DPoP": make_proof(key, method="POST", url=url)})
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token: str = response.json()["access_token"]
    assert b64json(segments(token)[1])["cnf"] == {"jkt": key.thumbprint()}
    return token


def dpop_query(world: World, token: str, proof: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    with world.http() as http:
        return http.post(f"/v1/products/{world.water3}/query", json=QUERY, headers=headers)


def test_art23_a_dpop_bound_token_presented_by_anyone_else_fails_and_is_metered(world: World) -> None:
    owner, thief = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    token = dpop_token(world, owner)
    url = f"{world.url}/v1/products/{world.water3}/query"
    proof = make_proof(owner, method="POST", url=url, access_token=token)
    assert dpop_query(world, token, proof).status_code == 200
    refusals = len(world.refusals(world.sub_a3))
    attempts = [
        dpop_query(world, token, make_proof(thief, method="POST", url=url, access_token=token)),  # thief's key
        dpop_query(world, token, None, scheme="Bearer"),  # stripped of its binding
        dpop_query(world, token, None),  # no proof
        dpop_query(world, token, proof),  # the owner's proof, replayed
        dpop_query(world, token, make_proof(owner, method="GET", url=f"{world.url}/v1/entitlements",
                                            access_token=token)),  # a proof for another request
        dpop_query(world, token, make_proof(owner, method="POST", url=url, access_token="another token")),
    ]
    for response in attempts:
        problem = assert_refused(response, 401, "invalid_dpop_proof")
        assert response.headers["www-authenticate"].startswith("DPoP ")
        assert problem["detail"]
    assert world.refusals(world.sub_a3)[refusals:] == ["invalid_dpop_proof"] * len(attempts)
    fresh = make_proof(owner, method="POST", url=url, access_token=token)
    assert dpop_query(world, token, fresh).status_code == 200


def test_rfc9449_a_bad_proof_at_the_token_endpoint_gets_no_token(world: World) -> None:
    key = ECKey.generate_key("P-256", private=True)
    with world.http() as http:
        for proof in ("junk", make_proof(key, method="GET", url=f"{world.url}/oauth/token"),
                      make_proof(key, method="POST", url=f"{world.url}/elsewhere")):
            response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(str(world.client_a[0]), world.client_a[1]), headers={"DPoP": proof})
            assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"


def test_rfc9449_an_unbound_token_cannot_pretend_to_be_bound(world: World) -> None:
    token = world.token()
    key = ECKey.generate_key("P-256", private=True)
    url = f"{world.url}/v1/products/{world.water3}/query"
    response = dpop_query(world, token, make_proof(key, method="POST", url=url, access_token=token))
    assert_refused(response, 401, "invalid_token")
