"""The TensorFlow worker of the local executor, as tftrt-build sees it (``executor.worker``).

``fork`` (the default on Linux): one worker process (``execute.zygote``) per distinct stage
environment imports TensorFlow once, lazily on the first TensorFlow stage, and forks a child per
task; ``process``: a fresh Python per stage (``task.stage_command``), which is what platforms
where fork is not safe with TensorFlow (macOS) get under ``auto``.

Workers are kept per process (``workers``), keyed by interpreter and environment, so every job
of a sweep run in one process shares them; one that is busy (a launcher running jobs in
threads) gets a sibling. The environment is part of the key because TensorFlow reads some of it
once, at import or at the first operation (``CUDA_VISIBLE_DEVICES`` of ``executor.gpu_pool``,
``TF_CPP_MIN_LOG_LEVEL``): a task on another GPU gets a worker started with that GPU.

Failures are the stage's, as with a stage process: a task that crashes, aborts or is killed is
a failed stage and the worker lives on. A worker that died between stages (killed, OOM) is
started again for the next stage, which then runs normally; a worker that dies while a task
runs takes the task with it (the task dies with its worker), and that stage fails with "the
stage process died" and the worker's fate in its last lines: it is not retried, since what
killed the worker may be the task itself, and a retry would double the cost of a stage that
kills its worker each time. Workers end with tftrt-build: closed at exit, and killed by the
kernel if tftrt-build dies first (``runner.die_with_parent``). The kernel ties that to the
thread that started the worker: one started by a thread that has ended is found dead and
started again.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO

from tftrt_build.config.schema import WorkerMode
from tftrt_build.errors import CapabilityError
from tftrt_build.execute.task import python_command

log = logging.getLogger(__name__)
_SERVE = "from tftrt_build.execute.zygote import main\nsys.exit(main())\n"
# How long a worker gets to end after its socket closes, before it is killed.
_CLOSE_S = 5
# The exit code a task reports when its worker died under it: the kernel SIGKILLs it then.
WORKER_DIED = -signal.SIGKILL


def forks(mode: WorkerMode) -> bool:
    """Whether stages run in forked children of a worker (``auto``: on Linux)."""
    if mode is WorkerMode.auto:
        return sys.platform.startswith("linux")
    return mode is WorkerMode.fork


class Zygote:
    """One worker process and the socket it takes tasks on; started again when found dead."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python = python
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.control: socket.socket | None = None
        self.busy = threading.Lock()
        self.starts = 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            cmd = [*python_command(self.python, _SERVE), str(theirs.fileno())]
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                text=True,
                errors="replace",
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        except OSError as exc:
            ours.close()
            raise CapabilityError(f"cannot start {self.python}: {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        self.starts += 1
        log.info("TensorFlow worker %d started (%s)", self.proc.pid, self.python)
        assert self.proc.stdout is not None
        # What the worker itself prints (TensorFlow's import chatter) goes to the run's log.
        threading.Thread(target=_relay, args=(self.proc.stdout, self.proc.pid), daemon=True).start()

    def submit(self, task_file: str) -> ForkedTask:
        """Hand a task to the worker, starting it first if it is not running."""
        if not self.alive():
            if self.proc is not None:
                log.warning(
                    "TensorFlow worker %d ended (%s): starting another",
                    self.proc.pid,
                    _ended(self.proc.returncode),
                )
            self.start()
        assert self.control is not None and self.proc is not None
        read, write = os.pipe()
        handed = True
        try:
            # The task runs where a stage process would: in tftrt-build's working directory now.
            message = json.dumps({"task": task_file, "cwd": os.getcwd()}).encode()
            try:
                socket.send_fds(self.control, [message], [write])
            except OSError:
                # It died since the check above: no task was handed over, so start another.
                log.warning("TensorFlow worker %d gone: starting another", self.proc.pid)
                self.start()
                assert self.control is not None
                try:
                    socket.send_fds(self.control, [message], [write])
                except OSError:
                    handed = False  # that one died at once too: a broken interpreter
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        task = ForkedTask(self, os.fdopen(read, "r", errors="replace"))
        if not handed:
            # The stage fails as a stage process that died at its start does.
            task.returncode = WORKER_DIED
            task.note = f"(the TensorFlow worker process died before its task: {self.ended()})"
        return task

    def ended(self) -> str:
        """How the worker ended, once it has (a socket at EOF: it is about to be reaped)."""
        if self.proc is None:
            return "stopped"
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=_CLOSE_S)
        return _ended(self.proc.returncode)

    def close(self) -> None:
        """Close the socket (the worker then exits) and reap the worker."""
        if self.control is not None:
            self.control.close()
            self.control = None
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=_CLOSE_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()


class ForkedTask:
    """One task in a forked child of a worker, with what ``follow.follow`` needs of a Popen."""

    def __init__(self, zygote: Zygote, stdout: IO[str]) -> None:
        self.zygote = zygote
        self.stdout = stdout
        # The child's pid (the leader of its process group), once the worker says it forked.
        self.child: int | None = None
        self.returncode: int | None = None
        # Why the task ended without an exit code of its own (its worker died).
        self.note = ""

    @property
    def pid(self) -> int:
        return self.child or 0

    def wait(self, timeout: float | None = None) -> int:
        """The child's exit code; raises subprocess.TimeoutExpired like Popen.wait."""
        while self.returncode is None:
            message = self._receive(timeout)
            if message is None:
                self.note = f"(the TensorFlow worker process died: {self.zygote.ended()})"
                self.returncode = WORKER_DIED
            elif "exit" in message:
                self.returncode = int(message["exit"])
            else:
                self.child = int(message["pid"])
        return self.returncode

    def stop(self, grace_s: float) -> None:
        """SIGTERM to the child's group, SIGKILL after grace_s; a worker that has not forked
        the task yet (still importing TensorFlow) is stopped itself, and restarted next time."""
        if self.returncode is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(timeout=0.2)  # the pid may be on its way
        if self.returncode is not None:
            return
        if self.child is None:
            proc = self.zygote.proc
            if proc is not None:
                _kill_group(proc.pid, signal.SIGKILL)
            self.zygote.close()
            self.returncode = WORKER_DIED
            return
        _kill_group(self.child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(timeout=grace_s)
        _kill_group(self.child, signal.SIGKILL)
        self.wait()

    def _receive(self, timeout: float | None) -> dict[str, int] | None:
        control = self.zygote.control
        if control is None:
            return None
        control.settimeout(timeout)
        try:
            data = control.recv(4096)
        except TimeoutError:
            raise subprocess.TimeoutExpired("TensorFlow worker", timeout or 0) from None
        except OSError:
            return None
        finally:
            with contextlib.suppress(OSError):
                control.settimeout(None)
        return dict(json.loads(data)) if data else None


class Workers:
    """The workers of this process, by interpreter and environment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: dict[tuple[str, tuple[tuple[str, str], ...]], list[Zygote]] = {}

    @contextlib.contextmanager
    def lease(self, python: str, env: dict[str, str]) -> Iterator[Zygote]:
        """A free worker for this interpreter and environment, held while the task runs."""
        key = (python, tuple(sorted(env.items())))
        with self._lock:
            zygotes = self._pool.setdefault(key, [])
            free = next((z for z in zygotes if z.busy.acquire(blocking=False)), None)
            if free is None:
                free = Zygote(python, env)
                free.busy.acquire()
                zygotes.append(free)
        try:
            yield free
        finally:
            free.busy.release()

    def forget(self) -> None:
        """In a child forked from this process (a launcher's job): the workers are the
        parent's, not to be used or closed here."""
        self._lock = threading.Lock()
        self._pool = {}

    def all(self) -> list[Zygote]:
        with self._lock:
            return [z for zygotes in self._pool.values() for z in zygotes]

    def close(self) -> None:
        for zygote in self.all():
            zygote.close()


def _relay(stream: IO[str], pid: int) -> None:
    with stream:
        for line in stream:
            log.info("worker %d: %s", pid, line.rstrip())


def _ended(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# The workers of this process: one TensorFlow import per build (and per sweep run in-process).
workers = Workers()
atexit.register(workers.close)
os.register_at_fork(after_in_child=workers.forget)
