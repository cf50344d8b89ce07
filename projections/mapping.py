"""Mapping a slice of the log to row operations: the pure part of a batch.

A batch is read, mapped (here), planned and committed in one transaction with the
tracking positions (the runner). Mapping reads nothing and writes nothing: whatever a
projection's ``apply`` raises is that projection's failure, named with the notification.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from projections.base import ApplyFunction, Codec, Op, Projection, ProjectionError, Recorded
from projections.log import RawNotification

log = logging.getLogger("projections")

#: (projection, the (version, position) the batch was mapped from)
Active = tuple[Projection, tuple[int, int]]


class BatchMapper:
    """Maps notifications to each projection's row operations."""

    def __init__(self, projections: Sequence[Projection], codec: Codec) -> None:
        self.codec = codec
        self._handles: dict[str, dict[str, bool]] = {p.name: {} for p in projections}

    def map(
        self, active: Sequence[Active], rows: Sequence[RawNotification], end: int, raise_errors: bool,
    ) -> tuple[list[tuple[Projection, tuple[int, int], list[Op]]], list[tuple[str, str]]]:
        """Each active projection's row operations for ``rows`` (up to ``end``), and the projections that failed.

        Each notification is wrapped at most once however many projections read it, and
        decoded only if one of them asks for its payload. With ``raise_errors`` the first
        failure raises ``ProjectionError``; otherwise it is returned as ``(name, why)``.
        """
        failures: list[tuple[str, str]] = []

        def failed(projection: Projection, message: str, exc: Exception) -> None:
            if raise_errors:
                raise ProjectionError(message) from exc
            log.error(message)
            failures.append((projection.name, message))

        codec = self.codec
        live = [(projection, stored) for projection, stored in active if stored[1] < end]
        starts = [stored[1] for _, stored in live]
        results: list[list[Op] | None] = [[] for _ in live]
        # topic -> (index in ``live``, mapping function) of the projections that map it: one pass
        # over the batch, each notification wrapped once and offered only to the projections that
        # want it, those that decode last after the others (``Projection.decodes_last``).
        targets: dict[str, list[tuple[int, ApplyFunction]]] = {}
        for row in rows:
            topic = row[3]
            wanted = targets.get(topic)
            if wanted is None:
                wanted = targets[topic] = sorted(
                    ((j, p.mapping_for(topic)) for j, (p, _) in enumerate(live) if self.wants(p, topic)),
                    key=lambda target: live[target[0]][0].decodes_last)
            if not wanted:
                continue
            event = None
            for j, mapping in wanted:
                ops = results[j]
                if ops is None or row[0] <= starts[j]:
                    continue
                if event is None:
                    event = Recorded(row[0], row[1], row[2], topic, row[4], codec)
                try:
                    ops.extend(mapping(event))
                except Exception as exc:
                    projection = live[j][0]
                    failed(projection, f"projection {projection.name} failed mapping notification {row[0]} "
                                       f"({topic}): {exc!r}", exc)
                    results[j] = None
        mapped = [(projection, stored, ops) for (projection, stored), ops in zip(live, results, strict=True)
                  if ops is not None]
        return mapped, failures

    def wants(self, projection: Projection, topic: str) -> bool:
        handles = self._handles[projection.name]
        wanted = handles.get(topic)
        if wanted is None:
            wanted = handles[topic] = bool(projection.handles(topic))
        return wanted
