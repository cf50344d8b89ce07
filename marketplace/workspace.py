"""Analyst workspaces: one JupyterLab per unit member, on licensed products only, under metering.

``shuyun workspace launch --unit UNIT [--member M]`` does what JupyterHub's spawner does
in production (see notebooks/README.md):

1. makes the member's folder ``<data_dir>/workspaces/<unit id>/<member>/`` with
   ``notebooks/`` copied from the project's template (an analyst's edited notebooks
   are never overwritten),
2. issues API credentials for the member through the credentials service, acting as the
   unit's admin (art. 23: the client is bound to the unit and its active
   subscriptions); the secret goes to ``credentials/client_secret`` with mode 0600 and
   ``credentials/workspace.json`` only names it, both outside the notebook root, so no
   notebook ever holds a secret; a relaunch revokes the previous client,
3. starts a real JupyterLab bound to 127.0.0.1 with a random token and our server
   extension (``marketplace.jupyter_ext``), which reports the workspace's opening and
   closing and every kernel session to the API (``POST /v1/workspace/sessions``) with the
   member's own credentials; the API records them as ``workspace_session`` usage (art. 8, 23).

The store's location reaches neither the Jupyter server nor its kernels: the workspace
holds only the member's API credentials, as a JupyterHub single-user server does in
production; notebooks get data through the API and the SDK, never from the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx

from domain.errors import DomainError, InvalidInput, InvalidState, NotFound
from domain.identity import Actor, Role
from domain.licensing import Subscription
from domain.parties import ApplicationUnit
from marketplace.bootstrap import Marketplace
from marketplace.client.config import WorkspaceConfig, load_config, write_config, write_secret
from marketplace.config import Config

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "notebooks"
#: files of the template copied into a workspace (the operators' README, caches stay behind)
TEMPLATE_SUFFIXES = (".ipynb",)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Workspace:
    """A prepared workspace: where its files are and which credentials it carries."""

    unit_id: UUID
    unit_name: str
    member: str
    root: Path
    client_id: UUID
    subscriptions: tuple[UUID, ...]

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def credentials_dir(self) -> Path:
        return self.root / "credentials"

    @property
    def config_file(self) -> Path:
        return self.credentials_dir / "workspace.json"

    @property
    def secret_file(self) -> Path:
        return self.credentials_dir / "client_secret"

    @property
    def jupyter_dir(self) -> Path:
        return self.root / "jupyter"


def workspace_root(config: Config, unit_id: UUID, member: str) -> Path:
    return config.data_dir / "workspaces" / str(unit_id) / _SAFE.sub("_", member)


def resolve_unit(mp: Marketplace, unit: str) -> ApplicationUnit:
    """A unit by id or by its unified social credit code (the natural key)."""
    text = unit.strip()
    if not text:
        raise InvalidInput("unit", "is required (a unit id or its credit code)")
    try:
        key = UUID(text)
    except ValueError:
        key = ApplicationUnit.create_id(text.upper())
    try:
        return mp.parties.get(ApplicationUnit, key)
    except NotFound:
        raise NotFound(f"no application unit {text!r} (give its id or credit code)", unit=text) from None


def choose_member(unit: ApplicationUnit, member: str | None) -> str:
    """The named member, else the unit's first analyst (its first admin if it has none)."""
    if member:
        if unit.role_of(member) not in (Role.UNIT_ADMIN, Role.UNIT_ANALYST):
            raise InvalidInput("member", f"{member!r} is not a member of unit {unit.name!r}", unit=unit.id)
        return member
    analysts = sorted(u for u, r in unit.members.items() if r is Role.UNIT_ANALYST)
    admins = sorted(u for u, r in unit.members.items() if r is Role.UNIT_ADMIN)
    return (analysts or admins)[0]


def unit_admin(unit: ApplicationUnit) -> Actor:
    """The unit admin on whose behalf the launcher issues the member's credentials."""
    admins = sorted(u for u, r in unit.members.items() if r is Role.UNIT_ADMIN)
    if not admins:
        raise InvalidState(f"unit {unit.name!r} has no admin to issue credentials", unit=unit.id)
    return Actor(admins[0], Role.UNIT_ADMIN, unit_id=unit.id)


def prepare_workspace(
    mp: Marketplace, *, unit: str, member: str | None = None, api_url: str, template: Path = TEMPLATE
) -> Workspace:
    """Create (or refresh) the member's workspace folder and issue its API credentials."""
    found = resolve_unit(mp, unit)
    found.check_qualified()
    who = choose_member(found, member)
    admin = unit_admin(found)
    active = [s for s in found.subscription_ids if mp.licensing.get(Subscription, s).is_active]
    if not active:
        raise NoActiveSubscription(
            f"unit {found.name!r} has no active subscription: a workspace would have nothing to work on",
            unit=found.id,
        )
    root = workspace_root(mp.config, found.id, who)
    previous = _previous_client(root / "credentials" / "workspace.json")
    issued = mp.credentials.issue_client(
        admin, unit_id=found.id, user_id=who, label=f"JupyterLab workspace of {who}", subscription_ids=active
    )
    if previous is not None and previous != issued.client_id:
        # already revoked, or issued by an earlier store: then there is nothing left to revoke
        with contextlib.suppress(DomainError):
            mp.credentials.revoke_client(admin, previous, reason="workspace relaunched with new credentials")
    ws = Workspace(found.id, found.name, who, root, issued.client_id, tuple(active))
    ws.notebooks.mkdir(parents=True, exist_ok=True)
    copy_template(template, ws.notebooks)
    write_secret(ws.secret_file, issued.client_secret)
    os.chmod(ws.credentials_dir, 0o700)
    write_config(ws.config_file, WorkspaceConfig(
        api_url=api_url.rstrip("/"), client_id=str(issued.client_id), secret_file=ws.secret_file,
        unit_id=str(found.id), member=who, subscriptions=tuple(str(s) for s in active),
    ))
    return ws


def copy_template(template: Path, target: Path) -> list[Path]:
    """Copy the template's notebooks and notes; never overwrite what the analyst has changed."""
    copied: list[Path] = []
    if not template.is_dir():
        return copied
    for path in sorted(template.iterdir()):
        if path.is_file() and path.suffix in TEMPLATE_SUFFIXES and not (target / path.name).exists():
            shutil.copy2(path, target / path.name)
            copied.append(target / path.name)
    return copied


def _previous_client(config_file: Path) -> UUID | None:
    try:
        return UUID(load_config(config_file).client_id)
    except Exception:  # no previous workspace, or an unreadable one: nothing to revoke
        return None


# -- JupyterLab ---------------------------------------------------------------------------------


@dataclass
class RunningLab:
    """A JupyterLab process serving one workspace."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    workspace: Workspace
    log_file: Path

    @property
    def lab_url(self) -> str:
        return f"{self.url}/lab?token={self.token}"

    def stop(self, timeout: float = 30.0) -> int:
        """Stop gracefully (SIGTERM: the extension records the close), then hard if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_config(ws: Workspace, *, metering_subscription: UUID) -> dict[str, object]:
    """The Jupyter server's config: our extension on, and where it finds the API credentials to report with.

    No store settings: the extension reports through the API, like the notebooks.
    """
    return {
        "ServerApp": {"jpserver_extensions": {"marketplace.jupyter_ext": True}},
        "ShuyunWorkspace": {
            "config_file": str(ws.config_file),
            "subscription_id": str(metering_subscription),
            "workspace": str(ws.root),
        },
    }


def lab_environment(ws: Workspace) -> dict[str, str]:
    """The server's (and so the kernels') environment: the SDK's config, no store settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUYUN_") and not k.startswith("JUPYTER")}
    home = ws.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        JUPYTER_PLATFORM_DIRS="1",
        JUPYTER_CONFIG_DIR=str(ws.jupyter_dir / "config"),
        JUPYTER_DATA_DIR=str(ws.jupyter_dir / "data"),
        JUPYTER_RUNTIME_DIR=str(ws.jupyter_dir / "runtime"),
        IPYTHONDIR=str(ws.jupyter_dir / "ipython"),
        SHUYUN_WORKSPACE_CONFIG=str(ws.config_file),
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    return env


def start_lab(
    ws: Workspace, *, port: int | None = None, token: str | None = None, wait: float = 90.0
) -> RunningLab:
    """Start JupyterLab on loopback with a token and wait until its REST API answers."""
    port = port or free_port()
    token = token or secrets.token_hex(24)
    config_dir = ws.jupyter_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ws.jupyter_dir, 0o700)
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps(server_config(ws, metering_subscription=ws.subscriptions[0]), indent=2)
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
        "--port-retries", "0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={ws.notebooks}",
        "--ServerApp.open_browser=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_file = ws.jupyter_dir / "lab.log"
    log = open(log_file, "ab")  # noqa: SIM115 - owned by the process for its lifetime
    process = subprocess.Popen(cmd, cwd=ws.notebooks, env=lab_environment(ws), stdout=log,
                               stderr=subprocess.STDOUT)
    log.close()
    lab = RunningLab(process, f"http://127.0.0.1:{port}", token, ws, log_file)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkspaceFailed(f"JupyterLab exited with {process.returncode}: {_tail(log_file)}")
        try:
            status = httpx.get(f"{lab.url}/api/status", headers={"Authorization": f"token {token}"}, timeout=2)
            if status.status_code == 200:
                return lab
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    lab.stop()
    raise WorkspaceFailed(f"JupyterLab did not answer within {wait:.0f} s: {_tail(log_file)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def launch(
    config: Config, *, unit: str, member: str | None, api_url: str, port: int | None = None
) -> Iterator[RunningLab]:
    """Prepare the workspace and run JupyterLab; yields once it answers, stops it when closed."""
    from marketplace.bootstrap import build

    mp = build(config)
    try:
        ws = prepare_workspace(mp, unit=unit, member=member, api_url=api_url)
    finally:
        mp.close()
    lab = start_lab(ws, port=port)
    try:
        yield lab
    finally:
        lab.stop()


def run_launch(config: Config, *, unit: str, member: str | None, api_url: str, port: int | None = None) -> int:
    """The CLI's ``workspace launch``: print the URL, serve until Ctrl-C or SIGTERM."""
    stopping = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stopping["now"] = True

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for lab in launch(config, unit=unit, member=member, api_url=api_url, port=port):
            ws = lab.workspace
            print(f"workspace of {ws.member} ({ws.unit_name}) at {ws.root}", flush=True)
            print(f"credentials: {ws.config_file} (secret {ws.secret_file}, mode 0600)", flush=True)
            print(f"JupyterLab: {lab.lab_url}", flush=True)
            try:
                while not stopping["now"] and lab.process.poll() is None:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
            print("stopping JupyterLab", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# -- errors -------------------------------------------------------------------------------------


class NoActiveSubscription(InvalidState):
    """A workspace serves licensed products only; without an active subscription there is none."""

    code = "no_active_subscription"


class WorkspaceFailed(DomainError):
    """JupyterLab could not be started; the message carries the end of its log."""

    code = "workspace_failed"
    status = 500
