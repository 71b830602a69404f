"""A stage's TensorFlow work as a ``Task``, and the ``Executor`` interface that runs one.

The CLI never imports TensorFlow: a cached run stays fast, and a TensorRT probe that aborts
(FACTS: SIGABRT in get_loaded_tensorrt_version) cannot take the build down with it. A task is
handed to ``python -m tftrt_build.execute.runner`` in a child process; the local executor runs
it on this machine, the Docker executor in a pinned container.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.capabilities import Capabilities

LogSink = Callable[[str], None]
# Lines of a failed task's log shown in its error.
TAIL_LINES = 12
# Bump when the runner's handling of a task changes what it writes.
RUNNER_FORMAT = 1
TOOLCHAIN_PACKAGES = ("tensorflow", "keras", "tensorflow-serving-api")


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
