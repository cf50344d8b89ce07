"""Every notebook in notebooks/ runs in a real Jupyter kernel against a live API with the demo data.

The kernel gets nothing but the workspace's ``SHUYUN_WORKSPACE_CONFIG`` (as a launched
workspace would); the API runs in its own process on loopback. After each run the usage
it caused is read back from the store (the subscription's ledger) and from the API's
own usage view. Then the failure cases: the same notebooks with another unit's
credentials, an expired or suspended subscription, an exhausted privacy budget, each
fail with the specific SDK error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.client.live import (  # noqa: E402
    ADMIN,
    ENERGY,
    EXPIRING,
    MOBILITY,
    RESEARCH,
    SMALL_BUDGET,
    SUSPENDING,
    LiveDemo,
    expire,
    live_demo,
)

NOTEBOOKS = ROOT / "notebooks"
BUS = "01_bus_ridership_by_district_and_hour.ipynb"
POWER = "02_power_use_trends_by_district_and_industry.ipynb"
CLINIC = "03_clinic_visits_by_age_band_differential_privacy.ipynb"
CHART_TYPES = ("application/vnd.vegalite.v5+json", "application/vnd.vegalite.v6+json", "text/html")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    yield from live_demo(tmp_path_factory.mktemp("notebooks-demo"))


@contextlib.contextmanager
def kernel_env(config_file: Path, home: Path) -> Iterator[None]:
    """The environment a launched workspace gives its kernels (and nothing of the store)."""
    saved = dict(os.environ)
    os.environ.update(SHUYUN_WORKSPACE_CONFIG=str(config_file), JUPYTER_PLATFORM_DIRS="1",
                      IPYTHONDIR=str(home / "ipython"), MPLBACKEND="agg")
    for key in ("SHUYUN_DATA_DIR", "SHUYUN_DATABASE_URL"):
        os.environ.pop(key, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(name: str, config_file: Path, workdir: Path) -> nbformat.NotebookNode:
    book: nbformat.NotebookNode = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    with kernel_env(config_file, workdir):
        NotebookClient(book, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    return book


def text_of(book: nbformat.NotebookNode) -> str:
    parts: list[str] = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(str(out["data"].get("text/plain", "")))
                parts.append(str(out["data"].get("text/html", "")))
    return "\n".join(parts)


def charts(book: nbformat.NotebookNode) -> list[dict[str, Any]]:
    found = []
    for cell in book.cells:
        if "alt.Chart" not in cell.source:
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(k in data for k in CHART_TYPES):
                found.append(data)
    return found


def counted_uses(demo: LiveDemo, subscription_id: Any) -> list[Any]:
    return [e for e in demo.ledger_events(subscription_id) if type(e).__name__ == "UseRecorded"]


def refused_uses(demo: LiveDemo, subscription_id: Any) -> list[str]:
    return [e.reason for e in demo.ledger_events(subscription_id) if type(e).__name__ == "UseRefused"]


def query_count(book: nbformat.NotebookNode) -> int:
    """How many sandbox queries the notebook's code sends (each .collect()/.run() is one)."""
    return sum(c.source.count(".collect()") + c.source.count(".run()") for c in book.cells if c.cell_type == "code")


def test_every_notebook_in_the_folder_is_covered() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted([BUS, POWER, CLINIC])


def test_art23_bus_notebook_runs_on_licensed_data_and_is_metered(demo: LiveDemo, tmp_path: Path) -> None:
    ws = demo.workspace("mobility", MOBILITY)
    (subscription,) = demo.unit_subscriptions(MOBILITY)
    before = len(counted_uses(demo, subscription))
    read_before = demo.usage_today(subscription)["queries"]
    book = execute(BUS, ws.config_file, tmp_path)
    text = text_of(book)
    assert "busiest district: 昆都仑区" in text
    assert "morning peak in" in text
    assert len(charts(book)) == 2
    assert "Entitlements of mobility0.analyst" in text
    uses = counted_uses(demo, subscription)[before:]
    assert len(uses) == query_count(book) == 2
    assert all(u.user_id == "mobility0.analyst" and u.kind.value == "query" for u in uses)
    assert json.loads(uses[0].query)["dimensions"] == ["district"]
    assert demo.usage_today(subscription)["queries"] == read_before + 2  # the usage read model saw them


def test_art23_power_notebook_shows_trends_and_small_group_suppression(demo: LiveDemo, tmp_path: Path) -> None:
    ws = demo.workspace("energy", ENERGY)
    (subscription,) = demo.unit_subscriptions(ENERGY)
    before = len(counted_uses(demo, subscription))
    read_before = demo.usage_today(subscription)["queries"]
    book = execute(POWER, ws.config_file, tmp_path)
    text = text_of(book)
    assert "Grade general_2: results only for groups of at least 5 rows." in text
    assert "fastest-growing section:" in text
    assert "groups returned: 0, groups suppressed:" in text  # every one-row group fell under k=5
    assert len(charts(book)) == 2
    uses = counted_uses(demo, subscription)[before:]
    assert len(uses) == query_count(book) == 3
    assert demo.usage_today(subscription)["queries"] == read_before + 3


def test_art35_clinic_notebook_spends_budget_and_shows_refusals(demo: LiveDemo, tmp_path: Path) -> None:
    ws = demo.workspace("research", RESEARCH)
    subscription = demo.subscriptions["research_clinic"]
    before = len(counted_uses(demo, subscription))
    refused_before = len(refused_uses(demo, subscription))
    book = execute(CLINIC, ws.config_file, tmp_path)
    text = text_of(book)
    assert "privacy budget left this month: 3.0" in text
    assert "epsilon spent: 1.0, budget left: 2.0" in text
    assert "refused (personal_field): visits per patient" in text
    assert "refused (personal_field): how many distinct patients" in text
    assert "refused (row_level_not_allowed): the raw visit records" in text
    assert len(charts(book)) == 1
    uses = counted_uses(demo, subscription)[before:]
    assert len(uses) == 1 and uses[0].budget_spent == 1.0
    assert refused_uses(demo, subscription)[refused_before:] == ["policy_violation"] * 3
    today = demo.usage_today(subscription)
    assert today["queries"] >= 1 and today["budget_spent"] >= 1.0 and today["refusals"] >= 3


def failing(book_name: str, config_file: Path, workdir: Path) -> CellExecutionError:
    with pytest.raises(CellExecutionError) as caught:
        execute(book_name, config_file, workdir)
    return caught.value


def test_art23_notebook_with_another_units_credentials_fails_not_entitled(demo: LiveDemo, tmp_path: Path) -> None:
    energy = demo.workspace("energy", ENERGY)  # licensed for power use, not for bus ridership
    error = failing(BUS, energy.config_file, tmp_path)
    assert error.ename == "NotEntitled"
    assert "Bus ridership" in error.evalue


def test_art23_notebook_on_an_expired_subscription_fails_subscription_expired(
    demo: LiveDemo, tmp_path: Path
) -> None:
    ws = demo.workspace("expiring", EXPIRING)
    expire(demo.config, demo.subscriptions["expiring_bus"])
    error = failing(BUS, ws.config_file, tmp_path)
    assert error.ename == "SubscriptionExpired"
    assert "expired" in error.evalue


def test_art34_notebook_on_a_suspended_subscription_fails_subscription_suspended(
    demo: LiveDemo, tmp_path: Path
) -> None:
    ws = demo.workspace("suspending", SUSPENDING)
    demo.mp.licensing.suspend_subscription(ADMIN, demo.subscriptions["suspending_power"],
                                           reason="疑似转售结果，暂停核查 (suspected resale)")
    error = failing(POWER, ws.config_file, tmp_path)
    assert error.ename == "SubscriptionSuspended"


def test_art35_notebook_with_an_exhausted_privacy_budget_fails_budget_exhausted(
    demo: LiveDemo, tmp_path: Path
) -> None:
    ws = demo.workspace("small-budget", SMALL_BUDGET)  # budget 0.5 < epsilon 1.0 per query
    error = failing(CLINIC, ws.config_file, tmp_path)
    assert error.ename == "PrivacyBudgetExhausted"
    assert "privacy budget" in error.evalue
    assert not counted_uses(demo, demo.subscriptions["small_budget_clinic"])
