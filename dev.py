#!/usr/bin/env python3
"""The README's two commands: ``python3 dev.py up`` and ``python3 dev.py test``.

Only Python 3.11 is assumed. Both commands create ``.venv`` from the lock file when it
is missing or stale, so a fresh clone needs nothing else; ``test`` also installs the
system packages the tests use (PostgreSQL 15 server binaries, Chromium) when run as root
on Debian, which is what CI does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".shuyun-lock-sha256"


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)


def ensure_venv() -> None:
    """Install exactly the locked versions; skip when the lock has not changed."""
    digest = hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        _run(sys.executable, "-m", "venv", VENV)
    print("installing locked dependencies (about 2 minutes the first time) ...", flush=True)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", LOCK)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "-e", ".")
    STAMP.write_text(digest)


def ensure_system_packages() -> None:
    _run("bash", ROOT / "scripts" / "install-system-deps.sh")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test"):
        print("usage: python3 dev.py up [shuyun up options] | python3 dev.py test [pytest options]")
        return 2
    ensure_venv()
    if argv[0] == "up":
        return subprocess.call([str(BIN / "shuyun"), "up", *argv[1:]], cwd=ROOT)
    ensure_system_packages()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
