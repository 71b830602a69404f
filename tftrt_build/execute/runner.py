"""The stage process: ``python -m tftrt_build.execute.runner TASK`` runs one TensorFlow task.

T is a JSON task written by an executor. The result (or the error) goes to the file the task
names; the log goes to stdout, which the executor streams. Keep this module free of TensorFlow
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

OPERATIONS = {
    "export": "tftrt_build.tfops.export:run",
    "inspect": "tftrt_build.tfops.inspect:run",
    "probe": "tftrt_build.tfops.probe:run",
    "tftrt": "tftrt_build.tfops.trt:run",
    "warmup": "tftrt_build.tfops.warmup:run",
    "predict": "tftrt_build.tfops.predict:run",
    "identity": "tftrt_build.tfops.identity:run",
}


def die_with_parent() -> None:
    """Exit when the tftrt-build process that started us dies, even by SIGKILL.

    Without this an export or conversion would run on as an orphan and keep writing into a
    staging folder that the next build is about to clean up.
    """
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
    task = json.loads(Path(args[0]).read_text())
    payload: dict[str, Any]
    try:
        module_name, func_name = OPERATIONS[task["op"]].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        payload = {"ok": True, "result": func(task)}
    except Exception as exc:
        traceback.print_exc(file=sys.stdout)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        payload = {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "kind": "capability" if isinstance(exc, CapabilityMissing) else "failure",
                "message": f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
            },
        }
    Path(task["result"]).write_text(json.dumps(payload))
    sys.stdout.flush()
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
