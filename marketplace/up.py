"""``shuyun up``: seed the demo on first start, then run every part of the marketplace.

Each long-running part (projection runner, HTTP API, Streamlit app) is its own OS
process, as in production; ``up`` starts the ones this checkout has, prints where they
listen, and stops them all on Ctrl-C or when one of them dies.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from marketplace.config import Config

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Component:
    name: str
    module: str
    argv: tuple[str, ...]
    url: str = ""


def components(config: Config) -> list[Component]:
    api_port = os.environ.get("SHUYUN_API_PORT", "8700")
    ui_port = os.environ.get("SHUYUN_UI_PORT", "8501")
    candidates = [
        Component("projections", "projections.runner",
                  (sys.executable, "-m", "marketplace.cli", "projections", "run")),
        Component("api", "marketplace.api.app",
                  (sys.executable, "-m", "uvicorn", "marketplace.api.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", api_port), f"http://127.0.0.1:{api_port}/docs"),
        Component("storefront", "streamlit_app.Home",
                  (sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app" / "Home.py"),
                   "--server.headless", "true", "--server.fileWatcherType", "none",
                   "--server.address", "127.0.0.1", "--server.port", ui_port,
                   "--browser.gatherUsageStats", "false"), f"http://127.0.0.1:{ui_port}"),
    ]
    return [c for c in candidates if importlib.util.find_spec(c.module) is not None]


def up(config: Config, *, seed: bool = True, scale: float = 1.0) -> int:
    from marketplace.bootstrap import build

    mp = build(config)
    try:
        empty = not mp.app.recorder.max_notification_id()
    finally:
        mp.close()
    if seed and empty:
        from marketplace.demo.seed import seed_demo

        print("seeding the demo marketplace ...", flush=True)
        print(seed_demo(config, scale=scale).describe(), flush=True)
    store = config.database_url or str(config.sqlite_path)
    print(f"store: {store}", flush=True)
    parts = components(config)
    if not parts:
        print("no long-running parts in this checkout yet; the store is ready for the CLI.")
        return 0
    env = dict(os.environ, SHUYUN_DATA_DIR=str(config.data_dir))
    if config.database_url:
        env["SHUYUN_DATABASE_URL"] = config.database_url
    procs = {c.name: subprocess.Popen(list(c.argv), cwd=ROOT, env=env) for c in parts}
    for c in parts:
        print(f"started {c.name}" + (f" at {c.url}" if c.url else ""), flush=True)
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        print(f"stopped because {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
