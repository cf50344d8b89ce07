"""What one API process holds: the store's services, the token authority, the meter, the data.

Handlers are plain functions over an ``ApiState`` and run in worker threads (store
reads, Polars and the wait for the meter's commit all block), so the event loop only
parses HTTP and the state can be driven directly by tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from marketplace.api.dpop import DPoPVerifier
from marketplace.api.live import LiveCache
from marketplace.api.metering import UsageMeter
from marketplace.api.tokens import TokenAuthority
from marketplace.bootstrap import Marketplace
from marketplace.services.base import Clock

P = ParamSpec("P")
T = TypeVar("T")


class ProductData:
    """Product versions as content-addressed Parquet files (``<product_dir>/<content_hash>.parquet``).

    Large versions are scanned lazily (``pl.scan_parquet``): a query reads only the
    columns and row groups it needs. Small ones (up to ``memory_bytes`` in all) are read
    once and kept in memory, because re-reading a small file costs more than the query;
    the bytes never change for a hash, so neither copy can go stale.
    """

    def __init__(self, directory: Path, *, memory_bytes: int = 512 * 2**20) -> None:
        self.directory = directory
        self.memory_bytes = memory_bytes
        self._used = 0
        self._scans: dict[str, pl.LazyFrame] = {}
        self._lock = Lock()

    def path(self, content_hash: str) -> Path:
        if not content_hash.isalnum():  # a hash, never a path someone could steer
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.directory / f"{content_hash}.parquet"

    def frame(self, content_hash: str) -> pl.LazyFrame | None:
        with self._lock:
            scan = self._scans.get(content_hash)
        if scan is None:
            path = self.path(content_hash)
            if not path.exists():
                return None
            size = path.stat().st_size
            with self._lock:
                in_memory = self._used + size <= self.memory_bytes
                if in_memory:
                    self._used += size
            scan = pl.read_parquet(path).lazy() if in_memory else pl.scan_parquet(path)
            with self._lock:
                self._scans[content_hash] = scan
        return scan


@dataclass
class ApiState:
    mp: Marketplace
    tokens: TokenAuthority
    meter: UsageMeter
    data: ProductData
    clock: Clock
    live: LiveCache
    dpop: DPoPVerifier = field(default_factory=DPoPVerifier)
    #: Refuse tokens that are not DPoP-bound (``SHUYUN_API_REQUIRE_DPOP=1``).
    require_dpop: bool = False
    #: The benchmark's baseline switches metering off; nothing else may.
    metered: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    def close(self) -> None:
        self.meter.close()
        self.mp.close()


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def parse_uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
