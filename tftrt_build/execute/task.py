"""A stage's TensorFlow work as a ``Task``, and the ``Executor`` interface that runs one.

The CLI never imports TensorFlow: a cached run stays fast, and a TensorRT probe that aborts
(FACTS: SIGABRT in get_loaded_tensorrt_version) cannot take the build down with it. A task is
handed to the stage process (``tftrt_build.execute.runner``) in a child process; the local
executor runs it on this machine, the Docker executor in a pinned container.

The stage process is started isolated from the folder it runs in (``stage_command``): with
``python -m`` the working directory comes first on ``sys.path``, so a ``json.py`` in the
user's project would run inside every stage. What a stage prints goes to a log file of the
run (``StageLog``); a failed stage is one line naming its exception and that file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from tftrt_build.errors import CapabilityError, ConfigError, StageError
from tftrt_build.execute.capabilities import Capabilities

LogSink = Callable[[str], None]
# Lines of a stage's log kept for an error that has no message of its own (a process that
# died, a stage that timed out), or when there is no log file to point at.
TAIL_LINES = 12
# Bump when the runner's handling of a task changes what it writes.
RUNNER_FORMAT = 1
TOOLCHAIN_PACKAGES = ("tensorflow", "keras", "tensorflow-serving-api")
# The record the identity task writes in its output folder and the build reads back.
IDENTITY_FILE = "identity.json"
# Python code run with ``python -s -c``: drop the working directory ('' for -c) from sys.path
# before anything is imported. Not ``-I``: it would also ignore PYTHONHASHSEED, which exports
# need to be byte-stable, and ``-P`` needs Python 3.11 (the GPU image has 3.10).
_ISOLATE = "import sys\nif sys.path and sys.path[0] == '': del sys.path[0]\n"
_RUN_STAGE = "from tftrt_build.execute.runner import main\nsys.exit(main())\n"
# Environment variables the stage process gets from its parent's PYTHON* ones: no
# PYTHONPATH, PYTHONSTARTUP, PYTHONHOME or PYTHONUSERBASE can reach into a stage.
_PYTHON_ENV = {
    # Deterministic hashing (set, ordering of dicts built from sets) for byte-stable exports.
    "PYTHONHASHSEED": "0",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Task:
    """One unit of TensorFlow work: an operation, its parameters, inputs and output folder."""

    op: str
    params: dict[str, Any]
    inputs: dict[str, Path] = field(default_factory=dict)
    output: Path | None = None
    # What the operation is called in messages ("export of models/demo.py").
    title: str = ""
    # Files that must sit beside a file input, at the same relative places: an export
    # script's declared deps. A container gets these and nothing else of the script's folder.
    companions: dict[str, tuple[Path, ...]] = field(default_factory=dict)


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
    """A stage that ran and failed. ``tail`` holds the last log lines the CLI shows: only when
    the message does not say why by itself, or there is no log file to point at."""

    def __init__(self, message: str, tail: list[str], log_file: Path | None = None) -> None:
        self.log_file = log_file
        if log_file is not None:
            message = f"{message} (full log: {_shown(log_file)})"
        super().__init__(message)
        self.tail = tail


class StageMismatch(ValueError):
    """Raised by a stage operation when the model is not what its config declares.

    ``key`` names the config key to fix (``model.outputs``); the executor turns it into a
    ConfigError that the source stage locates in the model's file.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class StageLog:
    """The full output of one stage, as a file of the run folder (``<dir>/<n>-<op>.log``).

    Without a folder (a job that only plans) nothing is written. The file is created with the
    first line, so a stage that prints nothing leaves nothing.
    """

    def __init__(self, folder: Path | None, number: int, op: str) -> None:
        self.path = folder / f"{number:02d}-{op}.log" if folder is not None else None
        self._file: IO[str] | None = None

    def write(self, line: str) -> None:
        if self.path is None:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8", errors="replace")
            self._file.write(line + "\n")
        except OSError:
            # A full disk must not hide the stage's own outcome; the log is a convenience.
            self.path = None

    @property
    def written(self) -> Path | None:
        return self.path if self._file is not None else None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk: the stage's outcome still counts
                self._file.close()


def stage_command(python: str, *args: str) -> list[str]:
    """The command line of the stage process, isolated from the working directory."""
    return [python, "-s", "-c", _ISOLATE + _RUN_STAGE, *args]


def python_command(python: str, code: str) -> list[str]:
    """``python -c code``, isolated from the working directory like a stage."""
    return [python, "-s", "-c", _ISOLATE + code]


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(_PYTHON_ENV)
    env.update(
        {
            # Quiet TensorFlow start-up chatter, deterministic ops.
            "TF_DETERMINISTIC_OPS": "1",
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            # The runner exits if this process dies (see runner.die_with_parent).
            "TFTRT_PARENT_PID": str(os.getpid()),
        }
    )
    return env


def container_env() -> dict[str, str]:
    """The environment of a stage container: only what the stage needs, nothing of ours."""
    return {**_PYTHON_ENV, "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": "/tmp"}


def result_of(
    payload: dict[str, Any], task: Task, tail: list[str], log_file: Path | None = None
) -> dict[str, Any]:
    """Turn the runner's result file into a value or the matching error."""
    if payload.get("ok"):
        return dict(payload.get("result") or {})
    error = payload.get("error") or {}
    message = f"{task.title or task.op} failed: {error.get('message', 'no message')}"
    if error.get("kind") == "capability":
        raise CapabilityError(message)
    if error.get("kind") == "config" and error.get("key"):
        # The model differs from its config: the source stage adds the model's file.
        raise ConfigError(str(error.get("detail") or message), key=str(error["key"]))
    # The exception line says why; the full log is in the file (the tail only without one).
    raise TaskFailed(message, [] if log_file is not None else tail, log_file)


def died(task: Task, where: str, tail: list[str], log_file: Path | None) -> TaskFailed:
    """A stage process that ended without writing its result: its last lines say why."""
    title = task.title or task.op
    return TaskFailed(f"{title} failed{where}: the stage process died", tail, log_file)


def read_result(result_file: Path, task: Task, tail: list[str], log_file: Path | None) -> Any:
    """The stage's result document; a torn one (a full disk) fails the stage with the last
    error line its output shows, not as a bug of tftrt-build."""
    if not result_file.is_file():
        return {}
    try:
        return json.loads(result_file.read_text())
    except (OSError, ValueError):
        errors = [line for line in tail if "Error" in line.split(":", 1)[0]]
        if not errors:
            return {}
        title = task.title or task.op
        error = errors[-1].strip()
        if "[Errno 28]" in error and task.output is not None:
            error += f" (writing {task.output})"  # the step's own line may not name the path
        raise TaskFailed(f"{title} failed: {error}", tail, log_file) from None


def _shown(path: Path) -> str:
    """A log file as messages name it: relative to the working directory where it can be."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)
