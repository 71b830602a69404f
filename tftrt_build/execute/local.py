"""The local executor: tasks run in a child Python process on this machine.

The child is forked from the build's TensorFlow worker (``execute.worker``, ``executor.worker``
fork, the default on Linux) or started fresh (``process``); either way it runs in its own
process group, with the working directory off its ``sys.path`` (``task.stage_command``). A
stage that outlives ``executor.timeout_s`` is stopped with its whole group (SIGTERM, then
SIGKILL) and reported with its last lines; nothing is cached.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tftrt_build.config.schema import WorkerMode
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.follow import GRACE_S, follow, stream
from tftrt_build.execute.gpus import gpu_slot, host_scope, pool_devices, visible_devices
from tftrt_build.execute.task import (
    LogSink,
    StageLog,
    Task,
    TaskFailed,
    died,
    python_command,
    read_result,
    result_of,
    runner_env,
    stage_command,
)
from tftrt_build.execute.trees import plain_output
from tftrt_build.execute.versions import installed_versions
from tftrt_build.execute.worker import forks, workers
from tftrt_build.store.digest import digest_json
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.tmp import task_dir

log = logging.getLogger(__name__)
# Environment variables that change what the TensorRT probe finds.
PROBE_ENV = ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
# The schema's default for executor.timeout_s.
DEFAULT_TIMEOUT_S = 3600


class LocalExecutor:
    """Runs tasks in a child Python process on this machine."""

    name = "this machine"

    def __init__(
        self,
        python: str | None = None,
        cache_dir: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        log_dir: Path | None = None,
        gpu_pool: object = None,
        worker: WorkerMode = WorkerMode.auto,
    ) -> None:
        self.python = python or sys.executable
        # Probe results are kept here, keyed by what could change them.
        self.cache_dir = cache_dir
        # Longest a stage may run (executor.timeout_s).
        self.timeout_s = timeout_s
        # Where each stage's full output is written (the run folder's stages/); None: nowhere.
        self.log_dir = log_dir
        # executor.gpu_pool: each stage sees one GPU of it, held while it runs (execute.gpus).
        self.gpu_pool = gpu_pool
        # executor.worker: stages forked from one TensorFlow import per build, or fresh.
        self.forks = forks(worker)
        self._stages = 0

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
            return installed_versions(self.cache_dir)
        # Another interpreter: ask it, by package metadata only (no TensorFlow import).
        code = "import json, tftrt_build.execute.task as e; print(json.dumps(e.package_versions()))"
        try:
            out = subprocess.run(
                python_command(self.python, code),
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
                env=runner_env(),
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise CapabilityError(
                f"executor.python {self.python} cannot run tftrt_build: {exc}"
            ) from exc
        return dict(json.loads(out))

    def run(self, task: Task, sink: LogSink) -> dict[str, Any]:
        title = task.title or task.op
        self._stages += 1
        stage_log = StageLog(self.log_dir, self._stages, task.op)
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
            cmd = stage_command(self.python, str(task_file))
            started = time.monotonic()
            how = "forked by the TensorFlow worker" if self.forks else " ".join(cmd)
            log.info("%s: %s (task %s)", title, how, json.dumps(spec))

            def keep(line: str) -> None:
                stage_log.write(line)
                sink(line)

            env = runner_env()
            try:
                with self._gpu(task, sink) as device:
                    if device is not None:
                        env["CUDA_VISIBLE_DEVICES"] = visible_devices(device)
                        log.info("%s: on GPU %s of executor.gpu_pool", title, device)
                    if self.forks:
                        tail, finished = self._fork(str(task_file), env, keep)
                    else:
                        tail, finished = stream(cmd, env, keep, self.timeout_s)
            finally:
                stage_log.close()
            log.info("%s: ended after %.1f s", title, time.monotonic() - started)
            if not finished:
                raise TaskFailed(
                    f"{title} did not end within executor.timeout_s={self.timeout_s:g} s: "
                    "stopped, nothing cached",
                    tail,
                    stage_log.written,
                )
            payload = read_result(result_file, task, list(tail), stage_log.written)
            if not payload:
                raise died(task, "", tail, stage_log.written)
            result = result_of(payload, task, tail, stage_log.written)
        if task.output is not None:
            plain_output(task.output, title)
        return result

    def _fork(self, task_file: str, env: dict[str, str], keep: LogSink) -> tuple[list[str], bool]:
        """Run the task in a child of a worker started with this environment."""
        with workers.lease(self.python, env) as zygote:
            task = zygote.submit(task_file)
            # A task whose worker died under it says so, not just "killed by signal SIGKILL".
            return follow(task, lambda: task.stop(GRACE_S), keep, self.timeout_s, lambda: task.note)

    @contextlib.contextmanager
    def _gpu(self, task: Task, sink: LogSink) -> Iterator[str | None]:
        """The pool's GPU this task runs on, held until it ends; None without a pool.

        The probe is not given one: it counts the GPUs the pool is made of.
        """
        if self.gpu_pool is None or task.op == "probe" or self.cache_dir is None:
            yield None
            return
        devices = pool_devices(self.gpu_pool, lambda: len(self.probe().gpus))
        if not devices:
            yield None  # auto on a machine without a GPU: nothing to share
            return

        def waiting() -> None:
            sink(f"waiting for a free GPU of executor.gpu_pool ({', '.join(devices)})")

        with gpu_slot(self.cache_dir, host_scope(), devices, waiting) as device:
            yield device
