"""Jupyter server extension: workspace time is metered like any other use (art. 8, 23).

Enabled by the launcher's server config (``jpserver_extensions``). It reports, through the
marketplace API (``POST /v1/workspace/sessions``) with the workspace's own credentials
(the ``workspace.json`` the SDK reads), usage of kind ``workspace_session``:

* ``workspace_opened`` when the server starts,
* ``kernel_started`` / ``kernel_ended`` (with the seconds it ran) for each kernel,
* ``workspace_closed`` (with the seconds it was open) when the server stops; kernels
  still running then are ended first.

The API records them on the ledger of the workspace's subscription as the member the
credentials belong to. The workspace therefore needs no store access at all: in production
a JupyterHub single-user server holds only the member's API client, never the platform's
database settings.

Recording must never take the analyst's workspace down: a refused or failed report is
logged, not raised. Reports leave in order from one background thread, so a slow or
unreachable API never delays a kernel; each is retried a few times when the API is
unreachable or asks to (a report is identified by session and sequence, so a retry is
never counted twice), and closing the server waits a bounded time for them to leave.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol
from uuid import uuid4

log = logging.getLogger("shuyun.workspace")

#: Pauses between attempts of a report the API could not take (unreachable, 503).
RETRY_DELAYS = (0.5, 2.0)
#: How long closing the server waits for reports still queued.
CLOSE_TIMEOUT = 30.0
_TRANSIENT = {"unreachable", "metering_unavailable", "concurrency_conflict"}


class EventSink(Protocol):
    """What the recorder reports to: the SDK client (``Client.record_workspace_event``)."""

    def record_workspace_event(
        self, event: str, *, session: str, sequence: int, subscription: str | None = None,
        kernel_id: str | None = None, kernel_name: str | None = None, seconds: float | None = None,
        path: str | None = None,
    ) -> dict[str, Any]: ...


class SessionRecorder:
    """The events of one workspace opening, numbered in order, reported through ``sink``.

    ``submit`` runs a report; by default at once (tests), in the extension on a
    single background thread so that reports keep their order without blocking Jupyter.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        subscription_id: str | None = None,
        workspace: str = "",
        clock: Callable[[], float] = time.monotonic,
        submit: Callable[[Callable[[], bool]], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sink = sink
        self.subscription_id = subscription_id
        self.workspace = workspace
        self.clock = clock
        self._submit: Callable[[Callable[[], bool]], object] = submit or (lambda report: report())
        self._sleep = sleep
        self.session_id = str(uuid4())
        self.sequence = 0
        self.opened_at: float | None = None
        self.kernels: dict[str, float] = {}
        self.recorded: list[str] = []
        self.failed: list[str] = []

    def record(self, what: str, **details: Any) -> object:
        """Number the event now (so order follows the calls) and hand its report to ``submit``."""
        fields = {"session": self.session_id, "sequence": self.sequence, "subscription": self.subscription_id,
                  "path": self.workspace or None, **details}
        self.sequence += 1
        return self._submit(functools.partial(self._report, what, fields))

    def _report(self, what: str, fields: dict[str, Any]) -> bool:
        from marketplace.client.errors import ShuyunError

        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                self.sink.record_workspace_event(what, **fields)
            except ShuyunError as error:
                if error.code in _TRANSIENT and delay is not None:
                    log.info("workspace usage %s not recorded yet (attempt %d): %s", what, attempt + 1, error)
                    self._sleep(delay)
                    continue
                log.warning("workspace usage %s not recorded: %s", what, error)
            except Exception:
                log.exception("workspace usage %s not recorded", what)
            else:
                self.recorded.append(what)
                return True
            self.failed.append(what)
            return False
        return False  # pragma: no cover - the loop always returns

    def opened(self) -> None:
        self.opened_at = self.clock()
        self.record("workspace_opened")

    def kernel_started(self, kernel_id: str, kernel_name: str = "") -> None:
        self.kernels[kernel_id] = self.clock()
        self.record("kernel_started", kernel_id=kernel_id, kernel_name=kernel_name or None)

    def kernel_ended(self, kernel_id: str) -> None:
        started = self.kernels.pop(kernel_id, None)
        if started is None:
            return
        self.record("kernel_ended", kernel_id=kernel_id, seconds=round(self.clock() - started, 3))

    def closed(self) -> None:
        for kernel_id in list(self.kernels):
            self.kernel_ended(kernel_id)
        if self.opened_at is not None:
            self.record("workspace_closed", seconds=round(self.clock() - self.opened_at, 3))
            self.opened_at = None


def recorder_from_settings(
    settings: dict[str, Any], submit: Callable[[Callable[[], bool]], object] | None = None
) -> SessionRecorder:
    """A recorder reporting with the workspace's SDK credentials.

    They are read from ``config_file`` if the settings name one, else from
    ``$SHUYUN_WORKSPACE_CONFIG`` (the launcher sets both).
    """
    from marketplace.client import connect

    client = connect(settings.get("config_file") or None, timeout=30.0)
    return SessionRecorder(client, subscription_id=settings.get("subscription_id") or None,
                           workspace=str(settings.get("workspace", "")), submit=submit)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "marketplace.jupyter_ext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    section = serverapp.config.get("ShuyunWorkspace") or {}
    settings = {k: section[k] for k in section}
    if not settings:
        serverapp.log.warning("shuyun: no ShuyunWorkspace settings; workspace usage is not recorded")
        return
    reports = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shuyun-usage")
    last: dict[str, Future[bool]] = {}

    def submit(report: Callable[[], bool]) -> Future[bool]:
        last["future"] = reports.submit(report)
        return last["future"]

    try:
        recorder = recorder_from_settings(settings, submit)
    except Exception as error:  # no usable workspace config: the workspace still works, unmetered
        serverapp.log.error("shuyun: workspace usage is not recorded: %s", error)
        reports.shutdown(wait=False)
        return
    serverapp.web_app.settings["shuyun_recorder"] = recorder
    manager = serverapp.kernel_manager
    start_kernel, shutdown_kernel = manager.start_kernel, manager.shutdown_kernel

    @functools.wraps(start_kernel)
    async def started(*args: Any, **kwargs: Any) -> Any:
        kernel_id = await start_kernel(*args, **kwargs)
        if kernel_id not in recorder.kernels:  # an existing kernel is returned for a known id
            recorder.kernel_started(str(kernel_id), str(kwargs.get("kernel_name") or ""))
        return kernel_id

    @functools.wraps(shutdown_kernel)
    async def shut(kernel_id: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await shutdown_kernel(kernel_id, *args, **kwargs)
        finally:
            recorder.kernel_ended(str(kernel_id))

    manager.start_kernel = started
    manager.shutdown_kernel = shut
    cleanup_kernels = serverapp.cleanup_kernels

    async def cleanup() -> None:
        try:
            await cleanup_kernels()
        finally:
            recorder.closed()
            pending = last.get("future")
            if pending is not None:
                try:
                    await asyncio.wait_for(asyncio.wrap_future(pending), CLOSE_TIMEOUT)
                except Exception:  # never block the server's exit on metering
                    serverapp.log.warning("shuyun: workspace usage reports still pending at exit were dropped")
            reports.shutdown(wait=False, cancel_futures=True)
            close = getattr(recorder.sink, "close", None)
            if close is not None:
                close()

    serverapp.cleanup_kernels = cleanup
    recorder.opened()
    serverapp.log.info("shuyun: reporting workspace usage to the marketplace API (session %s)", recorder.session_id)
