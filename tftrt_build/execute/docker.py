"""The Docker executor: stages run in a container of a pinned image, locally or on a GPU host.

The container runs the same stage process (``tftrt_build.execute.runner``) as the local
executor. It gets the stage's inputs read-only and writes only its output folder: with a local
engine through bind mounts, with a remote one (``ssh://user@gpu-host``) by uploading the inputs
before the start and downloading the output after. Of a script it gets the script and its
declared deps, never the folder they sit in. It runs without capabilities, with
``no-new-privileges``, without a network, as the caller's uid (``STAGE_UID`` when the caller is
root), and its task folder is 0700. A stage that outlives ``executor.timeout_s`` is stopped
and removed, and reported with its last log lines. Either way the result lands in the local
cache exactly as a local build would put it. The image's id is part of every key the executor
touches, so a tag that moves rebuilds. Every container is removed when its stage ends, fails or
is interrupted; containers left by a tftrt-build that was killed are removed by the next run.

Why this module is long: the engine, the image, the probe and a container's whole life (create,
upload, start, stream under the timeout, wait, collect, remove, and removal on every failure)
are one resource kept in one place, with the lending of folders to the stage's uid; the file
transfers are in ``transfer``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tftrt_build.config.schema import ExecutorConf, TransferMode
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.gpus import gpu_slot, pool_devices
from tftrt_build.execute.task import (
    TAIL_LINES,
    LogSink,
    StageLog,
    Task,
    TaskFailed,
    container_env,
    died,
    python_command,
    result_of,
    stage_command,
)
from tftrt_build.execute.transfer import (
    IO,
    OUT,
    download,
    fetch_json,
    inside,
    layout,
    lines,
    upload,
)
from tftrt_build.execute.trees import plain_output
from tftrt_build.store.digest import digest_json
from tftrt_build.store.fs import atomic_write_text, process_alive
from tftrt_build.store.tmp import task_dir

log = logging.getLogger(__name__)
LABEL = "tftrt-build.owner"
# The uid and gid stages run as when tftrt-build runs as root (CI, a root shell): an
# unprivileged id the image need not know.
STAGE_UID = 10001
# Seconds any one call to the engine may take (create, start, wait for the exit code, copy);
# following a stage's log has no such limit, the stage's executor.timeout_s bounds it.
API_TIMEOUT_S = 120
_PACKAGES = "import json, tftrt_build.execute.task as e; print(json.dumps(e.package_versions()))"


def _needs_paramiko(where: str) -> None:
    """An ssh:// engine needs paramiko, the [ssh] extra: say so in one line.

    The Docker SDK reaches an ssh:// engine through paramiko (not the ssh binary, whose
    connection it leaks): paramiko reads ~/.ssh/config (User, Port, IdentityFile,
    ProxyCommand) and trusts only the host keys in ~/.ssh/known_hosts.
    """
    if not where.startswith("ssh://"):
        return
    try:
        import paramiko  # noqa: F401
    except ImportError as exc:
        raise CapabilityError(
            f"the Docker engine {where} is reached over ssh, which needs paramiko: "
            "pip install 'tftrt-build[ssh]'"
        ) from exc


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DockerExecutor:
    """Runs tasks in containers of ``conf.image`` on the engine ``conf.host`` names."""

    def __init__(
        self, conf: ExecutorConf, cache_dir: Path | None = None, log_dir: Path | None = None
    ) -> None:
        self.conf = conf
        self.cache_dir = cache_dir
        self.name = f"image {conf.image} on {self.where}"
        # Where each stage's full output is written (the run folder's stages/); None: nowhere.
        self.log_dir = log_dir
        self._stages = 0
        # The executor.gpu_pool device the running stage holds (execute.gpus); None: no pool.
        self._device: str | None = None

    @property
    def where(self) -> str:
        return self.conf.host or os.environ.get("DOCKER_HOST") or "the local Docker engine"

    # -- the engine and the image --------------------------------------------------------------

    @functools.cached_property
    def client(self) -> Any:
        import docker.client
        from docker.errors import DockerException

        try:
            _needs_paramiko(self.where)
            if self.conf.host:
                # paramiko carries ssh:// (the [ssh] extra); the ssh binary is not needed.
                client = docker.client.DockerClient(base_url=self.conf.host, timeout=API_TIMEOUT_S)
            else:
                client = docker.client.from_env(timeout=API_TIMEOUT_S)
            client.ping()
        except DockerException as exc:
            raise CapabilityError(
                f"cannot reach the Docker engine at {self.where}: {_first_line(exc)}"
            ) from exc
        self._remove_orphans(client)
        return client

    @functools.cached_property
    def image_id(self) -> str:
        from docker.errors import ImageNotFound

        try:
            return str(self.client.images.get(self.conf.image).id)
        except ImageNotFound as exc:
            raise CapabilityError(
                f"image {self.conf.image} is not on the Docker engine at {self.where}: build it "
                f"there with `docker build -f docker/gpu.Dockerfile -t {self.conf.image} .`, or "
                f"`docker pull` it from your registry"
            ) from exc

    def identity(self) -> dict[str, str]:
        return {"image": self.conf.image, "image_id": self.image_id}

    @property
    def transfer(self) -> TransferMode:
        if self.conf.transfer is not TransferMode.auto:
            return self.conf.transfer
        remote = (self.conf.host or os.environ.get("DOCKER_HOST", "")).startswith(
            ("ssh://", "tcp://", "http")
        )
        return TransferMode.copy if remote else TransferMode.mount

    def _device_requests(self) -> list[Any]:
        import docker

        if self._device is not None:
            return [docker.types.DeviceRequest(device_ids=[self._device], capabilities=[["gpu"]])]
        gpus = self.conf.gpus
        if gpus.device_ids:
            return [
                docker.types.DeviceRequest(device_ids=list(gpus.device_ids), capabilities=[["gpu"]])
            ]
        count = gpus.asked()
        if count == 0:
            return []
        return [
            docker.types.DeviceRequest(
                count=-1 if count == "all" else int(count), capabilities=[["gpu"]]
            )
        ]

    def _remove_orphans(self, client: Any) -> None:
        """Remove containers of tftrt-build processes on this host that are gone."""
        host = socket.gethostname()
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            owner = container.labels.get(LABEL, "")
            name, _, pid = owner.rpartition(":")
            if name == host and pid.isdigit() and not process_alive(int(pid)):
                container.remove(force=True)

    # -- what the image holds --------------------------------------------------------------------

    def _cached(self, kind: str, compute: Any) -> dict[str, Any]:
        path = None
        if self.cache_dir is not None:
            key = digest_json(
                {
                    "image_id": self.image_id,
                    "kind": kind,
                    "gpus": [repr(r) for r in self._device_requests()],
                }
            )
            path = self.cache_dir / "probes" / f"docker-{key[:32]}.json"
            if path.is_file():
                try:
                    return dict(json.loads(path.read_text()))
                except ValueError:
                    pass
        found: dict[str, Any] = compute()
        if path is not None and not found.get("error"):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(found, sort_keys=True))
        return found

    @functools.cache  # noqa: B019 - one executor per run
    def toolchain(self) -> dict[str, str]:
        def versions() -> dict[str, Any]:
            lines: list[str] = []
            code = self._run_container(
                python_command("python3", _PACKAGES),
                lines.append,
                gpus=False,
                mounts=[],
                archive=None,
            )
            if code != 0:
                raise StageError(
                    f"cannot read package versions in {self.conf.image}: {' | '.join(lines[-3:])}"
                )
            return dict(json.loads(lines[-1]))

        return {k: str(v) for k, v in self._cached("packages", versions).items()}

    @functools.cache  # noqa: B019
    def probe(self) -> Capabilities:
        def capabilities() -> dict[str, Any]:
            try:
                return self.run(Task("probe", {}, title="TensorRT probe"), lambda line: None)
            except (StageError, CapabilityError) as exc:
                return Capabilities("unknown", False, None, False, None, error=str(exc)).to_dict()

        return Capabilities.from_dict(self._cached("probe", capabilities))

    # -- running a task --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _gpu(self, task: Task, sink: LogSink) -> Iterator[None]:
        """Hold a GPU of executor.gpu_pool on this engine for the task (not for the probe,
        which counts them: with auto, set executor.gpus.count=all so it sees them all)."""
        if self.conf.gpu_pool is None or task.op == "probe" or self.cache_dir is None:
            yield
            return
        devices = pool_devices(self.conf.gpu_pool, lambda: len(self.probe().gpus))
        if not devices:
            yield
            return

        def waiting() -> None:
            sink(f"waiting for a free GPU of executor.gpu_pool ({', '.join(devices)})")

        with gpu_slot(self.cache_dir, f"docker:{self.where}", devices, waiting) as device:
            self._device = device
            try:
                yield
            finally:
                self._device = None

    def run(self, task: Task, sink: LogSink) -> dict[str, Any]:
        title = task.title or task.op
        self._stages += 1
        stage_log = StageLog(self.log_dir, self._stages, task.op)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

        def keep(line: str) -> None:
            tail.append(line)
            stage_log.write(line)
            sink(line)

        with task_dir(self.cache_dir, "docker") as tmp:
            io_dir = Path(tmp)
            spec = {
                "op": task.op,
                "params": task.params,
                "inputs": {name: inside(task, name) for name in task.inputs},
                "output": OUT if task.output else None,
                "result": f"{IO}/result.json",
            }
            (io_dir / "task.json").write_text(json.dumps(spec))
            command = stage_command("python3", f"{IO}/task.json")
            held = contextlib.ExitStack()
            try:
                held.enter_context(self._gpu(task, sink))
                if self.transfer is TransferMode.mount:
                    with _writable_by_stage(io_dir, task.output):
                        mounts = self._mounts(task, io_dir)
                        self._run_container(command, keep, gpus=True, mounts=mounts, archive=None)
                    result = io_dir / "result.json"
                    payload = json.loads(result.read_text()) if result.is_file() else {}
                else:
                    archive = upload(task, io_dir, stage_user())
                    payload = self._run_container(
                        command, keep, gpus=True, mounts=[], archive=archive, fetch=task.output
                    )
            except StageTimeout as exc:
                raise TaskFailed(
                    f"{title} did not end within executor.timeout_s={exc.seconds:g} s in "
                    f"{self.conf.image}: stopped and removed, nothing cached",
                    list(tail),
                    stage_log.written,
                ) from exc
            finally:
                held.close()
                stage_log.close()
        if not payload:
            raise died(task, f" in {self.conf.image}", list(tail), stage_log.written)
        found = result_of(payload, task, list(tail), stage_log.written)
        if task.output is not None:
            plain_output(task.output, title)
        return found

    def _mounts(self, task: Task, io_dir: Path) -> list[Any]:
        from docker.types import Mount

        mounts = [Mount(IO, str(io_dir), type="bind")]
        # Only what the task lists: a script and its declared deps, not their folder.
        for target, source in layout(task):
            mounts.append(Mount(target, str(source.resolve()), type="bind", read_only=True))
        if task.output is not None:
            mounts.append(Mount(OUT, str(task.output.resolve()), type="bind"))
        return mounts

    def _run_container(
        self,
        command: list[str],
        sink: LogSink,
        *,
        gpus: bool,
        mounts: list[Any],
        archive: bytes | None,
        fetch: Path | None = None,
    ) -> Any:
        """Create, start, stream, wait, collect, remove. Returns the exit code, or with an
        archive (copy transfer) the result payload. Raises StageTimeout past the timeout."""
        from docker.errors import APIError
        from requests.exceptions import RequestException

        client, image = self.client, self.image_id
        log.info("container of %s (%s) on %s: %s", self.conf.image, image, self.where, command)
        uid, gid = stage_user()
        try:
            container = client.containers.create(
                image,
                command=command,
                user=f"{uid}:{gid}",
                environment=container_env(),
                network_mode="none",
                # Nothing a stage does needs a capability or a setuid binary.
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mounts=mounts,
                device_requests=self._device_requests() if gpus else [],
                labels={LABEL: _owner()},
                detach=True,
            )
        except APIError as exc:
            raise CapabilityError(
                f"the Docker engine at {self.where} refused the container: {_first_line(exc)}"
            ) from exc
        except BaseException:
            # Interrupted while the engine was creating it: remove whatever it made.
            self._remove_own(client)
            raise
        try:
            if archive is not None:
                container.put_archive("/", archive)
            try:
                container.start()
            except APIError as exc:
                message = _first_line(exc)
                if "could not select device driver" in message:
                    raise CapabilityError(
                        f"the Docker engine at {self.where} cannot give containers GPUs (the "
                        f"NVIDIA container runtime is missing): {message}"
                    ) from exc
                raise CapabilityError(f"cannot start {self.conf.image}: {message}") from exc
            _follow(container, sink, time.monotonic() + self.conf.timeout_s, self.conf.timeout_s)
            try:
                status = container.wait(timeout=API_TIMEOUT_S)
            except RequestException as exc:
                raise StageError(
                    f"the Docker engine at {self.where} did not report the end of the stage: "
                    f"{_first_line(exc)}"
                ) from exc
            code = int(status.get("StatusCode", 1))
            if archive is None:
                return code
            payload = fetch_json(container, f"{IO}/result.json")
            if payload.get("ok") and fetch is not None:
                download(container, OUT, fetch)
            return payload
        except BaseException:
            # Ctrl-C, a timeout or a failure: stop the stage now rather than let it run on.
            with _quiet():
                container.stop(timeout=5)
            raise
        finally:
            with _quiet():
                container.remove(force=True)
            self._remove_own(client)

    @staticmethod
    def _remove_own(client: Any) -> None:
        """Remove every container this process created that is still there."""
        with _quiet():
            for leftover in client.containers.list(
                all=True, filters={"label": f"{LABEL}={_owner()}"}
            ):
                leftover.remove(force=True)


class StageTimeout(Exception):
    """A container ran past executor.timeout_s (the executor reports it with its log tail)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


def _follow(container: Any, sink: LogSink, deadline: float, seconds: float) -> None:
    """Pass the container's log lines to sink until it exits; raise StageTimeout at deadline.

    The engine's log stream blocks until the container writes or exits (the Docker SDK turns
    the socket timeout off for it), so it is read by a thread and the deadline kept here.
    """
    found: queue.Queue[str | BaseException | None] = queue.Queue()

    def read() -> None:
        try:
            for line in lines(container.logs(stream=True, follow=True)):
                found.put(line)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            found.put(exc)
        found.put(None)

    threading.Thread(target=read, name="container-log", daemon=True).start()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StageTimeout(seconds)
        try:
            item = found.get(timeout=remaining)
        except queue.Empty:
            continue
        if item is None:
            return
        if isinstance(item, BaseException):
            raise StageError(f"lost the stage's log stream: {_first_line(item)}") from item
        sink(item)


def stage_user() -> tuple[int, int]:
    """The uid and gid a stage container runs as: the caller's, unless that is root."""
    uid, gid = os.getuid(), os.getgid()
    return (uid, gid) if uid != 0 else (STAGE_UID, STAGE_UID)


@contextlib.contextmanager
def _writable_by_stage(io_dir: Path, output: Path | None) -> Iterator[None]:
    """The task folder and the output folder, 0700 and owned by the stage's uid while it runs.

    Run as root, stages run as STAGE_UID: the folders are lent to it, and what the stage
    wrote is given back to root afterwards, so no file of the cache belongs to another uid.
    """
    uid, gid = stage_user()
    folders = [io_dir] + ([output] if output is not None else [])
    modes = [f.stat().st_mode & 0o7777 for f in folders]
    lend = (uid, gid) != (os.getuid(), os.getgid())
    for folder in folders:
        if lend:
            os.chown(folder, uid, gid)
        folder.chmod(0o700)
    try:
        yield
    finally:
        for folder, mode in zip(folders, modes, strict=True):
            if lend:
                _give_back(folder)
            folder.chmod(mode)


def _give_back(root: Path) -> None:
    """chown a tree to the caller without following links (a stage may have made some)."""
    me, group = os.getuid(), os.getgid()
    os.chown(root, me, group, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(dirpath, name), me, group, follow_symlinks=False)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _quiet() -> contextlib.AbstractContextManager[None]:
    """Cleanup must not hide the error that made it necessary."""
    return contextlib.suppress(Exception)
