"""The SDK transfer benchmark runs end to end at a small scale: its server, both answer paths and its checks."""

from __future__ import annotations

from benchmarks.sdk_arrow import run


def test_the_sdk_arrow_benchmark_measures_both_paths_and_checks_the_frames() -> None:
    """``run`` asserts every frame it gets (SDK, per-request narrowing, old client) equals the server's; here at
    1,000 rows, so only the plumbing and the report are under test, not the speed."""
    lines = run(0.001)
    results = {r["name"]: r for r in lines}
    assert len(results) == len(lines) == 7  # no name twice
    target = results["sdk_arrow_http_1000_rows_vs_local_read_of_same_stream"]
    assert target["target"] == "<= 3" and target["value"] > 0 and target["baseline"] > 0
    assert results["sdk_arrow_http_1000_rows_narrowed_per_request_vs_local_read_of_same_stream"]["target"] == "info"
    assert [name for name, r in results.items() if r["target"] != "info"] == [target["name"]]
