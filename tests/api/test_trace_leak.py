"""Art. 23, 34: ``shuyun trace-leak FILE`` names the subscription a leaked result came from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.api.conftest import World
from tests.api.test_api_queries import post

BODY = {"dimensions": ["district", "month"], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "consumption_m3"}]}


def _trace(world: World, path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SHUYUN_DATA_DIR=str(world.config.data_dir))
    if world.config.database_url:
        env["SHUYUN_DATABASE_URL"] = world.config.database_url
    return subprocess.run([sys.executable, "-m", "marketplace.cli", "trace-leak", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


def _leak(world: World, client: tuple[object, str], path: Path) -> None:
    response = post(world, world.token(client), world.water3, BODY)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    result = response.json()
    pl.DataFrame(result["rows"], schema=result["columns"], orient="row").write_csv(path)


def test_art23_a_result_leaked_as_csv_names_its_subscription(world: World, tmp_path: Path) -> None:
    for client, subscription in ((world.client_a, world.sub_a3), (world.client_b, world.sub_b3)):
        leaked = tmp_path / f"leak-{subscription}.csv"
        _leak(world, client, leaked)
        done = _trace(world, leaked)
        assert done.returncode == 0, done.stderr
        assert f"leaked by subscription {subscription}" in done.stdout


def test_trace_leak_names_nobody_for_an_unmarked_file(world: World, tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"
    pl.DataFrame({"district": ["青山区"] * 40, "n": [float(i) + 0.123456789 for i in range(40)]}).write_csv(clean)
    done = _trace(world, clean)
    assert done.returncode == 1
    assert "no subscription can be named" in done.stdout


def test_trace_leak_reports_an_unreadable_file(world: World, tmp_path: Path) -> None:
    done = _trace(world, tmp_path / "missing.csv")
    assert done.returncode == 2
    assert "cannot read" in done.stderr
