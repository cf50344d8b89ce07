"""The OAuth 2 endpoints: client-credentials tokens (RFC 6749 §4.4, DPoP-bound per RFC 9449) and revocation (RFC 7009).

Errors here follow RFC 6749 §5.2 (``{"error", "error_description"}``), not problem JSON,
because OAuth client libraries parse exactly that shape. Client authentication is
``client_secret_basic`` or ``client_secret_post``, never both in one request (§2.3).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import Response

from domain.credentials import ApiClient, ClientRevoked, MemberRemoved
from domain.errors import DomainError
from domain.parties import UnitNotQualified
from marketplace.api.dpop import InvalidDPoPProof
from marketplace.api.state import ApiState, state_of
from marketplace.api.tokens import InvalidToken, TokenExpired
from marketplace.services.credentials import InvalidClient, InvalidScope

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16_384
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, *, basic: bool = False) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic = basic

    def response(self) -> Response:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="shuyun"' if self.basic else 'Bearer realm="shuyun"'
        body = {"error": self.error, "error_description": self.description}
        return Response(json.dumps(body, ensure_ascii=False), self.status, headers, "application/json")


async def token_endpoint(request: Request) -> Response:
    state = state_of(request)
    try:
        form = await _form(request)
        return await state.run(
            _issue_token, state, request.headers.get("authorization"), form, request.headers.get("dpop"),
            str(request.url),
        )
    except OAuthError as error:
        return error.response()


async def revoke_endpoint(request: Request) -> Response:
    state = state_of(request)
    try:
        form = await _form(request)
        return await state.run(_revoke_token, state, request.headers.get("authorization"), form)
    except OAuthError as error:
        return error.response()


def _issue_token(
    state: ApiState, authorization: str | None, form: dict[str, str], dpop: str | None = None, url: str = ""
) -> Response:
    """A token for the authenticated client; bound to its key (``cnf.jkt``) when it sent a DPoP proof."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    client, basic = _authenticate(state, authorization, form)
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"only client_credentials is supported, not {grant_type!r}")
    requested = form.get("scope", "").split() or None
    now = state.clock()
    jkt = None
    if dpop is not None:
        try:
            jkt = state.dpop.verify(dpop, method="POST", url=url, access_token=None, now=now).jkt
        except InvalidDPoPProof as error:
            raise OAuthError("invalid_dpop_proof", error.message) from None
    try:
        grant = state.mp.credentials.grant(client, requested=requested, at=now)
    except InvalidScope as error:
        raise OAuthError("invalid_scope", error.message) from None
    except (ClientRevoked, MemberRemoved) as error:
        raise OAuthError("invalid_client", error.message, 401, basic=basic) from None
    except UnitNotQualified as error:
        raise OAuthError("unauthorized_client", error.message) from None
    except DomainError as error:
        raise OAuthError("invalid_scope", error.message) from None
    token, claims = state.tokens.issue(
        user_id=grant.actor.user_id, unit_id=grant.unit_id, client_id=grant.client_id, scope=grant.scope, now=now,
        jkt=jkt,
    )
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "DPoP" if jkt else "Bearer",
        "expires_in": claims.expires_at - claims.issued_at,
        "scope": " ".join(str(s) for s in grant.scope),
    }
    return Response(json.dumps(body), 200, _NO_STORE, "application/json")


def _revoke_token(state: ApiState, authorization: str | None, form: dict[str, str]) -> Response:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    client, _ = _authenticate(state, authorization, form)
    hint = form.get("token_type_hint")
    if hint not in (None, "access_token"):
        raise OAuthError("unsupported_token_type", f"only access tokens can be revoked, not {hint!r}")
    try:
        claims = state.tokens.verify(token, now=state.clock())
    except TokenExpired:
        return Response(status_code=200, headers=_NO_STORE)  # expired already: nothing to revoke
    except InvalidToken:
        return Response(status_code=200, headers=_NO_STORE)  # RFC 7009 §2.2: invalid tokens are no error
    if claims.client_id != client.id:
        raise OAuthError("unauthorized_client", "a client may revoke only the tokens issued to it")
    try:
        state.mp.credentials.revoke_token(client, jti=claims.jti, expires_at=claims.expires_at)
    except DomainError as error:
        raise OAuthError("invalid_request", error.message) from None
    return Response(status_code=200, headers=_NO_STORE)


def _authenticate(state: ApiState, authorization: str | None, form: dict[str, str]) -> tuple[ApiClient, bool]:
    basic = authorization is not None and authorization[:6].lower() == "basic "
    posted = "client_id" in form or "client_secret" in form
    if basic and posted:
        raise OAuthError("invalid_request", "use one client authentication method, not both")
    if basic:
        assert authorization is not None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            raw_id, raw_secret = decoded.split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401, basic=True) from None
        client_id, secret = unquote(raw_id), unquote(raw_secret)
    elif posted:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    else:
        raise OAuthError("invalid_client", "client authentication is required", 401, basic=True)
    try:
        return state.mp.credentials.authenticate_client(client_id, secret), basic
    except (InvalidClient, ClientRevoked) as error:
        raise OAuthError("invalid_client", error.message, 401, basic=basic) from None


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "the request body is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not valid form encoding") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")  # RFC 6749 §3.1
        form[key] = value
    return form
