"""Long catch-ups on two cores: a second runner process takes part of the projections.

Why: a rebuild is Python through and through (decode, map, plan, bind rows), one core's
work. Threads cannot share it: SQLite's and psycopg's drivers hold the GIL while they
bind each row of an ``executemany``, so a mapping thread and a writing thread take turns
after every row, and a rebuild of a million events ran slower pipelined over threads
(36 s) than serially (30 s). Handing mapped rows to another process costs as much as
mapping them (pickling row operations, about 6 us an event). What does pay is two whole
runners on disjoint sets of projections: each reads the log on its own connection and
commits its own batches with its own tracking rows, so exactly-once holds exactly as for
any two runners (a projection has one position, moved in the transaction that writes its
rows); they only take turns for SQLite's write lock, a batch holds it for a small part
of its time, and a runner that finds it taken prepares its next batches meanwhile
(``Runner.commit``'s ``waiting``; the other may be building an index, for a second or
more). 200,000 events: 3.8 s on two processes against 6.7 s on one.

The split balances the projections by how many of the coming notifications each one
handles (a sample of the next ``SAMPLE`` notifications' topics), largest first, and gives
the helper the heavier share (see ``partition``). The helper
process dies with the runner (``PR_SET_PDEATHSIG`` on Linux) and stops when told (its
input closes), finishing or rolling back the batch in hand, like any runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from projections.base import Projection, ProjectionError

if TYPE_CHECKING:
    from marketplace.config import Config

#: Notifications whose topics are counted to weigh the projections.
SAMPLE = 20_000


def partition(
    projections: Sequence[Projection], weight: Callable[[Projection], int],
) -> tuple[list[Projection], list[Projection]]:
    """The runner's and the helper's projections: two groups of about equal weight (heaviest first, each to
    the lighter group), the helper's never the lighter one.

    The helper takes the heavier share (on a tie, the group of the second heaviest), so that
    the runner tends to finish first: then, while it waits, it takes on the helper's last
    steps, its checkpoints and deferred indexes (``Runner._join``), which a helper cannot do
    for the runner. Rebuilds of 1M events, alternating: with the heavier share (audit and
    queues) on the helper, faster in 11 of 13 pairs, 11.12 s against 11.31 s on average.
    """
    groups: tuple[list[Projection], list[Projection]] = ([], [])
    totals = [0, 0]
    for projection in sorted(projections, key=weight, reverse=True):
        lighter = 0 if totals[0] <= totals[1] else 1
        groups[lighter].append(projection)
        totals[lighter] += weight(projection)
    return (groups[0], groups[1]) if totals[0] <= totals[1] else (groups[1], groups[0])


def weights(topics: Sequence[str], projections: Sequence[Projection]) -> dict[str, int]:
    """Per projection, how many of ``topics`` (a sample of the log) it handles."""
    counts = Counter(topics)
    return {p.name: sum(n for topic, n in counts.items() if p.handles(topic)) for p in projections}


@dataclass
class Outcome:
    """How the helper's catch-up ended."""

    read: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    #: a ProjectionError's message (raised again by the runner), or a crash's
    error: str | None = None
    refused: bool = False
    #: why the helper could not start (a projection it cannot import, a store it cannot open):
    #: its projections are then caught up by the runner that started it
    unavailable: str | None = None


class HelperRunner:
    """A runner process catching up ``projections`` beside this one; ``wait`` for its outcome."""

    def __init__(
        self, config: Config, projections: Sequence[Projection], *, batch_size: int, upto: int | None,
        raise_errors: bool,
    ) -> None:
        setup = pickle.dumps((config, list(projections), batch_size, upto, raise_errors))
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.projections = list(projections)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(OSError):  # a helper that died at once reports nothing: see ``wait``
            self.process.stdin.write(setup)
            self.process.stdin.flush()
        #: the helper's last committed position (0 until its first batch)
        self.position = 0
        #: how its catch-up ended, once it has (see ``wait``)
        self.outcome: Outcome | None = None
        self._ended = threading.Event()  # its output closed: it has exited (right after saying how it ended)
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        try:
            for line in stdout:
                kind, _, rest = line.decode().strip().partition(" ")
                if kind == "at":
                    self.position = int(rest)
                elif kind == "done":
                    data = json.loads(rest)
                    self.outcome = Outcome(data["read"], data["failed"], data.get("error"), data.get("refused", False))
                elif kind == "unavailable":
                    self.outcome = Outcome(unavailable=rest)
        finally:
            self._ended.set()

    def stop(self) -> None:
        """Ask the helper to stop after the batch in hand."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # it may have ended already
                self.process.stdin.close()

    def wait(
        self, progress: Callable[[int], None] | None = None, poll: float = 0.2, idle: Callable[[], None] | None = None,
    ) -> Outcome:
        """Wait for the helper to finish, calling ``progress(position)`` as it moves and ``idle()`` every ``poll``
        seconds meanwhile."""
        reported = -1
        while self.process.poll() is None:
            if idle is not None:
                idle()
            if progress is not None and self.position != reported:
                reported = self.position
                progress(reported)
            if self._ended.wait(poll):  # woken as soon as the helper exits, not at the next poll
                break
        self.process.wait()
        self._reader.join()
        if progress is not None and self.position != reported:
            progress(self.position)
        self.stop()
        if self.outcome is None:
            self.outcome = Outcome(unavailable=f"the helper runner process ended with code {self.process.returncode}")
        return self.outcome


# -- the helper's side -----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the runner that started it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Catch up the projections named in the set-up on ``stdin``; report on ``stdout``."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the runner died before the request took effect
        return 1
    from projections.runner import Runner

    def say(line: str) -> None:
        stdout.write(line.encode() + b"\n")
        stdout.flush()

    try:
        config, projections, batch_size, upto, raise_errors = pickle.load(stdin)
        runner = Runner.open(config, projections, batch_size=batch_size, process_lag=None)
    except Exception as exc:
        say(f"unavailable {exc!r}")
        return 1
    say("ready")
    stop = threading.Event()

    def watch() -> None:
        # Unbuffered reads (a buffered reader's lock would hold up this process's exit):
        # the end of input means the runner asks us to stop after the batch in hand.
        while os.read(stdin.fileno(), 4096):
            pass
        stop.set()

    threading.Thread(target=watch, daemon=True).start()

    outcome: dict[str, Any] = {"read": 0, "failed": {}}
    try:
        with runner:
            try:
                outcome["read"] = runner.catch_up(
                    upto=upto, raise_errors=raise_errors, stop=stop, progress=lambda at, head: say(f"at {at}"),
                )
            finally:
                outcome["failed"] = {name: why for name, (_, why) in runner.failed.items()}
    except ProjectionError as exc:
        outcome.update(error=str(exc), refused=True)
    except Exception as exc:
        outcome.update(error=repr(exc))
    say("done " + json.dumps(outcome))
    return 0


#: The helper ends with ``os._exit`` once it has said it is done (and closed its runner): the
#: interpreter's orderly exit, a last collection over the heap of a long catch-up and the
#: freeing of its modules, took 0.2 s that the runner waiting for it spent idle.
_MAIN = ("import os, sys; from projections.worker import serve; code = serve(sys.stdin.buffer, sys.stdout.buffer); "
         "sys.stdout.flush(); sys.stderr.flush(); os._exit(code)")
