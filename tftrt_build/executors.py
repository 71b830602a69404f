"""Executors run the stages that need TensorFlow, away from the CLI process.

The CLI never imports TensorFlow: a cached run stays fast, and a TensorRT probe that aborts
(FACTS: SIGABRT in get_loaded_tensorrt_version) cannot take the build down with it. A stage is
a ``Task`` handed to ``python -m tftrt_build.runner`` in a child process; the local executor runs
it on this machine, the Docker executor in a pinned container.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tftrt_build.capabilities import Capabilities
from tftrt_build.digest import digest_json
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.fs import atomic_write_text

LogSink = Callable[[str], None]
# Lines of a failed task's log shown in its error.
TAIL_LINES = 12
# Bump when the runner's handling of a task changes what it writes.
RUNNER_FORMAT = 1
TOOLCHAIN_PACKAGES = ("tensorflow", "keras", "tensorflow-serving-api")
# Environment variables that change what the TensorRT probe finds.
PROBE_ENV = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class Task:
    """One unit of TensorFlow work: an operation, its parameters, inputs and output folder."""

    op: str
    params: dict[str, Any]
    inputs: dict[str, Path] = field(default_factory=dict)
    output: Path | None = None
    # What the operation is called in messages ("export of models/demo.py").
    title: str = ""


class Executor(Protocol):
    name: str

    def identity(self) -> dict[str, str]:
        """What names this executor in cache keys beyond package versions (an image id)."""
        ...

    def toolchain(self) -> dict[str, str]:
        """Versions of what runs the stages; part of every TensorFlow stage's cache key."""
        ...

    def probe(self) -> Capabilities:
        """What this executor can do for TF-TRT (cached; never aborts the caller)."""
        ...

    def run(self, task: Task, log: LogSink) -> dict[str, Any]:
        """Run the task to completion and return its result, or raise StageError."""
        ...


class TaskFailed(StageError):
    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


def package_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in TOOLCHAIN_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def runner_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # Deterministic hashing and ops, quiet TensorFlow start-up chatter.
            "PYTHONHASHSEED": "0",
            "TF_DETERMINISTIC_OPS": "1",
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONUNBUFFERED": "1",
            # The runner exits if this process dies (see runner.die_with_parent).
            "TFTRT_PARENT_PID": str(os.getpid()),
        }
    )
    return env


def result_of(payload: dict[str, Any], task: Task, tail: list[str]) -> dict[str, Any]:
    """Turn the runner's result file into a value or the matching error."""
    if payload.get("ok"):
        return dict(payload.get("result") or {})
    error = payload.get("error") or {}
    message = f"{task.title or task.op} failed: {error.get('message', 'no message')}"
    if error.get("kind") == "capability":
        raise CapabilityError(message)
    raise TaskFailed(message, tail)


class LocalExecutor:
    """Runs tasks in a child Python process on this machine."""

    name = "this machine"

    def __init__(self, python: str | None = None, cache_dir: Path | None = None) -> None:
        self.python = python or sys.executable
        # Probe results are kept here, keyed by what could change them.
        self.cache_dir = cache_dir

    def identity(self) -> dict[str, str]:
        return {}

    def _probe_key(self) -> str:
        def read(path: str) -> str:
            try:
                return Path(path).read_text()
            except OSError:
                return ""

        def stamp(path: str) -> list[int]:
            try:
                st = os.stat(path)
            except OSError:
                return []
            return [st.st_size, st.st_mtime_ns]

        return digest_json(
            {
                "python": os.path.realpath(self.python),
                "packages": self.toolchain(),
                "env": {k: os.environ.get(k, "") for k in PROBE_ENV},
                # A new driver or a newly installed TensorRT changes the answer.
                "driver": read("/proc/driver/nvidia/version"),
                "ld_cache": stamp("/etc/ld.so.cache"),
            }
        )

    @functools.cache  # noqa: B019 - one probe per executor and run
    def probe(self) -> Capabilities:
        path = self.cache_dir / "probes" / f"{self._probe_key()}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                return Capabilities.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # a damaged probe record is simply probed again
        try:
            found = Capabilities.from_dict(
                self.run(Task("probe", {}, title="TensorRT probe"), lambda line: None)
            )
        except StageError as exc:
            # The probe could not run (no TensorFlow, or it crashed): say so, keep nothing.
            return Capabilities("absent", False, None, False, None, error=str(exc))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(found.to_dict(), sort_keys=True))
        return found

    @functools.cache  # noqa: B019 - one executor per run; the probe is worth keeping
    def toolchain(self) -> dict[str, str]:
        if self.python == sys.executable:
            return package_versions()
        # Another interpreter: ask it, by package metadata only (no TensorFlow import).
        code = "import json, tftrt_build.executors as e; print(json.dumps(e.package_versions()))"
        try:
            out = subprocess.run(
                [self.python, "-c", code], capture_output=True, text=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise CapabilityError(
                f"executor.python {self.python} cannot run tftrt_build: {exc}"
            ) from exc
        return dict(json.loads(out))

    def run(self, task: Task, log: LogSink) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="tftrt-task-") as tmp:
            result_file = Path(tmp, "result.json")
            spec = {
                "op": task.op,
                "params": task.params,
                "inputs": {k: str(v) for k, v in task.inputs.items()},
                "output": str(task.output) if task.output else None,
                "result": str(result_file),
            }
            task_file = Path(tmp, "task.json")
            task_file.write_text(json.dumps(spec))
            cmd = [self.python, "-m", "tftrt_build.runner", str(task_file)]
            tail = stream(cmd, runner_env(), log)
            payload = json.loads(result_file.read_text()) if result_file.is_file() else {}
            if not payload:
                raise TaskFailed(f"{task.title or task.op} failed: the stage process died", tail)
            return result_of(payload, task, tail)


def stream(cmd: list[str], env: dict[str, str], log: LogSink) -> list[str]:
    """Run a command, pass each output line to log, return the last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
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
    try:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                line = line.rstrip()
                tail.append(line)
                log(line)
        proc.wait()
    except BaseException:
        # Ctrl-C or any failure here: stop the whole child process group, then re-raise.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    if proc.returncode < 0:
        tail.append(f"(killed by signal {signal.Signals(-proc.returncode).name})")
    return list(tail)
