"""A throwaway PostgreSQL 15 cluster for benchmarks (tests use pytest-postgresql)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("SHUYUN_PG_BIN", "/usr/lib/postgresql/15/bin"))


#: What a deployment sized for a city's log sets (PostgreSQL's defaults suit a laptop): room for
#: a rebuild's writes between checkpoints (each checkpoint makes the next write of every page
#: log the whole page again), and a buffer cache that holds the read models being built.
SERVER_SETTINGS = "-c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=30min"


def _as_user(cmd: list[str]) -> list[str]:
    # pg_ctl and initdb refuse root: map to an unprivileged uid in a user namespace.
    if os.getuid() == 0:
        return ["unshare", "--user", "--map-user=1000", "--map-group=1000", *cmd]
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a cluster on loopback and yield its URL; the data is deleted afterwards."""
    if url := os.environ.get("SHUYUN_BENCH_DATABASE_URL"):
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="shuyun-pg-"))
    os.chmod(root, 0o777)
    data = root / "data"
    port = _free_port()
    subprocess.run(_as_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
                   check=True, capture_output=True)
    subprocess.run(_as_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                             f"-p {port} -k {root} -h 127.0.0.1 -c fsync=on {SERVER_SETTINGS}", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                        "CREATE DATABASE shuyun"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/shuyun"
    finally:
        subprocess.run(_as_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
