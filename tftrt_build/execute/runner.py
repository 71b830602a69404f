"""The stage process: runs one TensorFlow task, ``TASK`` a JSON file an executor wrote.

Executors start it with ``task.stage_command`` (``python -s -c ...``, the working directory
dropped from ``sys.path``), not ``python -m``, which would import a project's ``json.py``. The
result (or the error) goes to the file the task names; the log goes to stdout, which the
executor streams. Keep this module free of TensorFlow
imports: operations import it themselves, so a capability probe can run without it.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from tftrt_build.execute.capabilities import CapabilityMissing
from tftrt_build.execute.task import StageMismatch

OPERATIONS = {
    "export": "tftrt_build.tfops.export:run",
    "inspect": "tftrt_build.tfops.inspect:run",
    "probe": "tftrt_build.tfops.probe:run",
    "tftrt": "tftrt_build.tfops.trt:run",
    "warmup": "tftrt_build.tfops.warmup:run",
    "predict": "tftrt_build.tfops.predict:run",
    "identity": "tftrt_build.tfops.identity:run",
}


def die_with_parent(parent: int | None = None) -> None:
    """Exit when the process that started us dies, even by SIGKILL.

    Without this an export or conversion would run on as an orphan and keep writing into a
    staging folder that the next build is about to clean up. ``parent`` is the tftrt-build
    process (``TFTRT_PARENT_PID``) unless given: a task forked by the worker (``zygote``) dies
    with the worker, which dies with tftrt-build.
    """
    if parent is None:
        parent = int(os.environ.get("TFTRT_PARENT_PID", "0"))
    if not parent or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    args = sys.argv[1:] if argv is None else argv
    return run_task(Path(args[0]))


def run_task(task_file: Path) -> int:
    """Run the task a file describes, write its result file; the exit code of the stage."""
    task = json.loads(task_file.read_text())
    payload: dict[str, Any]
    try:
        module_name, func_name = OPERATIONS[task["op"]].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        payload = {"ok": True, "result": func(task)}
    except Exception as exc:
        traceback.print_exc(file=sys.stdout)
        payload = {"ok": False, "error": describe_error(exc)}
    Path(task["result"]).write_text(json.dumps(payload))
    sys.stdout.flush()
    return 0 if payload["ok"] else 1


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The one line that says why a task failed, and what kind of failure it is."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "kind": "capability" if isinstance(exc, CapabilityMissing) else "failure",
        "message": _one_line(exc),
    }
    mismatch = _mismatch(exc)
    if mismatch is not None:
        error.update(kind="config", key=mismatch.key, detail=str(mismatch))
    return error


def _mismatch(exc: BaseException) -> StageMismatch | None:
    """The StageMismatch behind exc: autograph re-raises one from traced code as a
    StagingError, with the original as its context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StageMismatch):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    # TensorFlow's autograph re-raises errors from traced code as "in user code:", the
    # traceback, and the original "ValueError: ..." last: that last line says why.
    if len(lines) > 1 and lines[0] == "in user code:":
        last = lines[-1]
        name = type(exc).__name__
        return last if last.startswith(f"{name}: ") else f"{name}: {last}"
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
