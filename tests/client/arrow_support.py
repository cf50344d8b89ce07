"""What the Arrow transport tests share: a stand-in query endpoint, a stand-in API, an SDK client on it."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplace.api.wire import ARROW_STREAM, arrow_response
from marketplace.client import Client, WorkspaceConfig
from marketplace.client.config import write_secret

PRODUCT = "0b7a3f8e-1d5c-4c1e-9a51-6f0f2b9f1a11"
#: What the SDK asked for before it restored narrowed columns: codecs only.
CODECS_ONLY = f'{ARROW_STREAM}; codecs="lz4, zstd"'
DISTRICTS = ["昆都仑区", "青山区", "东河区", "九原区"]


def secret_in(folder: Path) -> Path:
    """A workspace's client secret file, as ``shuyun workspace launch`` writes it."""
    path = folder / "client_secret"
    write_secret(path, "s3cret")
    return path


def app_serving(frame: pl.DataFrame, headers: dict[str, str] | None = None) -> Starlette:
    """The query endpoint's transport over a fixed result: the API's own ``arrow_response`` at ``POST /q``."""
    async def query(request: Request) -> Response:
        return arrow_response(frame, request.headers.get("accept", ""),
                              {"X-Shuyun-Rows-Out": str(frame.height), **(headers or {})})

    return Starlette(routes=[Route("/q", query, methods=["POST"])])


def serving(body: bytes | httpx.SyncByteStream, rows: int,
            content_type: str = f"{ARROW_STREAM}; codecs=lz4") -> httpx.MockTransport:
    """An API that grants a token and answers every query with ``body`` as ``content_type``."""
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 300})
        headers = {"content-type": content_type, "x-shuyun-rows-out": str(rows), "x-shuyun-use-id": "use-1"}
        if isinstance(body, bytes):
            return httpx.Response(200, headers=headers, content=body)
        return httpx.Response(200, headers=headers, stream=body)

    return httpx.MockTransport(api)


def sdk_client(transport: httpx.BaseTransport, secret_file: Path) -> Client:
    """The SDK with a workspace's configuration, talking to ``transport``."""
    config = WorkspaceConfig(api_url="http://api.test", client_id="c1", secret_file=secret_file)
    return Client(config, http=httpx.Client(base_url="http://api.test", transport=transport))
