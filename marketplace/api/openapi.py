"""The OpenAPI 3.1 document of the data API, served at ``/openapi.json``.

Written by hand next to the handlers rather than generated, so it states the contract
that matters to a unit's engineers: the OAuth flow, the query language, the metering
headers and the problem codes, in words as well as schemas.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}
OAUTH_ERROR = {"$ref": "#/components/schemas/OAuthError"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": PROBLEM}}}


def _oauth_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": OAUTH_ERROR}}}


_AUTH_REFUSALS = {
    "401": _problem("Token missing, malformed, forged, expired (`token_expired`), revoked (`token_revoked`), or its "
                    "client revoked (`client_revoked`)."),
    "403": _problem("Token valid but not for this: another unit's or another product's subscription "
                    "(`scope_not_allowed`), member removed (`member_removed`), field outside the subscription "
                    "(`out_of_scope`), or a query the product's policy forbids (`policy_violation`)."),
    "409": _problem("Unit not qualified (`unit_not_qualified`, e.g. suspended), subscription not active "
                    "(`subscription_not_active`) or outside its term (`outside_term`)."),
}

_SUBSCRIPTION_PARAM = {
    "name": "subscription", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"},
    "description": "Which of the token's subscriptions to use; needed only when several cover the product.",
}
_PRODUCT_PARAM = {"name": "product_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def openapi_document(server_url: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Shuyun data API",
            "version": "1",
            "description": (
                "Machine access to licensed public-data products (Baotou public data operation measures, "
                "art. 8, 22, 23). Obtain a token with the OAuth 2 client-credentials grant; the token is bound to "
                "your unit, your member and your subscriptions and is checked live on every request (revocation "
                "and suspension take effect at once). Public data stays inside: queries run in the sandbox under "
                "the product's policy and every query, answered or refused, is metered before its answer is sent. "
                "Errors are RFC 9457 problem documents whose `code` says exactly what was refused."
            ),
        },
        "paths": {
            "/oauth/token": {"post": {
                "summary": "Client-credentials access token (RFC 6749 §4.4)",
                "description": "Authenticate with HTTP Basic (client_secret_basic) or form fields "
                               "(client_secret_post). `scope` is a space-separated list of subscription ids "
                               "(default: all of the client's active subscriptions). Tokens are ES256 JWTs "
                               "(RFC 9068) living at most 15 minutes. Send a DPoP proof (RFC 9449) in the `DPoP` "
                               "header to get a token bound to your key (`token_type` DPoP): it is then useless "
                               "without a fresh proof signed by that key on every request.",
                "security": [{"clientBasic": []}, {}],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": ["grant_type"], "properties": {
                        "grant_type": {"const": "client_credentials"},
                        "scope": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                    }}}}},
                "responses": {
                    "200": {"description": "Token issued", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                    "400": _oauth_error("invalid_request, unsupported_grant_type, invalid_scope, "
                                        "unauthorized_client (unit not qualified)"),
                    "401": _oauth_error("invalid_client: unknown client, wrong secret, or client revoked"),
                },
            }},
            "/oauth/revoke": {"post": {
                "summary": "Revoke an access token (RFC 7009)",
                "description": "The token stops working at once on every API process.",
                "security": [{"clientBasic": []}, {}],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": ["token"], "properties": {
                        "token": {"type": "string"}, "token_type_hint": {"const": "access_token"},
                        "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                    }}}}},
                "responses": {
                    "200": {"description": "Revoked (or already invalid)"},
                    "400": _oauth_error("invalid_request or unauthorized_client (another client's token)"),
                    "401": _oauth_error("invalid_client"),
                },
            }},
            "/.well-known/jwks.json": {"get": {
                "summary": "Public keys that sign access tokens (RFC 7517)", "security": [],
                "responses": {"200": {"description": "JWK Set"}},
            }},
            "/v1/entitlements": {"get": {
                "summary": "The token's subscriptions: status, term, fields in scope, entitlements, what is left",
                "responses": {
                    "200": {"description": "Entitlements", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Entitlements"}}}},
                    **_AUTH_REFUSALS,
                },
            }},
            "/v1/products/{product_id}": {"get": {
                "summary": "Data dictionary, the sandbox policy in plain words, and remaining quota/budget",
                "parameters": [_PRODUCT_PARAM, _SUBSCRIPTION_PARAM],
                "responses": {"200": {"description": "Product description"}, **_AUTH_REFUSALS,
                              "404": _problem("No such product")},
            }},
            "/v1/products/{product_id}/query": {"post": {
                "summary": "Run a sandbox query (metered)",
                "description": (
                    "The body is a sandbox query (JSON, never SQL). The answer is JSON, or an Arrow IPC stream "
                    "with `Accept: application/vnd.apache.arrow.stream`. Add `; codecs=\"lz4, zstd\"` to that "
                    "media range to get the stream's buffers compressed with the first listed codec the API "
                    "supports (the `Content-Type` then names it, e.g. `; codecs=lz4`); without it the stream is "
                    "plain. Large results are streamed batch by batch (chunked). Every query, answered or "
                    "refused, is recorded on the subscription's usage ledger before the answer is sent."
                ),
                "parameters": [_PRODUCT_PARAM, _SUBSCRIPTION_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Query"}}}},
                "responses": {
                    "200": {
                        "description": "Result",
                        "headers": {
                            "X-Shuyun-Use-Id": {"schema": {"type": "string"}, "description": "The metered use"},
                            "X-Shuyun-Rows-Out": {"schema": {"type": "integer"}},
                            "X-Shuyun-Epsilon-Spent": {"schema": {"type": "number"}},
                            "X-Shuyun-Watermark": {"schema": {"type": "string"},
                                                   "description": "Per-subscription mark carried by the result"},
                            "X-Shuyun-Product-Version": {"schema": {"type": "integer"}},
                            "X-Shuyun-Suppressed-Groups": {"schema": {"type": "integer"}},
                            "X-Shuyun-Remaining-Queries": {"schema": {"type": "integer"}},
                            "X-Shuyun-Remaining-Rows": {"schema": {"type": "integer"}},
                            "X-Shuyun-Remaining-Budget": {"schema": {"type": "number"}},
                            "X-Shuyun-Quota-Resets": {"schema": {"type": "string", "format": "date"}},
                        },
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/QueryResult"}},
                            "application/vnd.apache.arrow.stream": {"schema": {"type": "string",
                                                                               "format": "binary"}},
                        },
                    },
                    "400": _problem("Malformed query (`invalid_input`, naming the path of the offending part)"),
                    **_AUTH_REFUSALS,
                    "429": _problem("Quota (`quota_exceeded`) or privacy budget (`privacy_budget_exhausted`) "
                                    "would be exceeded; `Retry-After` says when it resets"),
                    "503": _problem("Usage could not be recorded, so no result is returned"),
                },
            }},
            "/v1/workspace/sessions": {"post": {
                "summary": "Report workspace time: a workspace opened or closed, a kernel started or ended",
                "description": (
                    "Sent by a workspace's Jupyter server extension with the workspace's own token. The event is "
                    "recorded on the subscription's usage ledger as `workspace_session` use, as the token's member: "
                    "time, not a query (it consumes no query quota). `subscription` defaults to the token's first "
                    "active one. `session` and `sequence` identify the event: a retry answers 200 with "
                    "`counted: false`. A refused event is recorded as refused."
                ),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/WorkspaceEvent"}}}},
                "responses": {
                    "201": {"description": "Recorded", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/WorkspaceEventRecorded"}}}},
                    "200": {"description": "Already recorded (a retry)", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/WorkspaceEventRecorded"}}}},
                    "422": _problem("Malformed event (`invalid_input`, naming the `field`)"),
                    **_AUTH_REFUSALS,
                    "503": _problem("The event could not be recorded; retrying is safe"),
                },
            }},
            "/v1/usage": {"get": {
                "summary": "This month's own usage: totals, what is left, recent uses and refusals",
                "parameters": [_SUBSCRIPTION_PARAM],
                "responses": {"200": {"description": "Usage"}, **_AUTH_REFUSALS},
            }},
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "dpop": {"type": "http", "scheme": "dpop", "bearerFormat": "JWT",
                         "description": "Authorization: DPoP <token> plus a DPoP proof header (RFC 9449)"},
                "clientBasic": {"type": "http", "scheme": "basic"},
                "oauth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "/oauth/token",
                                                                           "scopes": {}}}},
            },
            "schemas": _schemas(),
        },
        "security": [{"bearer": []}, {"dpop": []}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _schemas() -> dict[str, Any]:
    return {
        "Problem": {
            "type": "object", "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string", "description": "urn:shuyun:problem:<code>"},
                "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string", "description": "Exactly what is wrong"},
                "instance": {"type": "string"},
                "code": {"type": "string", "description": "Machine-readable refusal code"},
            },
            "additionalProperties": {"type": "string", "description": "Ids involved"},
        },
        "OAuthError": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
        },
        "TokenResponse": {
            "type": "object", "required": ["access_token", "token_type", "expires_in", "scope"],
            "properties": {
                "access_token": {"type": "string"}, "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "maximum": 900}, "scope": {"type": "string"},
            },
        },
        "Remaining": {
            "type": "object",
            "properties": {
                "period": {"type": "string"}, "queries": {"type": "integer"}, "rows": {"type": "integer"},
                "budget": {"type": "number"}, "reset_on": {"type": "string", "format": "date"},
            },
        },
        "Entitlements": {
            "type": "object",
            "properties": {
                "unit_id": {"type": "string"}, "user_id": {"type": "string"},
                "subscriptions": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Query": {
            "type": "object", "additionalProperties": False,
            "description": "A sandbox query. Aggregate mode groups by dimensions; rows mode exists only for "
                           "products whose delivery mode allows row-level output.",
            "properties": {
                "mode": {"enum": ["aggregate", "rows"], "default": "aggregate"},
                "dimensions": {"type": "array", "items": {"type": "string"}},
                "columns": {"type": "array", "items": {"type": "string"}},
                "filters": {"type": "array", "items": {"type": "object", "required": ["column", "op", "value"],
                            "properties": {"column": {"type": "string"},
                                           "op": {"enum": ["eq", "ne", "in", "between", "gt", "gte", "lt", "lte"]},
                                           "value": {}}}},
                "aggregates": {"type": "array", "items": {"type": "object", "required": ["fn"], "properties": {
                    "fn": {"enum": ["count", "count_distinct", "sum", "mean", "min", "max", "quantile"]},
                    "column": {"type": "string"}, "alias": {"type": "string"}, "q": {"type": "number"}}}},
                "order_by": {"type": "array", "items": {"type": "object", "properties": {
                    "column": {"type": "string"}, "desc": {"type": "boolean"}}}},
                "limit": {"type": "integer", "minimum": 1},
            },
        },
        "WorkspaceEvent": {
            "type": "object", "additionalProperties": False, "required": ["event", "session", "sequence"],
            "properties": {
                "event": {"enum": ["workspace_opened", "kernel_started", "kernel_ended", "workspace_closed"]},
                "session": {"type": "string", "format": "uuid", "description": "One per workspace opening"},
                "sequence": {"type": "integer", "minimum": 0, "description": "The event's number in the session"},
                "subscription": {"type": "string", "format": "uuid"},
                "kernel_id": {"type": "string", "description": "Required for kernel_started and kernel_ended"},
                "kernel_name": {"type": "string"},
                "seconds": {"type": "number", "minimum": 0,
                            "description": "How long it ran; required for kernel_ended and workspace_closed"},
                "path": {"type": "string", "description": "The workspace's folder"},
            },
        },
        "WorkspaceEventRecorded": {
            "type": "object",
            "properties": {
                "use_id": {"type": "string"}, "event": {"type": "string"}, "session": {"type": "string"},
                "sequence": {"type": "integer"}, "counted": {"type": "boolean"},
                "subscription_id": {"type": "string"},
            },
        },
        "QueryResult": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "array"}},
                "meta": {"type": "object"},
            },
        },
    }
