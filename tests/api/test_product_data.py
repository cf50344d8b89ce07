"""The API's product versions in memory, and their columns narrowed for the wire once (``ProductData.wire``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from marketplace.api.state import ProductData
from marketplace.api.wire import VersionWire
from tests.client.test_sdk_arrow_narrow import hourly


def stored(directory: Path, frame: pl.DataFrame, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(directory / f"{name}.parquet")
    return name


def test_a_version_in_memory_is_narrowed_once_and_counted_against_the_memory_bound(tmp_path: Path) -> None:
    data = ProductData(tmp_path)
    version = stored(tmp_path, hourly(3000), "abc123")
    assert data.wire(version) is None  # not loaded: nothing to narrow
    loaded = data.frame(version)
    assert loaded is not None and isinstance(loaded.frame, pl.DataFrame)
    used = data._used
    wire = data.wire(version)
    assert isinstance(wire, VersionWire) and data.wire(version) is wire and wire.height == 3000
    assert data._used == used + wire.nbytes and 0 < wire.nbytes < loaded.frame.estimated_size()


def test_a_scanned_version_or_one_that_would_not_fit_is_not_narrowed_ahead(tmp_path: Path) -> None:
    frame = hourly(3000)
    small = ProductData(tmp_path, memory_bytes=1)  # every version is scanned from its file
    version = stored(tmp_path, frame, "def456")
    scanned = small.frame(version)
    assert scanned is not None and isinstance(scanned.frame, pl.LazyFrame)
    assert small.wire(version) is None
    size = (tmp_path / f"{version}.parquet").stat().st_size
    tight = ProductData(tmp_path, memory_bytes=size + frame.estimated_size() - 1)  # the version fits, not its wire
    assert isinstance(tight.frame(version).frame, pl.DataFrame)  # type: ignore[union-attr]
    assert tight.wire(version) is None and tight._used == size
