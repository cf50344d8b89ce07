"""One marketplace, one projection runner and one read side per process; the command helper.

Pages never decide a rule: they call an application service, show the ``DomainError``
it raises next to the form that caused it, and after a successful command catch the
read models up to the command's notification before re-reading, so the page shows its
own result (catching up in-process is safe: the runner is exactly-once across processes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import streamlit as st

from domain.errors import DomainError, InvalidInput, PermissionDenied
from domain.identity import Actor
from marketplace import access
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from projections.runner import Runner
from streamlit_app.ui.reads import ReadSide

T = TypeVar("T")


@dataclass
class Resources:
    """What every page shares in one process."""

    config: Config
    mp: Marketplace
    runner: Runner
    reads: ReadSide
    lock: threading.Lock = field(default_factory=threading.Lock)

    def catch_up(self, notification_id: int | None = None) -> None:
        """Bring the read models up to ``notification_id`` (default: the head of the log)."""
        with self.lock:
            self.runner.catch_up(upto=notification_id, raise_errors=False)

    def close(self) -> None:
        """Give the store's connections back (a PostgreSQL database cannot be dropped while they are open)."""
        with self.lock:
            self.runner.close()
            self.mp.close()


def _release(resources: Resources) -> None:
    resources.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def _open(data_dir: str, database_url: str | None) -> Resources:
    """Keyed by the store's location so tests (and benchmarks) with different stores never share one."""
    from pathlib import Path

    config = Config(data_dir=Path(data_dir), database_url=database_url)
    mp = build(config)
    runner = Runner.open(config, app=mp.app)
    resources = Resources(config=config, mp=mp, runner=runner, reads=ReadSide(mp, runner))
    resources.catch_up()
    return resources


def close_all() -> None:
    """Close every store this process opened (tests and benchmarks that open one store after another)."""
    _open.clear()


def resources() -> Resources:
    """The process's resources for the store configured by the environment (SHUYUN_DATA_DIR/DATABASE_URL)."""
    config = Config.from_env()
    res = _open(str(config.data_dir), config.database_url)
    res.catch_up()
    return res


def can(actor: Actor | None, permission: str) -> bool:
    """Whether ``actor`` holds ``permission``: the page offers a form only to roles that may send it.

    Asks ``access.require`` itself, so the page and the service read one permission table
    (``access.PERMISSIONS``) and can never disagree. Organisation and state checks stay
    with the service: a shown form may still be refused, and shows why. An unknown
    permission is a typo in a page, not a denial: it raises rather than hide a form forever.
    """
    if permission not in access.PERMISSIONS:
        raise KeyError(f"no permission {permission!r} in marketplace.access.PERMISSIONS")
    if actor is None:
        return False
    try:
        access.require(actor, permission)
    except PermissionDenied:
        return False
    return True


def flash(message: str) -> None:
    """A success message that survives the rerun after a command."""
    st.session_state.setdefault("_flash", []).append(message)


def show_flash() -> None:
    for message in st.session_state.pop("_flash", []):
        st.success(message)


def command(key: str, action: Callable[[], T], *, success: str) -> T | None:
    """Run one service call for the form ``key``.

    On a ``DomainError`` the message (and, for bad input, the field) is shown right here,
    next to the form, and remembered under ``errors[key]`` for tests; the store is
    unchanged because the service refused. On success the read models are caught up
    and the page reruns so every table shows the new state.
    """
    res = resources()
    errors: dict[str, dict[str, Any]] = st.session_state.setdefault("errors", {})
    try:
        result = action()
    except DomainError as error:
        info = {"code": error.code, "message": error.message, "field": getattr(error, "field", None)}
        errors[key] = info
        show_error(error)
        return None
    errors.pop(key, None)
    res.catch_up()
    flash(success)
    st.rerun()
    return result  # pragma: no cover - st.rerun raises


def show_error(error: DomainError) -> None:
    if isinstance(error, InvalidInput):
        problem = error.message.removeprefix(f"{error.field}: ")
        st.error(f"**{error.field}** — {problem}", icon="⚠️")
    else:
        st.error(f"{error.message} ({error.code})", icon="⛔")


def _labels(n: int, fmt: Callable[[int], str]) -> list[str]:
    """Distinct labels for ``n`` items (a repeated label gets a ``#k`` suffix)."""
    seen: dict[str, int] = {}
    out = []
    for i in range(n):
        label = str(fmt(i))
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def pick(label: str, n: int, fmt: Callable[[int], str], *, key: str | None = None, container: Any = st) -> int:
    """A selectbox over ``n`` items shown by label; returns the chosen item's index.

    Options are the labels themselves (not indices behind a ``format_func``), so what the
    person sees is exactly what the widget's state holds.
    """
    labels = _labels(n, fmt)
    choice = container.selectbox(label, labels, key=key)
    return labels.index(choice) if choice in labels else 0


def pick_many(label: str, n: int, fmt: Callable[[int], str], *, key: str | None = None) -> list[int]:
    labels = _labels(n, fmt)
    chosen = st.multiselect(label, labels, key=key)
    return [labels.index(c) for c in chosen]
