"""The local executor: tasks run in a child Python process on this machine."""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.task import (
    TAIL_LINES,
    LogSink,
    Task,
    TaskFailed,
    package_versions,
    result_of,
    runner_env,
)
from tftrt_build.store.digest import digest_json
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.tmp import task_dir

log = logging.getLogger(__name__)
# Environment variables that change what the TensorRT probe finds.
PROBE_ENV = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")


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
        code = "import json, tftrt_build.execute.task as e; print(json.dumps(e.package_versions()))"
        try:
            out = subprocess.run(
                [self.python, "-c", code], capture_output=True, text=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise CapabilityError(
                f"executor.python {self.python} cannot run tftrt_build: {exc}"
            ) from exc
        return dict(json.loads(out))

    def run(self, task: Task, sink: LogSink) -> dict[str, Any]:
        with task_dir(self.cache_dir, "task") as tmp:
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
            cmd = [self.python, "-m", "tftrt_build.execute.runner", str(task_file)]
            started = time.monotonic()
            log.info("%s: %s (task %s)", task.title or task.op, " ".join(cmd), json.dumps(spec))
            tail = stream(cmd, runner_env(), sink)
            log.info("%s: ended after %.1f s", task.title or task.op, time.monotonic() - started)
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
