"""Benchmarks, each a module with ``run(scale: float) -> list[Result]``.

Machines here are shared and noisy, so every benchmark reports a ratio against a
baseline run in the same process rather than an absolute time.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any, TypedDict


class Result(TypedDict):
    name: str
    value: float
    unit: str
    baseline: float
    ratio: float
    target: str


#: benchmark name -> module under ``benchmarks``
REGISTRY: dict[str, str] = {
    "command_path": "benchmarks.command_path",
    "projections_rebuild": "benchmarks.projections_rebuild",
    "sandbox_groupby": "benchmarks.sandbox_groupby",
    "api_metering": "benchmarks.api_metering",
    "sdk_arrow": "benchmarks.sdk_arrow",
    "storefront_render": "benchmarks.storefront_render",
}


def available() -> list[str]:
    names = []
    for name, module in REGISTRY.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names


def run(name: str, scale: float) -> list[Result]:
    module: Any = importlib.import_module(REGISTRY[name])
    results: list[Result] = module.run(scale)
    return results


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` timed runs: the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def result(name: str, value: float, unit: str, baseline: float, target: str) -> Result:
    return Result(
        name=name, value=round(value, 6), unit=unit, baseline=round(baseline, 6),
        ratio=round(value / baseline, 4) if baseline else float("inf"), target=target,
    )
