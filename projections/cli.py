"""``python -m projections`` (and ``shuyun projections ...``): run, rebuild, lag, wait, asof.

``main(argv, config)`` is what ``marketplace/cli.py`` delegates to. Exit codes: 0 done,
1 a wait timed out, 2 bad usage or a projection error (printed, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from projections.base import Projection, ProjectionError
from projections.runner import DEFAULT_BATCH_SIZE, PROCESS_LAG, BatchReport, Runner

if TYPE_CHECKING:
    from marketplace.config import Config

console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def load_projection(spec: str) -> list[Projection]:
    """``module:attr`` naming a Projection instance, a Projection class, or a list of either."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ProjectionError(f"--projection: expected module:attribute, got {spec!r}")
    try:
        value: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ProjectionError(f"--projection: cannot load {spec}: {exc}") from exc
    items = value if isinstance(value, list | tuple) else [value]
    loaded = [item() if isinstance(item, type) else item for item in items]
    for item in loaded:
        if not isinstance(item, Projection):
            raise ProjectionError(f"--projection: {spec} is not a Projection")
    return loaded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shuyun projections", description="Read models kept from the event log.")
    parser.add_argument("--projection", action="append", metavar="MODULE:ATTR",
                        help="projections to run instead of the registered ones (repeatable)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="notifications per transaction")
    parser.add_argument("--second-process-after", type=int, default=PROCESS_LAG, metavar="N",
                        help="a catch-up more than N notifications behind shares the projections with a second "
                             "runner process (default %(default)s; -1: never)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="catch up, then follow the log until stopped")
    run.add_argument("--poll", type=float, default=0.5, help="seconds between polls when caught up")
    run.add_argument("--once", action="store_true", help="catch up and exit")
    run.add_argument("--report-every", type=float, default=10.0, help="seconds between lag reports")
    rebuild = sub.add_parser("rebuild", help="rebuild read models from zero")
    rebuild.add_argument("names", nargs="*", help="projections to rebuild (default: all)")
    sub.add_parser("lag", help="how far each projection is behind the log")
    wait = sub.add_parser("wait", help="wait until projections have applied a notification id")
    wait.add_argument("notification_id", type=int)
    wait.add_argument("--timeout", type=float, default=10.0)
    asof = sub.add_parser("asof", help="read models as of a past notification id or time")
    when = asof.add_mutually_exclusive_group(required=True)
    when.add_argument("--id", type=int, dest="upto", help="notification id")
    when.add_argument("--at", help="ISO 8601 time (UTC if no offset)")
    asof.add_argument("names", nargs="*", help="projections (default: all)")
    asof.add_argument("--rows", type=int, default=20, help="rows to show per table")
    asof.add_argument("--parquet", type=Path, help="write each table to DIR/<table>.parquet instead")
    return parser


def main(argv: Sequence[str] | None = None, config: Config | None = None) -> int:
    from marketplace.config import Config

    args = _parser().parse_args(argv)
    config = config or Config.from_env()
    try:
        chosen = None
        if args.projection:
            chosen = [p for spec in args.projection for p in load_projection(spec)]
        if args.command == "asof":
            return _asof(config, args, chosen)
        lag = None if args.second_process_after < 0 else args.second_process_after
        with Runner.open(config, chosen, batch_size=args.batch_size, process_lag=lag) as runner:
            if args.command == "run":
                return _run(runner, args)
            if args.command == "rebuild":
                return _rebuild(runner, args.names or None)
            if args.command == "lag":
                _print_status(runner)
                return 0
            if args.command == "wait":
                reached = runner.wait_for(args.notification_id, args.timeout)
                if not reached:
                    console.print(f"[red]timed out: projections have not reached {args.notification_id}[/red]")
                return 0 if reached else 1
    except ProjectionError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


def _run(runner: Runner, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.once:
        read = runner.catch_up()
        console.print(f"caught up: {read} notifications read; lag {runner.lag()}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    last = [0.0]

    def report(batch: BatchReport) -> None:
        now = time.monotonic()
        if now - last[0] >= args.report_every or batch.end == batch.head:
            last[0] = now
            rate = batch.notifications / batch.seconds if batch.seconds else 0.0
            lost = f", lost to another runner: {', '.join(batch.lost)}" if batch.lost else ""
            console.print(
                f"position {batch.end} of {batch.head} (lag {batch.head - batch.end}); "
                f"{rate:,.0f} notifications/s{lost}"
            )

    console.print(f"following the log: {', '.join(runner.projections)}; lag {runner.lag()}")
    runner.run_forever(args.poll, stop, on_batch=report)
    console.print("stopped")
    return 0


def _rebuild(runner: Runner, names: list[str] | None) -> int:
    head = runner.log.max_id()
    chosen = [p.name for p in runner.select(names)]
    with Progress(
        TextColumn(f"rebuilding {', '.join(chosen)}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("rebuild", total=head or 1)
        started = time.perf_counter()
        read = runner.rebuild(chosen, progress=lambda position, top: bar.update(task, completed=position, total=top))
        bar.update(task, completed=head or 1)
    seconds = time.perf_counter() - started
    console.print(f"rebuilt {', '.join(chosen)}: {read} notifications in {seconds:.1f}s "
                  f"({read / seconds if seconds else 0:,.0f}/s)")
    return 0


def _print_status(runner: Runner) -> None:
    table = RichTable("projection", "version", "position", "head", "lag", "updated")
    for status in runner.status():
        stored = "" if status.stored_version in (None, status.version) else f" (db: {status.stored_version})"
        table.add_row(status.name, f"{status.version}{stored}", str(status.position), str(status.head),
                      str(status.lag), status.updated_at or "never")
    Console().print(table)


def _asof(config: Config, args: argparse.Namespace, chosen: list[Projection] | None) -> int:
    from projections.asof import build_asof

    result = build_asof(config, args.names or None, upto=args.upto, at=args.at, projections=chosen,
                        batch_size=args.batch_size)
    out = Console()
    out.print(f"as of notification {result.notification_id}" + (f" ({result.at.isoformat()})" if result.at else ""))
    for name, frame in result.frames.items():
        if args.parquet:
            args.parquet.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(args.parquet / f"{name}.parquet")
            out.print(f"{name}: {frame.height} rows -> {args.parquet / (name + '.parquet')}")
        else:
            out.print(f"{name}: {frame.height} rows")
            with pl.Config(tbl_cols=-1, tbl_width_chars=160, fmt_str_lengths=40):
                print(frame.head(args.rows))
    return 0
