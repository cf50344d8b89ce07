"""Fixtures for the projection tests: runners that are always closed (PostgreSQL drops the
test database only when no connection is left)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from marketplace.config import Config
from projections.base import Projection
from projections.runner import Runner

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))



@pytest.fixture
def open_runner(config: Config) -> Iterator[Callable[..., Runner]]:
    """``open_runner(projections, app=..., batch_size=...)`` on the test's store."""
    runners: list[Runner] = []

    def factory(projections: Sequence[Projection], *, app: Any = None, batch_size: int = 1000) -> Runner:
        runner = Runner.open(config, list(projections), app=app, batch_size=batch_size)
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        runner.close()
