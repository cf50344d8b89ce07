"""A 1M-row result to the notebook SDK (Arrow over HTTP) vs reading the same Arrow locally (target <= 3x).

Value: seconds for ``sy.query(...).collect()`` to return a 1M-row (at scale 1.0) Polars
DataFrame through the SDK's real code path: token from ``/oauth/token``, ``POST
/v1/products/{id}/query`` with ``Accept: application/vnd.apache.arrow.stream``, the
server encoding the frame with the API's own ``marketplace.api.queries.arrow_stream``
on every request, uvicorn in a separate process on loopback, the SDK decoding it.

Baseline: ``pl.read_ipc_stream`` of the same Arrow stream from a local file (warm page
cache), in this process — what the same data costs with no network and no server.

Why a stand-in server for the query endpoint: the sandbox caps every result at the
policy's ``max_rows`` (100,000), so no product can legitimately send 1M rows through the
real endpoint; this measures the transport the SDK adds (HTTP, Arrow encode/decode),
not the sandbox (``sandbox_groupby``) or metering (``api_metering``). Also reported: the
SDK against a plain HTTP GET of the same bytes already encoded (the floor any HTTP
client has on this machine, so its ratio is what the SDK and the per-request encoding
add), and the main ratio at 100k rows, the largest result the real API can return.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from benchmarks import Result, best_of, result

ROWS_AT_SCALE_1 = 1_000_000
TARGET = "<= 3"
PRODUCT = "00000000-0000-4000-8000-000000000001"
DISTRICTS = ["昆都仑区", "青山区", "东河区", "九原区", "石拐区", "白云鄂博矿区", "稀土高新区", "土默特右旗"]


def frame(rows: int) -> pl.DataFrame:
    """A row-level result of the shape of the bus product: time, category, counts, a flag."""
    rng = np.random.default_rng(2023)
    start = np.datetime64("2024-12-01T05:00:00", "us")
    return pl.DataFrame({
        "service_hour": start + rng.integers(0, 31 * 24, rows).astype("timedelta64[h]"),
        "district": pl.Series(DISTRICTS).cast(pl.Categorical).gather(rng.integers(0, len(DISTRICTS), rows)),
        "stop_seq": rng.integers(1, 40, rows, dtype=np.int64),
        "boardings": rng.poisson(30, rows).astype(np.int64),
        "alightings": rng.poisson(30, rows).astype(np.int64),
        "is_weekend": rng.random(rows) < 2 / 7,
    })


def make_app(path: Path) -> object:
    """The query endpoint's transport: the API's Arrow encoding and headers over a loaded frame."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from marketplace.api.queries import arrow_stream

    data = pl.read_ipc_stream(path)

    async def token(request: Request) -> Response:
        return JSONResponse({"access_token": "bench", "token_type": "Bearer", "expires_in": 900})

    async def query(request: Request) -> Response:
        await request.body()
        headers = {"X-Shuyun-Rows-Out": str(data.height), "X-Shuyun-Epsilon-Spent": "0.0",
                   "X-Shuyun-Use-Id": "bench", "X-Shuyun-Product-Version": "1"}
        return Response(arrow_stream(data), 200, headers, "application/vnd.apache.arrow.stream")

    encoded = path.read_bytes()

    async def raw(request: Request) -> Response:
        """The same bytes, encoded once: what moving them over loopback HTTP costs by itself."""
        return Response(encoded, 200, media_type="application/vnd.apache.arrow.stream")

    return Starlette(routes=[Route("/oauth/token", token, methods=["POST"]),
                             Route("/v1/products/{product_id}/query", query, methods=["POST"]),
                             Route("/raw", raw, methods=["GET"])])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    code = (
        "import sys, uvicorn; from pathlib import Path; from benchmarks.sdk_arrow import make_app; "
        f"uvicorn.run(make_app(Path({str(path)!r})), host='127.0.0.1', port={port}, log_level='warning')"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(root)))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/oauth/token", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("benchmark server did not start")


def _measure(rows: int, workdir: Path, repeats: int) -> tuple[float, float, float]:
    from marketplace.client import Client, WorkspaceConfig
    from marketplace.client.config import write_secret

    path = workdir / f"result-{rows}.arrows"
    buffer = io.BytesIO()
    frame(rows).write_ipc_stream(buffer)
    path.write_bytes(buffer.getvalue())
    secret = workdir / "client_secret"
    write_secret(secret, "bench")
    proc, url = _serve(path)
    try:
        sy = Client(WorkspaceConfig(api_url=url, client_id="bench", secret_file=secret))
        builder = sy.query(PRODUCT).select("service_hour", "district", "stop_seq", "boardings", "alightings",
                                           "is_weekend")
        got = builder.collect()
        assert got.height == rows, got.height
        sdk = best_of(repeats, builder.collect)
        local = best_of(repeats, lambda: pl.read_ipc_stream(path))
        with httpx.Client(base_url=url, timeout=120) as http:
            transfer = best_of(repeats, lambda: http.get("/raw").content)
        sy.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return sdk, local, transfer


def run(scale: float = 1.0) -> list[Result]:
    rows = max(1000, int(ROWS_AT_SCALE_1 * scale))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sdk-arrow-") as tmp:
        sdk, local, transfer = _measure(rows, Path(tmp), repeats=5)
        results.append(result(f"sdk_arrow_http_{rows}_rows_vs_local_read", sdk, "s", local, TARGET))
        results.append(result(f"sdk_arrow_http_{rows}_rows_vs_plain_http_transfer", sdk, "s", transfer, "info"))
        capped = min(rows, 100_000)
        sdk, local, transfer = _measure(capped, Path(tmp), repeats=7)
        results.append(result(f"sdk_arrow_http_{capped}_rows_vs_local_read", sdk, "s", local, TARGET))
    return results


if __name__ == "__main__":
    for r in run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0):
        print(r)
