"""A started stage process, followed: its output line by line, its deadline, its stop.

``stream`` starts a command (a fresh stage process) and follows it; ``follow`` does the same for
any started stage with a Popen's ``stdout``/``wait``/``returncode``, which a task forked by the
TensorFlow worker (``worker.ForkedTask``) also has. A stage past its deadline is stopped with
its whole process group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

from tftrt_build.errors import CapabilityError
from tftrt_build.execute.task import TAIL_LINES, LogSink

# How long a stopped stage gets between SIGTERM and SIGKILL.
GRACE_S = 10


class Running(Protocol):
    """A started stage: a Popen, or a task forked by a worker (``worker.ForkedTask``)."""

    @property
    def stdout(self) -> IO[str] | None: ...

    @property
    def returncode(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def stream(
    cmd: list[str], env: dict[str, str], log: LogSink, timeout_s: float | None = None
) -> tuple[list[str], bool]:
    """Run a command, pass each output line to log; return the last lines and whether it
    ended by itself (False: it ran past timeout_s and its process group was stopped)."""
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise CapabilityError(f"cannot start {cmd[0]}: {exc}") from exc
    return follow(proc, lambda: _stop(proc), log, timeout_s)


def follow(
    proc: Running,
    stop: Callable[[], None],
    log: LogSink,
    timeout_s: float | None = None,
    fate: Callable[[], str] | None = None,
) -> tuple[list[str], bool]:
    """Pass each output line of a started stage to log until it ends or runs past timeout_s
    (then ``stop`` it); return its last lines and whether it ended by itself. A stage killed
    by a signal gets a last line saying so: ``fate``'s, when it has one to say."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    # Lines are read by a thread, so a stage that prints nothing cannot outwait the deadline.
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line.rstrip())
        lines.put(None)

    reader = threading.Thread(target=read, name="stage-log", daemon=True)
    reader.start()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    finished = True
    try:
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                finished = False
                break
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                continue
            if line is None:
                break
            tail.append(line)
            log(line)
        if finished:
            proc.wait()
    except BaseException:
        # Ctrl-C or any failure here: stop the whole child process group, then re-raise.
        stop()
        raise
    if not finished:
        stop()
        reader.join(timeout=GRACE_S)
        return list(tail), False
    if proc.returncode is not None and proc.returncode < 0:
        said = fate() if fate is not None else ""
        tail.append(said or f"(killed by signal {signal.Signals(-proc.returncode).name})")
    return list(tail), True


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the child's process group, SIGKILL after a grace period.

    The group gets the SIGKILL even when its leader went at SIGTERM: a grandchild that
    ignores SIGTERM must not run on.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
