"""What one API process holds: the store's services, the token authority, the meter, the data.

Handlers are plain functions over an ``ApiState`` and run in worker threads (store
reads and Polars block), so the event loop only parses HTTP and waits (for the live
cache's catch-up and the meter's commit, neither holding a thread), and the state can be
driven directly by tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import polars as pl
from starlette.requests import Request

from marketplace.api.dpop import DPoPVerifier
from marketplace.api.live import LiveCache
from marketplace.api.metering import UsageMeter
from marketplace.api.tokens import TokenAuthority
from marketplace.api.wire import VersionWire
from marketplace.bootstrap import Marketplace
from marketplace.sandbox.execute import GroupedCache, VersionData
from marketplace.services.base import Clock

P = ParamSpec("P")
T = TypeVar("T")

#: Worker threads for the CPU-bound part of requests (store reads, Polars). Waiting for a
#: batch to commit holds no thread, so few are needed; more only fight over the GIL and
#: starve the event loop.
WORKER_THREADS = 8


class ProductData:
    """Product versions as content-addressed Parquet files (``<product_dir>/<content_hash>.parquet``).

    Large versions are scanned lazily (``pl.scan_parquet``): a query reads only the
    columns and row groups it needs, on the streaming engine. Small ones (up to
    ``memory_bytes`` of Parquet in all) are read and decoded once and kept in memory as a
    ``DataFrame`` (queried on the in-memory engine), because re-reading a small file
    costs more than the query; the bytes never change for a hash, so neither copy can go
    stale, and a new version has a new hash. For the same reason the grouped results of
    queries, and what the output controls released from them for each subscription, are
    kept (``results``, bounded by ``result_bytes``; see ``GroupedCache`` for why a kept
    release is exactly the answer the controls would give again).
    """

    def __init__(
        self, directory: Path, *, memory_bytes: int = 512 * 2**20, result_bytes: int = 64 * 2**20
    ) -> None:
        self.directory = directory
        self.memory_bytes = memory_bytes
        self.results = GroupedCache(result_bytes)
        self._used = 0
        self._versions: dict[str, VersionData] = {}
        self._wires: dict[str, VersionWire] = {}
        self._lock = Lock()

    def path(self, content_hash: str) -> Path:
        if not content_hash.isalnum():  # a hash, never a path someone could steer
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.directory / f"{content_hash}.parquet"

    def frame(self, content_hash: str) -> VersionData | None:
        """The version's data (in memory if it fits, else a lazy scan); ``None`` if the file is missing."""
        found = self._versions.get(content_hash)
        if found is not None:
            return found
        path = self.path(content_hash)
        if not path.exists():
            return None
        size = path.stat().st_size
        with self._lock:
            in_memory = self._used + size <= self.memory_bytes
            if in_memory:
                self._used += size
        frame: pl.DataFrame | pl.LazyFrame = pl.read_parquet(path) if in_memory else pl.scan_parquet(path)
        loaded = VersionData(frame, content_hash, self.results)
        with self._lock:
            # Two requests may load the same version at once: keep (and count) one copy.
            kept = self._versions.setdefault(content_hash, loaded)
            if kept is not loaded and in_memory:
                self._used -= size
        return kept

    def wire(self, content_hash: str) -> VersionWire | None:
        """The columns of a version held in memory as they go on the wire to the SDK, narrowed on first use.

        Counted against ``memory_bytes`` like the version itself (at most the version's
        size; about a sixth of it for typical products); None for a version scanned from
        its file, or when it does not fit.
        """
        found = self._wires.get(content_hash)
        if found is not None:
            return found
        data = self._versions.get(content_hash)
        if data is None or not isinstance(data.frame, pl.DataFrame):
            return None
        with self._lock:
            fits = self._used + data.frame.estimated_size() <= self.memory_bytes
        if not fits:
            return None
        made = VersionWire(data.frame)
        with self._lock:
            kept = self._wires.setdefault(content_hash, made)
            if kept is made:
                self._used += made.nbytes
        return kept


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
    #: The worker threads of ``run`` (the API's own pool, sized ``WORKER_THREADS``).
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="api-worker")
    )

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread (with the caller's context variables).

        The API's own executor rather than Starlette's ``run_in_threadpool``: AnyIO's
        hand-off (capacity limiter, cancel scope, task lookups) cost about 120 us of CPU
        per call against about 40 us for ``run_in_executor``, on every request.
        """
        context = contextvars.copy_context()
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, context.run, call)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.live.close()
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
