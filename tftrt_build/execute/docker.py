"""The Docker executor: stages run in a container of a pinned image, locally or on a GPU host.

The container runs the same stage process (``tftrt_build.execute.runner``) as the local
executor. It gets the stage's inputs read-only and writes only its output folder: with a local
engine through bind mounts, with a remote one (``ssh://user@gpu-host``) by uploading the inputs
before the start and downloading the output after. Either way the result lands in the local
cache exactly as a local build would put it. The image's id is part of every key the executor
touches, so a tag that moves rebuilds. Every container is removed when its stage ends, fails or
is interrupted; containers left by a tftrt-build that was killed are removed by the next run.

Why this module is long: the engine, the image, the probe and a container's whole life (create,
upload, start, stream, wait, collect, remove, and removal on every failure) are one resource
kept in one place; the file transfers are in ``transfer``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
from pathlib import Path, PurePosixPath
from typing import Any

from tftrt_build.config.schema import ExecutorConf, TransferMode
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.task import TAIL_LINES, LogSink, Task, TaskFailed, result_of
from tftrt_build.execute.transfer import IN, IO, OUT, download, fetch_json, lines, upload
from tftrt_build.store.digest import digest_json
from tftrt_build.store.fs import atomic_write_text, process_alive
from tftrt_build.store.tmp import task_dir

log = logging.getLogger(__name__)
LABEL = "tftrt-build.owner"
_ENV = {
    "PYTHONHASHSEED": "0",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
    "HOME": "/tmp",
}
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

    def __init__(self, conf: ExecutorConf, cache_dir: Path | None = None) -> None:
        self.conf = conf
        self.cache_dir = cache_dir
        self.name = f"image {conf.image} on {self.where}"

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
                client = docker.client.DockerClient(base_url=self.conf.host)
            else:
                client = docker.client.from_env()
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
                ["python3", "-c", _PACKAGES], lines.append, gpus=False, mounts=[], archive=None
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

    def run(self, task: Task, sink: LogSink) -> dict[str, Any]:
        title = task.title or task.op
        with task_dir(self.cache_dir, "docker") as tmp:
            io_dir = Path(tmp)
            io_dir.chmod(0o777)
            spec = {
                "op": task.op,
                "params": task.params,
                "inputs": {name: self._inside(name, path) for name, path in task.inputs.items()},
                "output": OUT if task.output else None,
                "result": f"{IO}/result.json",
            }
            (io_dir / "task.json").write_text(json.dumps(spec))
            command = ["python3", "-m", "tftrt_build.execute.runner", f"{IO}/task.json"]
            tail: list[str] = []

            def keep(line: str) -> None:
                tail.append(line)
                del tail[:-TAIL_LINES]
                sink(line)

            if self.transfer is TransferMode.mount:
                mounts = self._mounts(task, io_dir)
                self._run_container(command, keep, gpus=True, mounts=mounts, archive=None)
                result = io_dir / "result.json"
                payload = json.loads(result.read_text()) if result.is_file() else {}
            else:
                archive = upload(task, io_dir)
                payload = self._run_container(
                    command, keep, gpus=True, mounts=[], archive=archive, fetch=task.output
                )
        if not payload:
            raise TaskFailed(f"{title} failed in {self.conf.image}: the stage process died", tail)
        return result_of(payload, task, tail)

    def _inside(self, name: str, path: Path) -> str:
        base = PurePosixPath(IN) / name
        return str(base / path.name) if path.is_file() else str(base)

    def _mounts(self, task: Task, io_dir: Path) -> list[Any]:
        from docker.types import Mount

        mounts = [Mount(IO, str(io_dir), type="bind")]
        for name, path in task.inputs.items():
            # A file is mounted with its folder, so a script can import its neighbours.
            source = path.parent if path.is_file() else path
            mounts.append(Mount(f"{IN}/{name}", str(source.resolve()), type="bind", read_only=True))
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
        archive (copy transfer) the result payload."""
        from docker.errors import APIError
        from requests.exceptions import RequestException

        client, image = self.client, self.image_id
        log.info("container of %s (%s) on %s: %s", self.conf.image, image, self.where, command)
        try:
            container = client.containers.create(
                image,
                command=command,
                user=f"{os.getuid()}:{os.getgid()}",
                environment=_ENV,
                network_mode="none",
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
            for line in lines(container.logs(stream=True, follow=True)):
                sink(line)
            try:
                status = container.wait(timeout=self.conf.timeout_s)
            except RequestException as exc:
                raise StageError(
                    f"the stage did not end within executor.timeout_s={self.conf.timeout_s} s"
                ) from exc
            code = int(status.get("StatusCode", 1))
            if archive is None:
                return code
            payload = fetch_json(container, f"{IO}/result.json")
            if payload.get("ok") and fetch is not None:
                download(container, OUT, fetch)
            return payload
        except BaseException:
            # Ctrl-C or a failure: stop the stage now rather than let it run on.
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


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _quiet() -> contextlib.AbstractContextManager[None]:
    """Cleanup must not hide the error that made it necessary."""
    return contextlib.suppress(Exception)
