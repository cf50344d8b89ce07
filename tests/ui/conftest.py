"""AppTest fixtures: a demo store seeded once per session, copied for each test.

Each test gets its own SQLite data directory (a copy of the seeded template), so a test
that changes the store never affects another, and the app's per-store cached resources
(keyed by the data directory) are never shared between tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from marketplace.bootstrap import build
from marketplace.config import Config
from marketplace.demo.seed import seed_demo

HOME = str(Path(__file__).resolve().parents[2] / "streamlit_app" / "Home.py")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    seed_demo(Config(data_dir=data_dir), scale=0.05)
    return data_dir


@pytest.fixture
def store(demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_template, data_dir)
    monkeypatch.setenv("SHUYUN_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SHUYUN_DATABASE_URL", raising=False)
    return Config(data_dir=data_dir)


def head(config: Config) -> int:
    """The store's last notification id (to prove a refused form changed nothing)."""
    mp = build(config)
    try:
        return mp.app.recorder.max_notification_id() or 0
    finally:
        mp.close()


@pytest.fixture
def app(store: Config) -> Iterator[AppTest]:
    at = AppTest.from_file(HOME, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
