"""The ASGI application: ``uvicorn marketplace.api.app:create_app --factory``.

One process holds one store connection, one token authority (keys from
``<data_dir>/keys``), one usage meter (group commit) and the product data directory.
Configuration comes from the environment like every other entry point
(``SHUYUN_DATA_DIR``, ``SHUYUN_DATABASE_URL``; ``SHUYUN_API_ISSUER`` names the token issuer,
``SHUYUN_API_TOKEN_TTL`` the token lifetime in seconds, at most 900;
``SHUYUN_API_REQUIRE_DPOP=1`` accepts only DPoP-bound tokens).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from domain.credentials import ApiClient
from domain.errors import DomainError
from domain.licensing import Subscription
from domain.parties import ApplicationUnit
from domain.products import DataProduct
from marketplace.api import oauth, problems, sessions, v1
from marketplace.api.heap import keep_freed_memory
from marketplace.api.live import LiveCache
from marketplace.api.metering import UsageMeter
from marketplace.api.openapi import openapi_document
from marketplace.api.state import WORKER_THREADS, ApiState, ProductData, state_of
from marketplace.api.tokens import DEFAULT_TTL_SECONDS, TokenAuthority
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from marketplace.keys import KeyRing
from marketplace.services.base import Clock, utc_now

DEFAULT_ISSUER = "urn:shuyun:api"


def build_state(
    config: Config | None = None,
    *,
    clock: Clock = utc_now,
    issuer: str | None = None,
    ttl_seconds: int | None = None,
    marketplace: Marketplace | None = None,
) -> ApiState:
    """Everything one API process needs, from configuration (the composition root of the API)."""
    config = config or Config.from_env()
    mp = marketplace or build(config, clock=clock)
    keys = KeyRing.load_or_create(config.data_dir)
    tokens = TokenAuthority(
        keys,
        issuer=issuer or os.environ.get("SHUYUN_API_ISSUER", DEFAULT_ISSUER),
        ttl_seconds=ttl_seconds or int(os.environ.get("SHUYUN_API_TOKEN_TTL", DEFAULT_TTL_SECONDS)),
    )
    live = LiveCache(mp.credentials, (ApiClient, ApplicationUnit, Subscription, DataProduct))
    meter = UsageMeter(mp.app)
    meter.on_commit = live.note_own
    return ApiState(
        mp=mp, tokens=tokens, meter=meter, data=ProductData(config.product_dir), clock=clock, live=live,
        require_dpop=os.environ.get("SHUYUN_API_REQUIRE_DPOP", "") in ("1", "true", "yes"),
    )


def create_app(state: ApiState | None = None) -> Starlette:
    """The API; with no argument it builds its state from the environment when it starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        own = state is None
        if own:  # a server process of its own (uvicorn --factory), not an app inside a test or a host
            keep_freed_memory()
        app.state.api = state if state is not None else build_state()
        try:
            yield
        finally:
            if own:
                app.state.api.close()

    routes = [
        # The hot path first: Starlette tries the routes in order, a regex match each.
        Route("/v1/products/{product_id}/query", v1.query_endpoint, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/oauth/token", oauth.token_endpoint, methods=["POST"]),
        Route("/oauth/revoke", oauth.revoke_endpoint, methods=["POST"]),
        Route("/v1/entitlements", v1.entitlements_endpoint, methods=["GET"]),
        Route("/v1/products/{product_id}", v1.product_endpoint, methods=["GET"]),
        Route("/v1/usage", v1.usage_endpoint, methods=["GET"]),
        Route("/v1/workspace/sessions", sessions.workspace_session_endpoint, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, DomainError: domain_error, Exception: server_error},
    )


async def health(request: Request) -> Response:
    state = state_of(request)
    events = await state.run(state.mp.app.recorder.max_notification_id)
    return JSONResponse({"status": "ok", "events": events or 0, "metered_batches": state.meter.batches})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(str(request.base_url).rstrip("/")))


async def docs(request: Request) -> Response:
    """A readable index of the OpenAPI document (no external scripts: the platform is offline)."""
    document = openapi_document(str(request.base_url).rstrip("/"))
    rows = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
            )
    page = (
        "<!doctype html><meta charset=utf-8><title>Shuyun API</title>"
        f"<h1>{html.escape(document['info']['title'])}</h1><p>{html.escape(document['info']['description'])}</p>"
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>"
        f"<table border=1 cellpadding=4>{''.join(rows)}</table>"
    )
    return HTMLResponse(page)


async def jwks(request: Request) -> Response:
    return JSONResponse(state_of(request).tokens.keys.jwks(), headers={"Cache-Control": "max-age=300"})


async def metadata(request: Request) -> Response:
    """RFC 8414 authorization server metadata, so OAuth libraries configure themselves."""
    base = str(request.base_url).rstrip("/")
    state = state_of(request)
    return JSONResponse({
        "issuer": state.tokens.issuer,
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "dpop_signing_alg_values_supported": ["ES256", "Ed25519"],
        "response_types_supported": [],
        "scopes_supported": [],
    })


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404:
        detail = f"no such resource: {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return problems.problem(exc.status_code, code, detail, instance=request.url.path, headers=headers)


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problems.from_error(exc, instance=request.url.path)


async def server_error(request: Request, exc: Exception) -> Response:
    return problems.problem(500, "internal_error", "the server failed; the request was not carried out",
                            instance=request.url.path)
