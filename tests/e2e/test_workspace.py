"""``shuyun workspace launch`` starts a real JupyterLab whose sessions are metered.

The launcher runs as a subprocess exactly as an operator would run it; the test reads the
printed URL, talks to JupyterLab's REST API with the token (status, contents, a kernel
started and shut down), stops the launcher with SIGTERM and then finds the workspace's
opening, the kernel session and the closing on the unit's usage ledger, as the member.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.usage import UsageKind  # noqa: E402
from marketplace.demo.seed import credit_code  # noqa: E402
from marketplace.workspace import NoActiveSubscription, prepare_workspace, workspace_root  # noqa: E402
from tests.client.live import MOBILITY, LiveDemo, live_demo, unit_id  # noqa: E402

URL = re.compile(r"JupyterLab: (http://127\.0\.0\.1:(\d+))/lab\?token=(\w+)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    yield from live_demo(tmp_path_factory.mktemp("workspace-demo"))


def launch(demo: LiveDemo, unit: str, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ, SHUYUN_DATA_DIR=str(demo.config.data_dir), PYTHONUNBUFFERED="1")
    env.pop("SHUYUN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketplace.cli", "workspace", "launch", "--unit", unit, "--api-url", demo.url,
         *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    return proc, lines


def wait_for_url(proc: subprocess.Popen[str], lines: list[str], timeout: float = 120) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        found = URL.search(line)
        if found:
            return found
    proc.kill()
    raise AssertionError("no JupyterLab URL printed:\n" + "".join(lines))


def workspace_uses(demo: LiveDemo, subscription: Any) -> list[Any]:
    return [e for e in demo.ledger_events(subscription)
            if type(e).__name__ == "UseRecorded" and e.kind is UsageKind.WORKSPACE_SESSION]


def test_art23_launch_serves_jupyterlab_with_token_and_meters_sessions(demo: LiveDemo) -> None:
    (subscription,) = demo.unit_subscriptions(MOBILITY)
    before = len(workspace_uses(demo, subscription))
    read_before = demo.usage_today(subscription)
    proc, lines = launch(demo, credit_code(MOBILITY), "--member", "mobility0.analyst")
    try:
        found = wait_for_url(proc, lines)
        base, token = found.group(1), found.group(3)
        auth = {"Authorization": f"token {token}"}
        with httpx.Client(base_url=base, timeout=60) as lab:
            assert lab.get("/api/status").status_code == 403  # no token, no workspace
            assert lab.get("/api/status", headers=auth).status_code == 200
            listing = lab.get("/api/contents", headers=auth).json()
            names = {item["name"] for item in listing["content"]}
            assert "01_bus_ridership_by_district_and_hour.ipynb" in names
            assert not any("secret" in n or n == "credentials" for n in names)  # the secret is outside the root
            kernel = lab.post("/api/kernels", headers=auth, json={"name": "python3"}).json()
            assert lab.get(f"/api/kernels/{kernel['id']}", headers=auth).status_code == 200
            assert lab.delete(f"/api/kernels/{kernel['id']}", headers=auth).status_code == 204
            lab.post("/api/kernels", headers=auth, json={"name": "python3"}).raise_for_status()  # left running
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    uses = workspace_uses(demo, subscription)[before:]
    steps = [json.loads(u.query)["workspace"] for u in uses]
    assert steps == ["workspace_opened", "kernel_started", "kernel_ended", "kernel_started", "kernel_ended",
                     "workspace_closed"]
    assert all(u.user_id == "mobility0.analyst" for u in uses)
    assert json.loads(uses[-1].query)["seconds"] > 0
    assert len({json.loads(u.query)["session"] for u in uses}) == 1
    read_after = demo.usage_today(subscription)  # in the usage read model too: as time, not as queries
    assert read_after["workspace_events"] == read_before["workspace_events"] + 6
    assert read_after["queries"] == read_before["queries"]


def test_art23_workspace_credentials_are_0600_and_outside_notebooks(demo: LiveDemo) -> None:
    ws = demo.workspace("mobility-files", MOBILITY)
    assert stat.S_IMODE(ws.secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(ws.credentials_dir.stat().st_mode) == 0o700
    secret = ws.secret_file.read_text().strip()
    assert ws.notebooks not in ws.secret_file.parents
    for notebook in ws.notebooks.rglob("*"):
        if notebook.is_file():
            assert secret not in notebook.read_text(errors="ignore")
    assert secret not in ws.config_file.read_text()
    assert workspace_root(demo.config, unit_id(MOBILITY), "mobility0.analyst") == ws.root


def test_art23_relaunch_revokes_the_previous_client(demo: LiveDemo) -> None:
    first = prepare_workspace(demo.mp, unit=credit_code(MOBILITY), member="mobility0.admin", api_url=demo.url)
    second = prepare_workspace(demo.mp, unit=credit_code(MOBILITY), member="mobility0.admin", api_url=demo.url)
    response = httpx.post(f"{demo.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(str(first.client_id), "whatever"), timeout=30)
    assert response.status_code == 401
    from domain.credentials import ApiClient

    assert not demo.mp.credentials.get(ApiClient, first.client_id).is_active
    assert demo.mp.credentials.get(ApiClient, second.client_id).is_active


def test_art23_launch_refuses_a_unit_without_active_subscription(demo: LiveDemo) -> None:
    before = demo.mp.app.recorder.max_notification_id()
    proc, _ = launch(demo, credit_code(11))  # qualified, but holds no subscription
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"error [{NoActiveSubscription.code}]" in out
    assert demo.mp.app.recorder.max_notification_id() == before


def test_launch_refuses_an_unknown_unit_and_a_non_member(demo: LiveDemo) -> None:
    proc, _ = launch(demo, "91150200MA0NOTREAL")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "error [not_found]" in out
    proc, _ = launch(demo, credit_code(MOBILITY), "--member", "energy1.analyst")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "error [invalid_input]" in out and "member" in out
