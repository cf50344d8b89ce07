"""``shuyun``: the command line of the marketplace.

Thin by design: each subcommand parses arguments, calls the composition root's services
or a benchmark, and prints. Domain errors are printed with their code and exit 2, so a
script can tell a refused command (2) from a crash (1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from domain.errors import DomainError
from marketplace.config import Config

Handler = Callable[[argparse.Namespace], int]


def _cmd_demo(args: argparse.Namespace) -> int:
    from marketplace.demo.seed import seed_demo

    config = Config.from_env()
    summary = seed_demo(config, scale=args.scale, seed=args.seed, reset=args.reset)
    print(summary.describe())
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from marketplace.up import up

    return up(Config.from_env(), seed=not args.no_seed, scale=args.scale)


def _cmd_status(args: argparse.Namespace) -> int:
    from marketplace.bootstrap import build

    config = Config.from_env()
    mp = build(config)
    try:
        store = config.database_url or str(config.sqlite_path)
        print(f"store: {store}")
        print(f"events: {mp.app.recorder.max_notification_id() or 0}")
    finally:
        mp.close()
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import benchmarks

    names = [args.name] if args.name else benchmarks.available()
    unknown = [n for n in names if n not in benchmarks.REGISTRY]
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}; known: {', '.join(benchmarks.REGISTRY)}", file=sys.stderr)
        return 2
    results = [r for name in names for r in benchmarks.run(name, args.scale)]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            print(f"{r['name']:40} {r['value']:>12.4f} {r['unit']:14} baseline {r['baseline']:.4f} "
                  f"ratio {r['ratio']:.3f} (target {r['target']})")
    return 0


def _cmd_staff_bootstrap(args: argparse.Namespace) -> int:
    """Enrol the first operator admin; the only command the system actor issues."""
    from domain.identity import SYSTEM, Role
    from marketplace.bootstrap import build

    mp = build(Config.from_env())
    try:
        mp.parties.enrol_staff(SYSTEM, user_id=args.user, name=args.name, roles=[Role.OPERATOR_ADMIN])
    finally:
        mp.close()
    print(f"enrolled {args.user} as operator_admin")
    return 0


def _cmd_trace_leak(args: argparse.Namespace) -> int:
    """Art. 23, 34: name the subscription a leaked result came from, from its watermark."""
    from marketplace.bootstrap import build
    from marketplace.keys import sandbox_secret
    from marketplace.sandbox import read_leak, trace

    config = Config.from_env()
    mp = build(config)
    try:
        notices = mp.app.recorder.select_notifications(
            None, 10_000_000, topics=["domain.licensing:Subscription.Created"])
        candidates = sorted({str(n.originator_id) for n in notices})
    finally:
        mp.close()
    if not candidates:
        print("error: the store holds no subscriptions to trace against", file=sys.stderr)
        return 2
    try:
        frame = read_leak(args.file)
    except (OSError, ValueError) as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    found = trace(frame, candidates, sandbox_secret(config.data_dir))
    report = {
        "subscription_id": found.subscription_id,
        "best_candidate": found.best_candidate,
        "confidence": found.confidence,
        "p_value": found.p_value,
        "matching_marks": found.matches,
        "marks_read": found.observations,
        "candidates": len(candidates),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    elif found.subscription_id:
        print(f"leaked by subscription {found.subscription_id} "
              f"({found.matches}/{found.observations} marks match, p = {found.p_value:.2e})")
    else:
        print(f"no subscription can be named with confidence ({found.observations} marks read; "
              f"best candidate {found.best_candidate}, p = {found.p_value:.2e})")
    return 0 if found.subscription_id else 1


def _cmd_projections(args: argparse.Namespace) -> int:
    from projections.cli import main as projections_main

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return projections_main(rest, Config.from_env())


def _cmd_workspace_launch(args: argparse.Namespace) -> int:
    from marketplace.workspace import run_launch

    return run_launch(Config.from_env(), unit=args.unit, member=args.member, api_url=args.api_url, port=args.port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shuyun", description="Shuyun (数运) public-data operation marketplace")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="seed the store with a deterministic demo marketplace")
    demo.add_argument("--scale", type=float, default=1.0, help="data size multiplier (benchmarks use > 1)")
    demo.add_argument("--seed", type=int, default=2023)
    demo.add_argument("--reset", action="store_true", help="delete the SQLite data directory first")
    demo.set_defaults(handler=_cmd_demo)

    up = sub.add_parser("up", help="start the marketplace (seeding the demo on first start)")
    up.add_argument("--no-seed", action="store_true")
    up.add_argument("--scale", type=float, default=1.0)
    up.set_defaults(handler=_cmd_up)

    status = sub.add_parser("status", help="where the store is and how many events it holds")
    status.set_defaults(handler=_cmd_status)

    bench = sub.add_parser("bench", help="run benchmarks; ratios against a same-process baseline")
    bench.add_argument("name", nargs="?")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--scale", type=float, default=1.0)
    bench.set_defaults(handler=_cmd_bench)

    staff = sub.add_parser("staff", help="operator staff").add_subparsers(dest="staff_command", required=True)
    boot = staff.add_parser("bootstrap", help="enrol the first operator admin")
    boot.add_argument("--user", required=True)
    boot.add_argument("--name", required=True)
    boot.set_defaults(handler=_cmd_staff_bootstrap)

    leak = sub.add_parser("trace-leak", help="name the subscription a leaked result file came from")
    leak.add_argument("file", help="a leaked result: CSV, Parquet, JSON, NDJSON or Arrow")
    leak.add_argument("--json", action="store_true")
    leak.set_defaults(handler=_cmd_trace_leak)

    projections = sub.add_parser(
        "projections", help="read models: run | rebuild [NAME] | status | wait ID | asof ...", add_help=False)
    projections.add_argument("rest", nargs=argparse.REMAINDER)
    projections.set_defaults(handler=_cmd_projections)

    workspace = sub.add_parser("workspace", help="analyst workspaces (JupyterLab)")
    launch = workspace.add_subparsers(dest="workspace_command", required=True).add_parser(
        "launch", help="create a unit member's workspace with API credentials and start JupyterLab")
    launch.add_argument("--unit", required=True, help="unit id or unified social credit code")
    launch.add_argument("--member", help="user id of the member (default: the unit's first analyst)")
    launch.add_argument("--api-url", default=os.environ.get(
        "SHUYUN_API_URL", f"http://127.0.0.1:{os.environ.get('SHUYUN_API_PORT', '8700')}"))
    launch.add_argument("--port", type=int, help="JupyterLab port on 127.0.0.1 (default: a free one)")
    launch.set_defaults(handler=_cmd_workspace_launch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["projections"]:
        # The read-model CLI has its own parser (and --help); hand it everything after the word.
        argv = ["projections", "--", *argv[1:]]
    args = parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DomainError as error:
        print(f"error [{error.code}]: {error.message}", file=sys.stderr)
        return 2
    except ValueError as error:  # configuration errors, e.g. a malformed SHUYUN_DATABASE_URL
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
