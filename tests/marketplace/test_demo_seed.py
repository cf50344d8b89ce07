"""``shuyun demo`` seeds a marketplace in which every state of the measures' workflows appears."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from domain.demand import DemandApplication, DemandStatus
from domain.licensing import Subscription, SubscriptionStatus
from domain.parties import ApplicationUnit, UnitStatus
from domain.products import DataProduct
from domain.quality import IssueStatus, QualityIssue
from marketplace.bootstrap import build
from marketplace.config import Config
from marketplace.demo.seed import DemoAlreadySeeded, seed_demo


def _aggregates(config: Config) -> dict[str, list[object]]:
    mp = build(config)
    try:
        ids = {n.originator_id for n in mp.app.recorder.select_notifications(1, 100_000)}
        found: dict[str, list[object]] = {}
        for aggregate_id in ids:
            aggregate = mp.app.repository.get(aggregate_id)
            found.setdefault(type(aggregate).__name__, []).append(aggregate)
        return found
    finally:
        mp.close()


def test_demo_covers_every_state(config: Config) -> None:
    summary = seed_demo(config, scale=0.2)
    assert summary.events > 500
    found = _aggregates(config)
    assert len(found["Provider"]) >= 6
    assert len(found["CatalogResource"]) >= 15
    assert len(found["DataProduct"]) >= 10
    assert len(found["ApplicationUnit"]) >= 20
    demand = Counter(a.status for a in found["DemandApplication"] if isinstance(a, DemandApplication))
    assert set(demand) == set(DemandStatus), demand
    subs = Counter(s.status for s in found["Subscription"] if isinstance(s, Subscription))
    assert set(subs) == set(SubscriptionStatus), subs
    units = Counter(u.status for u in found["ApplicationUnit"] if isinstance(u, ApplicationUnit))
    assert {UnitStatus.QUALIFIED, UnitStatus.PENDING_QUALIFICATION, UnitStatus.REJECTED, UnitStatus.SUSPENDED} <= set(
        units)
    issues = Counter(q.status for q in found["QualityIssue"] if isinstance(q, QualityIssue))
    assert set(issues) == set(IssueStatus), issues
    listed = [p for p in found["DataProduct"] if isinstance(p, DataProduct) and p.is_listed]
    assert len(listed) >= 10
    assert found["UsageLedger"] and found["Feedback"] and found["ContributionEvaluation"] and found["DemandPost"]


def test_demo_data_files_are_content_addressed_parquet(sqlite_config: Config) -> None:
    seed_demo(sqlite_config, scale=0.2)
    files = list((sqlite_config.product_dir).rglob("*.parquet"))
    assert len(files) >= 25  # resources and product versions
    import hashlib

    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem


def test_demo_refuses_to_seed_twice_and_changes_nothing(sqlite_config: Config) -> None:
    seed_demo(sqlite_config, scale=0.2)
    mp = build(sqlite_config)
    before = mp.app.recorder.max_notification_id()
    mp.close()
    with pytest.raises(DemoAlreadySeeded, match="--reset"):
        seed_demo(sqlite_config, scale=0.2)
    mp = build(sqlite_config)
    assert mp.app.recorder.max_notification_id() == before
    mp.close()


def test_demo_is_deterministic(tmp_path: Path) -> None:
    first, second = Config(data_dir=tmp_path / "a"), Config(data_dir=tmp_path / "b")
    seed_demo(first, scale=0.2, seed=7)
    seed_demo(second, scale=0.2, seed=7)

    def fingerprint(config: Config) -> list[str]:
        """The story's shape: the sequence of event types (ids of applications etc. are random)."""
        mp = build(config)
        try:
            return [n.topic for n in mp.app.recorder.select_notifications(1, 100_000)]
        finally:
            mp.close()

    assert fingerprint(first) == fingerprint(second)
    assert sorted(p.name for p in first.product_dir.rglob("*.parquet")) == sorted(
        p.name for p in second.product_dir.rglob("*.parquet"))


def test_cli_demo_command_seeds_and_reports(tmp_path: Path) -> None:
    env = {"SHUYUN_DATA_DIR": str(tmp_path / "cli"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "marketplace.cli", "demo", "--scale", "0.1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "demo marketplace seeded" in done.stdout
    again = subprocess.run([sys.executable, "-m", "marketplace.cli", "demo", "--scale", "0.1"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2
    assert "demo_already_seeded" in again.stderr
