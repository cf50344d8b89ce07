"""Read models: tables beside the event store, kept exactly once by a runner that follows the log.

Use ``Runner.open(config)`` to build and follow the registered projections,
``read_frame(config, "rm_audit_events")`` to read one as a Polars frame, and
``projections.asof`` to build any of them as of a past notification id or time.
"""

from projections.base import (
    BOOL,
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    ColumnType,
    Delete,
    Increment,
    Insert,
    Op,
    Projection,
    ProjectionError,
    Recorded,
    Table,
    Update,
    Upsert,
)
from projections.db import read_frame, scan_frame
from projections.runner import Runner, wait_for_position

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "TEXT",
    "TIMESTAMP",
    "ColumnType",
    "Delete",
    "Increment",
    "Insert",
    "Op",
    "Projection",
    "ProjectionError",
    "Recorded",
    "Runner",
    "Table",
    "Update",
    "Upsert",
    "read_frame",
    "scan_frame",
    "wait_for_position",
]
