"""The token endpoint over real HTTP: client credentials, RFC 6749 errors, revocation (art. 23, 34)."""

from __future__ import annotations

import base64
from uuid import UUID, uuid4

from joserfc import jwt
from joserfc.jwk import KeySet

from domain.identity import Actor, Role
from marketplace.api.tokens import AUDIENCE
from tests.api.conftest import World, tenant

GRANT = {"grant_type": "client_credentials"}


def basic(client: tuple[UUID, str]) -> tuple[str, str]:
    return str(client[0]), client[1]


def test_art23_client_secret_basic_yields_a_short_lived_es256_token(world: World) -> None:
    client_id, secret = world.client_a
    with world.http() as http:
        response = http.post("/oauth/token", data=GRANT, auth=(str(client_id), secret))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
        assert set(body["scope"].split()) == {str(world.sub_a3), str(world.sub_a_open)}
        jwks = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    token = jwt.decode(body["access_token"], jwks, algorithms=["ES256"])
    assert token.claims["aud"] == AUDIENCE and token.claims["unit"] == str(world.unit_a.id)
    assert token.claims["sub"] == world.unit_a.analyst.user_id and token.claims["client_id"] == str(client_id)


def test_art23_client_secret_post_and_a_narrower_scope(world: World) -> None:
    client_id, secret = world.client_a
    with world.http() as http:
        response = http.post("/oauth/token", data={**GRANT, "client_id": str(client_id), "client_secret": secret,
                                                   "scope": str(world.sub_a3)})
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == str(world.sub_a3)


def test_art23_wrong_secret_and_unknown_client_are_invalid_client(world: World) -> None:
    client_id, secret = world.client_a
    with world.http() as http:
        for auth in ((str(client_id), secret + "x"), (str(uuid4()), secret), ("", "")):
            response = http.post("/oauth/token", data=GRANT, auth=auth)
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_client"
            assert response.headers["www-authenticate"].startswith("Basic")
        assert http.post("/oauth/token", data=GRANT).json()["error"] == "invalid_client"


def test_art23_a_client_cannot_ask_for_another_units_subscription(world: World) -> None:
    with world.http() as http:
        response = http.post("/oauth/token", data={**GRANT, "scope": str(world.sub_b3)}, auth=basic(world.client_a))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "not in this client's scope" in response.json()["error_description"]


def test_rfc6749_malformed_requests_get_the_standard_errors(world: World) -> None:
    client_id, secret = world.client_a
    auth = (str(client_id), secret)
    with world.http() as http:
        cases = [
            (http.post("/oauth/token", data={"grant_type": "password"}, auth=auth), 400, "unsupported_grant_type"),
            (http.post("/oauth/token", data={}, auth=auth), 400, "invalid_request"),
            (http.post("/oauth/token", json=GRANT, auth=auth), 400, "invalid_request"),
            (http.post("/oauth/token", content=b"grant_type=client_credentials&grant_type=x",
                       headers={"content-type": "application/x-www-form-urlencoded"}, auth=auth), 400,
             "invalid_request"),
            (http.post("/oauth/token", data={**GRANT, "client_id": str(client_id), "client_secret": secret},
                       auth=auth), 400, "invalid_request"),
            (http.post("/oauth/token", data=GRANT, headers={"authorization": "Basic !!!"}), 401, "invalid_client"),
        ]
    for response, status, error in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"] == error


def test_rfc7009_a_revoked_token_fails_at_once_and_revocation_is_idempotent(world: World) -> None:
    token = world.token()
    auth = basic(world.client_a)
    bearer = {"Authorization": f"Bearer {token}"}
    with world.http() as http:
        assert http.get("/v1/entitlements", headers=bearer).status_code == 200
        assert http.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
        refused = http.get("/v1/entitlements", headers=bearer)
        assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
        assert refused.headers["www-authenticate"].startswith("Bearer error=\"invalid_token\"")
        assert http.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
        assert http.post("/oauth/revoke", data={"token": "junk"}, auth=auth).status_code == 200
        assert http.post("/oauth/revoke", data={}, auth=auth).json()["error"] == "invalid_request"
        other = world.token()
        assert http.get("/v1/entitlements", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_rfc7009_a_client_cannot_revoke_another_clients_token(world: World) -> None:
    token_b = world.token(world.client_b)
    with world.http() as http:
        response = http.post("/oauth/revoke", data={"token": token_b}, auth=basic(world.client_a))
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
        ok = http.get("/v1/entitlements", headers={"Authorization": f"Bearer {token_b}"})
        assert ok.status_code == 200


def test_art34_a_revoked_client_gets_no_token_and_its_tokens_die(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    world.mp.credentials.revoke_client(t.unit.admin, t.client[0], reason="notebook decommissioned")
    with world.http() as http:
        response = http.post("/oauth/token", data=GRANT, auth=(str(t.client[0]), t.client[1]))
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        refused = http.get("/v1/entitlements", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and refused.json()["code"] == "client_revoked"


def test_art34_a_suspended_unit_gets_no_token(world: World) -> None:
    t = tenant(world)
    world.mp.parties.suspend_unit(Actor("admin", Role.OPERATOR_ADMIN), t.unit.id, reason="leak investigated")
    basic = base64.b64encode(f"{t.client[0]}:{t.client[1]}".encode()).decode()
    with world.http() as http:
        response = http.post("/oauth/token", data=GRANT, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_rfc8414_metadata_and_openapi_describe_the_endpoints(world: World) -> None:
    with world.http() as http:
        meta = http.get("/.well-known/oauth-authorization-server").json()
        spec = http.get("/openapi.json").json()
        docs = http.get("/docs")
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert meta["token_endpoint"].endswith("/oauth/token")
    assert spec["openapi"].startswith("3.1")
    for path in ("/oauth/token", "/oauth/revoke", "/v1/entitlements", "/v1/products/{product_id}",
                 "/v1/products/{product_id}/query", "/v1/usage", "/.well-known/jwks.json"):
        assert path in spec["paths"], path
    assert "application/vnd.apache.arrow.stream" in str(spec["paths"]["/v1/products/{product_id}/query"])
    assert docs.status_code == 200 and "/v1/usage" in docs.text


def test_rfc9457_unknown_paths_and_methods_are_problem_documents(world: World) -> None:
    with world.http() as http:
        missing = http.get("/v2/nothing")
        wrong = http.get("/oauth/token")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"] == "urn:shuyun:problem:not_found"
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
