"""The launcher's preparation against a real store (SQLite and PostgreSQL).

No JupyterLab here (tests/e2e/test_workspace.py starts one): this checks what the
launcher decides — which member, which subscriptions, where the secret goes, what a
refusal leaves behind, and that the store's settings reach neither the Jupyter server nor
its kernels. The session recorder reports through the API: tests/client/test_workspace_sessions.py.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from uuid import UUID

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.credentials import ApiClient  # noqa: E402
from domain.errors import InvalidInput, NotFound  # noqa: E402
from domain.parties import UnitNotQualified  # noqa: E402
from marketplace.bootstrap import Marketplace  # noqa: E402
from marketplace.client import load_config  # noqa: E402
from marketplace.workspace import (  # noqa: E402
    NoActiveSubscription,
    copy_template,
    lab_environment,
    prepare_workspace,
    server_config,
    workspace_root,
)
from tests.scenario import Staff, Unit, active_subscription, credit_code, qualified_unit, staff  # noqa: E402

API = "http://127.0.0.1:9"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = tmp_path / "template"
    folder.mkdir()
    (folder / "intro.ipynb").write_text('{"cells": []}')
    (folder / "README.md").write_text("operators only")
    return folder


def world(mp: Marketplace) -> tuple[Staff, Unit, UUID]:
    people = staff(mp)
    unit = qualified_unit(mp, people)
    subscription = active_subscription(mp, people, unit=unit)
    return people, unit, subscription


def test_art23_workspace_gets_a_client_for_the_analyst_with_a_0600_secret(
    marketplace: Marketplace, template: Path
) -> None:
    _, unit, subscription = world(marketplace)
    ws = prepare_workspace(marketplace, unit=str(unit.id), api_url=API + "/", template=template)
    assert ws.member == unit.analyst.user_id  # the default member is the unit's analyst
    client = marketplace.credentials.get(ApiClient, ws.client_id)
    assert client.user_id == unit.analyst.user_id and list(client.subscription_ids) == [subscription]
    assert stat.S_IMODE(ws.secret_file.stat().st_mode) == 0o600
    config = load_config(ws.config_file)
    assert config.api_url == API and config.secret_file == ws.secret_file
    assert marketplace.credentials.authenticate_client(str(ws.client_id), config.secret()).id == ws.client_id
    assert sorted(p.name for p in ws.notebooks.iterdir()) == ["intro.ipynb"]
    assert ws.root == workspace_root(marketplace.config, unit.id, unit.analyst.user_id)


def test_unit_can_be_named_by_credit_code_and_the_member_chosen(marketplace: Marketplace, template: Path) -> None:
    _, unit, _ = world(marketplace)
    ws = prepare_workspace(marketplace, unit=credit_code().lower(), member=unit.admin.user_id, api_url=API,
                           template=template)
    assert ws.unit_id == unit.id and ws.member == unit.admin.user_id


def test_analysts_notebooks_are_never_overwritten(tmp_path: Path, template: Path) -> None:
    target = tmp_path / "ws"
    target.mkdir()
    (target / "intro.ipynb").write_text("my edits")
    assert copy_template(template, target) == []
    assert (target / "intro.ipynb").read_text() == "my edits"


@pytest.mark.parametrize(("unit", "member", "error", "match"), [
    ("91150200MA0NOTREAL", None, NotFound, "no application unit"),
    ("   ", None, InvalidInput, "unit"),
    (None, "someone-else", InvalidInput, "member"),
])
def test_bad_launch_arguments_are_refused_and_change_nothing(
    marketplace: Marketplace, template: Path, unit: str | None, member: str | None,
    error: type[Exception], match: str,
) -> None:
    _, real, _ = world(marketplace)
    before = marketplace.app.recorder.max_notification_id()
    with pytest.raises(error, match=match):
        prepare_workspace(marketplace, unit=unit or str(real.id), member=member, api_url=API, template=template)
    assert marketplace.app.recorder.max_notification_id() == before


def test_art23_unit_without_active_subscription_gets_no_workspace(marketplace: Marketplace, template: Path) -> None:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    before = marketplace.app.recorder.max_notification_id()
    with pytest.raises(NoActiveSubscription):
        prepare_workspace(marketplace, unit=str(unit.id), api_url=API, template=template)
    assert marketplace.app.recorder.max_notification_id() == before


def test_art34_suspended_unit_gets_no_workspace(marketplace: Marketplace, template: Path) -> None:
    people, unit, _ = world(marketplace)
    marketplace.parties.suspend_unit(people.admin, unit.id, reason="suspected resale")
    before = marketplace.app.recorder.max_notification_id()
    with pytest.raises(UnitNotQualified):
        prepare_workspace(marketplace, unit=str(unit.id), api_url=API, template=template)
    assert marketplace.app.recorder.max_notification_id() == before


def test_relaunch_revokes_the_previous_client(marketplace: Marketplace, template: Path) -> None:
    _, unit, _ = world(marketplace)
    first = prepare_workspace(marketplace, unit=str(unit.id), api_url=API, template=template)
    second = prepare_workspace(marketplace, unit=str(unit.id), api_url=API, template=template)
    assert not marketplace.credentials.get(ApiClient, first.client_id).is_active
    assert marketplace.credentials.get(ApiClient, second.client_id).is_active


def test_store_settings_reach_neither_the_server_config_nor_the_kernels(marketplace: Marketplace, template: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, unit, subscription = world(marketplace)
    ws = prepare_workspace(marketplace, unit=str(unit.id), api_url=API, template=template)
    monkeypatch.setenv("SHUYUN_DATA_DIR", "/secret/store")
    monkeypatch.setenv("SHUYUN_DATABASE_URL", "postgresql://u:pw@db/shuyun")
    env = lab_environment(ws)
    assert "SHUYUN_DATA_DIR" not in env and "SHUYUN_DATABASE_URL" not in env
    assert env["SHUYUN_WORKSPACE_CONFIG"] == str(ws.config_file)
    settings = server_config(ws, metering_subscription=subscription)
    # only where the member's API credentials are: no data_dir, no database_url
    assert settings["ShuyunWorkspace"] == {"config_file": str(ws.config_file), "subscription_id": str(subscription),
                                           "workspace": str(ws.root)}
    assert json.dumps(settings)
