"""Jupyter server extension: workspace time is metered like any other use (art. 8, 23).

Enabled by the launcher's server config (``jpserver_extensions``). It records, on the
ledger of the workspace's subscription and as the member who works there, usage of kind
``workspace_session``:

* ``workspace_opened`` when the server starts,
* ``kernel_started`` / ``kernel_ended`` (with the seconds it ran) for each kernel,
* ``workspace_closed`` (with the seconds it was open) when the server stops; kernels
  still running then are ended first.

Recording must never take the analyst's workspace down: a refused or failed record is
logged, not raised. It writes through the usage service (the server process is the
platform's; the kernels never see the store settings).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from domain.errors import DomainError
from domain.identity import Actor, Role
from domain.parties import ApplicationUnit
from domain.usage import UsageKind
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config

log = logging.getLogger("shuyun.workspace")


class SessionRecorder:
    """Records a workspace's sessions through the usage service of one store."""

    def __init__(
        self,
        mp: Marketplace,
        *,
        unit_id: UUID,
        member: str,
        subscription_id: UUID,
        workspace: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mp = mp
        self.unit_id = unit_id
        self.member = member
        self.subscription_id = subscription_id
        self.workspace = workspace
        self.clock = clock
        self.session_id = str(uuid4())
        self.opened_at: float | None = None
        self.kernels: dict[str, float] = {}
        self.recorded: list[str] = []

    def _actor(self) -> Actor:
        unit = self.mp.parties.get(ApplicationUnit, self.unit_id)
        role = unit.role_of(self.member) or Role.UNIT_ANALYST
        return Actor(self.member, role, unit_id=self.unit_id)

    def record(self, what: str, **details: Any) -> bool:
        """One ``workspace_session`` use; ``False`` (and a log line) if it could not be recorded."""
        query = {"workspace": what, "session": self.session_id, "path": self.workspace, **details}
        try:
            self.mp.usage.record_use(
                self._actor(), subscription_id=self.subscription_id, kind=UsageKind.WORKSPACE_SESSION,
                product_version="workspace", query=query, fields=[], rows_out=0, budget_spent=0.0,
                use_id=f"ws-{self.session_id}-{len(self.recorded)}-{what}",
            )
        except DomainError as error:
            log.warning("workspace usage %s not recorded: [%s] %s", what, error.code, error.message)
            return False
        except Exception:
            log.exception("workspace usage %s not recorded", what)
            return False
        self.recorded.append(what)
        return True

    def opened(self) -> None:
        self.opened_at = self.clock()
        self.record("workspace_opened", started=datetime.now().astimezone().isoformat())

    def kernel_started(self, kernel_id: str, kernel_name: str = "") -> None:
        self.kernels[kernel_id] = self.clock()
        self.record("kernel_started", kernel_id=kernel_id, kernel_name=kernel_name)

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


def recorder_from_settings(settings: dict[str, Any]) -> SessionRecorder:
    config = Config(data_dir=Path(settings["data_dir"]), database_url=settings.get("database_url") or None)
    return SessionRecorder(
        build(config), unit_id=UUID(settings["unit_id"]), member=settings["member"],
        subscription_id=UUID(settings["subscription_id"]), workspace=settings.get("workspace", ""),
    )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "marketplace.jupyter_ext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    section = serverapp.config.get("ShuyunWorkspace") or {}
    settings = {k: section[k] for k in section}
    if not settings.get("unit_id"):
        serverapp.log.warning("shuyun: no ShuyunWorkspace settings; workspace usage is not recorded")
        return
    recorder = recorder_from_settings(settings)
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
            recorder.mp.close()

    serverapp.cleanup_kernels = cleanup
    recorder.opened()
    serverapp.log.info("shuyun: recording workspace usage of %s on subscription %s", recorder.member,
                       recorder.subscription_id)
