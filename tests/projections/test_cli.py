"""``python -m projections`` / ``shuyun projections``: rebuild, lag, wait, run --once, errors."""

from __future__ import annotations

import pytest
from projection_helpers import populate

from marketplace.bootstrap import Marketplace
from marketplace.config import Config
from projections.base import ProjectionError
from projections.cli import load_projection, main
from projections.db import read_frame
from projections.runner import wait_for_position


def test_cli_rebuild_lag_wait_and_run_once(
    marketplace: Marketplace, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    nid = populate(marketplace.parties, 0, 3)
    assert main(["wait", str(nid), "--timeout", "0.1"], config) == 1  # nothing has run yet
    assert "timed out" in capsys.readouterr().err

    assert main(["rebuild"], config) == 0
    assert "rebuilt audit" in capsys.readouterr().err
    assert read_frame(config, "rm_audit_events").height == nid
    assert main(["wait", str(nid), "--timeout", "1"], config) == 0

    nid = populate(marketplace.parties, 3, 1)
    assert main(["lag"], config) == 0
    assert "audit" in capsys.readouterr().out
    assert main(["--batch-size", "2", "run", "--once"], config) == 0
    assert wait_for_position(config, nid, ["audit"], timeout=0)

    assert main(["--projection", "projection_helpers:MembersProjection", "rebuild", "members"], config) == 0
    assert read_frame(config, "rm_members_members").height > 0


def test_cli_reports_errors_without_a_traceback(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rebuild", "nope"], config) == 2
    assert "no projection named nope" in capsys.readouterr().err
    assert main(["--projection", "no_such_module:X", "lag"], config) == 2
    assert "cannot load no_such_module:X" in capsys.readouterr().err


def test_projection_specs_load_instances_classes_and_lists() -> None:
    assert [p.name for p in load_projection("projection_helpers:ALL")] == ["audit", "counting", "members", "units"]
    assert load_projection("projection_helpers:CountingProjection")[0].name == "counting"
    with pytest.raises(ProjectionError, match="expected module:attribute"):
        load_projection("projection_helpers")
    with pytest.raises(ProjectionError, match="is not a Projection"):
        load_projection("projection_helpers:OPERATOR")
