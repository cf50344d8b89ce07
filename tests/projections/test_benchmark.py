"""The rebuild benchmark runs on both stores and reports what ``shuyun bench`` expects
(its figures are not asserted here: the machines are shared and noisy)."""

from __future__ import annotations

from benchmarks.projections_rebuild import _history, generate, measure
from marketplace.config import Config
from marketplace.store import open_store


def test_benchmark_generates_the_requested_log_and_reports_rebuild_against_read(config: Config) -> None:
    results = measure(config, "sqlite" if not config.uses_postgres else "postgres", 6_000, batch=2_000)
    names = [r["name"].rsplit("_", 1)[0] for r in results]
    assert names == ["projections_rebuild", "projections_rebuild_vs_read", "projections_rebuild_cpu",
                     "projections_log_reader"]
    for row in results:
        assert set(row) == {"name", "value", "unit", "baseline", "ratio", "target"}
        assert row["value"] > 0 and row["baseline"] > 0
        assert abs(row["ratio"] - row["value"] / row["baseline"]) < 1e-3 * max(1.0, row["ratio"])
    assert results[1]["unit"] == "s" and results[1]["target"] == "<= 3.0"


def test_generated_events_are_real_parties_events_under_fresh_ids(tmp_path: object) -> None:
    from pathlib import Path

    app = open_store(Config(data_dir=Path(str(tmp_path)) / "g"))
    try:
        assert generate(app, 1_234) == 1_234
        notifications = app.recorder.select_notifications(1, 1_234)
        per_unit = len(_history(0).collect_events())  # 11: register, members, qualify, suspend, reinstate
        assert len({n.originator_id for n in notifications}) == -(-1_234 // per_unit)
        assert {n.topic.split(":")[0] for n in notifications} == {"domain.parties"}
        event = app.mapper.to_domain_event(notifications[0])
        assert type(event).__qualname__ == "ApplicationUnit.Registered"
    finally:
        app.close()
