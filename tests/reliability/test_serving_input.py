"""Bad serving input, table-driven: refused before any work, naming the key, nothing written.

The serving side of a target (host and image, log rotation, Kubernetes resources and claim,
probes) and of the serving commands. Each ``CASES`` entry composes the config with Hydra's
compose API in this process, as the CLI would, and plans it (the plan is where an image is
judged against the GPUs and the artifacts); it must raise one ``ConfigError`` for the key
named, with the words given, and leave the project exactly as it was (listed and hashed before
and after). ``CONSOLE`` runs the installed commands for the whole line as a user sees it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project, make_project

from tftrt_build.errors import ConfigError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.plan import make_plan
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import Lock

K8S = "target.kind=k8s"
CASES = [
    pytest.param(
        ["target.gpus.count=0"],
        "target.gpus.count",
        "0 GPUs for the GPU image tensorflow/serving:2.17.1-gpu; reserve one, or serve on a "
        "CPU host with tensorflow/serving:2.17.1 (target=compose_cpu)",
        id="gpu-image-without-gpus",
    ),
    pytest.param(
        ["target=compose_cpu", "target.gpus.count=1"],
        "target.gpus.count",
        "tensorflow/serving:2.17.1 is a CPU image, so the GPUs reserved for it would sit idle; "
        "set target.gpus.count: 0 (the built-in compose_cpu target does)",
        id="cpu-image-with-gpus",
    ),
    pytest.param(
        ["target=compose_cpu", "target.gpus.count=null", "target.gpus.device_ids=[0]"],
        "target.gpus.device_ids",
        "is a CPU image, so the GPUs reserved for it would sit idle",
        id="cpu-image-with-device-ids",
    ),
    pytest.param(
        ["target=compose_cpu", "profile=fp16"],
        "target.image",
        "cannot serve demo/fp16: tensorflow/serving:2.17.1 is a CPU image; TF-TRT engines run "
        "only in a -gpu image",
        id="tftrt-on-the-cpu-target",
    ),
    pytest.param(
        ["target.logging.max_size=lots"],
        "target.logging.max_size",
        "'lots' is not a size such as 50m or 1g",
        id="log-size-word",
    ),
    pytest.param(
        ["target.logging.max_size=0m"],
        "target.logging.max_size",
        "'0m' is not a size",
        id="log-size-zero",
    ),
    pytest.param(
        ["target.logging.max_file=0"],
        "target.logging.max_file",
        "must be at least 1",
        id="log-files-zero",
    ),
    pytest.param(
        ["target.logging.driver=syslog"],
        "target.logging.max_size",
        "the syslog driver does not rotate files; set it to null (max_size is for json-file "
        "and local)",
        id="log-rotation-the-driver-ignores",
    ),
    pytest.param(
        ["target.logging.driver=syslog", "target.logging.max_size=null"],
        "target.logging.max_file",
        "the syslog driver does not rotate files",
        id="log-files-the-driver-ignores",
    ),
    pytest.param(
        ["target.logging.driver='Json File'"],
        "target.logging.driver",
        "'Json File' is not a Docker logging driver name",
        id="log-driver-name",
    ),
    pytest.param(
        ["target.health.startup_timeout_s=0"],
        "target.health.startup_timeout_s",
        "must be at least 1",
        id="startup-timeout-zero",
    ),
    pytest.param(
        [K8S, "target.k8s.requests.cpu=lots"],
        "target.k8s.requests.cpu",
        "'lots' is not a Kubernetes quantity such as 500m, 2 or 4Gi",
        id="k8s-cpu-word",
    ),
    pytest.param(
        [K8S, "target.k8s.limits.memory=8GB"],
        "target.k8s.limits.memory",
        "'8GB' is not a Kubernetes quantity",
        id="k8s-memory-unit",
    ),
    pytest.param(
        [K8S, "target.k8s.requests.memory=16Gi"],
        "target.k8s.requests.memory",
        "16Gi is above the limit 8Gi",
        id="k8s-request-above-limit",
    ),
    pytest.param(
        [K8S, "target.k8s.requests.cpu=4", "target.k8s.limits.cpu=2000m"],
        "target.k8s.requests.cpu",
        "4 is above the limit 2000m",
        id="k8s-cpu-request-above-limit",
    ),
    pytest.param(
        [K8S, "target.k8s.volume_size=big"],
        "target.k8s.volume_size",
        "'big' is not a Kubernetes quantity",
        id="k8s-volume-size",
    ),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with the digest of its content ('' for a folder)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = "" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.mark.parametrize(("args", "key", "words"), CASES)
def test_bad_serving_input_is_refused_naming_the_key(  # type: ignore[no-untyped-def]
    compose_request, project: Project, args: list[str], key: str, words: str
) -> None:
    project.root.mkdir(parents=True, exist_ok=True)
    before = snapshot(project.root)
    with pytest.raises(ConfigError) as info:
        request = compose_request(project.root, *args)
        store = Store(project.cache, StatCache(None), readonly=True)
        # No cache folder for the executor: a probe it runs keeps nothing either.
        make_plan(request, store, LocalExecutor(), Lock())
    assert info.value.key == key, str(info.value)
    assert words in str(info.value)
    assert "\n" not in str(info.value)
    assert snapshot(project.root) == before


CONSOLE = [
    pytest.param(
        "tftrt-build",
        ["target.gpus.count=0"],
        "command line: target.gpus.count: 0 GPUs for the GPU image "
        "tensorflow/serving:2.17.1-gpu; reserve one, or serve on a CPU host with "
        "tensorflow/serving:2.17.1 (target=compose_cpu)",
        id="build-gpu-image-without-gpus",
    ),
    pytest.param(
        "tftrt-build",
        [K8S, "target.k8s.access_mode=Sometimes"],
        "command line: target.k8s.access_mode: 'Sometimes' is not one of ReadWriteOnce, "
        "ReadOnlyMany, ReadWriteMany, ReadWriteOncePod",
        id="k8s-access-mode",
    ),
    pytest.param(
        "tftrt-bench",
        ["bench.protocols=[]"],
        "command line: bench.protocols: names no protocol (rest, grpc)",
        id="bench-without-protocols",
    ),
]


@pytest.mark.parametrize(("command", "args", "line"), CONSOLE)
def test_console_line(tmp_path: Path, command: str, args: list[str], line: str) -> None:
    p = make_project(tmp_path / "p")
    before = snapshot(p.root)
    proc = subprocess.run(
        [Path(sys.executable).parent / command, *args],
        cwd=p.root,
        env={**os.environ, "TFTRT_CACHE_DIR": str(p.cache), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert errors == [f"error: {line}"], proc.stderr
    assert "Traceback" not in proc.stderr
    # Only the run's log folder under the cache (Hydra's), nothing in the project itself.
    assert {k for k in snapshot(p.root) if not k.startswith(".tftrt-cache")} == set(before)
