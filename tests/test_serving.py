"""tftrt-verify, tftrt-bench and tftrt-deploy against the TF Serving test double.

No TF Serving binary exists here; tests/doubles/tfserving.py stands in for it (real TensorFlow
serving the bundle's SavedModels over TF Serving's REST and gRPC interfaces) and misbehaves on
request. tftrt-deploy runs on the real Docker engine with an image that installs the double as
tensorflow_model_server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import TESTS, Project, Result, make_project

pytestmark = pytest.mark.slow
DOUBLE = TESTS / "doubles" / "tfserving.py"
STAND_IN = os.environ.get("TFTRT_STAND_IN_IMAGE", "tftrt-build/tfserving-double:2.17.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Double:
    def __init__(self, bundle: Path, faults: dict[str, Any]) -> None:
        self.rest, self.grpc = free_port(), free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                DOUBLE,
                f"--port={self.grpc}",
                f"--rest_api_port={self.rest}",
                f"--model_config_file={bundle / 'config' / 'models.config'}",
                f"--double_map=/models={bundle / 'models'}",
                f"--double_faults={json.dumps(faults)}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def args(self) -> list[str]:
        return [f"target.ports.rest={self.rest}", f"target.ports.grpc={self.grpc}"]

    def wait(self, model: str = "demo", available: bool = True) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{self.rest}/v1/models/{model}", timeout=5
                )
                if not available:
                    return  # it answers: that is all a misbehaving double has to do
                states = [v["state"] for v in response.json().get("model_version_status", [])]
                if states and all(s == "AVAILABLE" for s in states):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError("the test double did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def double(demo_build: Project) -> Iterator[Callable[..., Double]]:
    started: list[Double] = []

    def start(
        faults: dict[str, Any] | None = None, available: bool = True, bundle: Path | None = None
    ) -> Double:
        d = Double(bundle or demo_build.root / "bundles" / "demo-native", faults or {})
        started.append(d)
        d.wait(available=available)
        return d

    yield start
    for d in started:
        d.stop()


def tool(name: str, p: Project, *args: str) -> Result:
    """Run one of the installed tftrt-* commands in a project."""
    exe = Path(sys.executable).parent / name
    env = {**os.environ, "TFTRT_CACHE_DIR": str(p.cache), "COLUMNS": "200"}
    proc = subprocess.run(
        [exe, *args], cwd=p.root, env=env, capture_output=True, text=True, timeout=900
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def verify(p: Project, *args: str) -> Result:
    return tool("tftrt-verify", p, *args)


def bench(p: Project, *args: str) -> Result:
    return tool("tftrt-bench", p, *args)


def deploy(p: Project, *args: str) -> Result:
    return tool("tftrt-deploy", p, *args)


# -- verify --------------------------------------------------------------------------------------


def test_verify_passes_on_a_correct_server(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    d = double()
    result = verify(demo_build, *d.args())
    assert result.code == 0, result.out + result.err
    for check in ("status", "metadata", "predict (rest)", "predict (grpc)"):
        assert check in result.out
    assert "all 4 checks passed" in result.out


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            {"wrong_numbers": {"model": "demo", "version": 1, "delta": 0.5}},
            "4 checks failed; first: demo 1 predict (rest): output 'probabilities' differs by 0.5",
        ),
        (
            {"malformed": True},
            "GET http://127.0.0.1:{rest}/v1/models/demo/versions/1: HTTP 200 "
            "with a body that is not JSON: '{{not json'",
        ),
        (
            {"http_500": True},
            "GET http://127.0.0.1:{rest}/v1/models/demo/versions/1: HTTP 500: injected failure",
        ),
    ],
)
def test_verify_fails_on_a_bad_server(
    demo_build: Project,
    double,
    faults: dict[str, Any],  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    d = double(faults, available="wrong_numbers" in faults)
    result = verify(demo_build, *d.args())
    assert result.code == 1
    assert message.format(rest=d.rest).replace("4 checks", "") in result.error_line


def test_verify_version_never_available(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    d = double({"never_available": "demo"}, available=False)
    result = verify(demo_build, *d.args())
    assert result.code == 1
    assert result.error_line == "1 of 1 checks failed; first: demo 1 status: LOADING"


def test_verify_unreachable_and_timeout(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    gone = verify(demo_build, f"target.ports.rest={port}")
    assert gone.code == 1
    assert gone.error_line == (
        f"1 of 1 checks failed; first: demo 1 status: GET http://127.0.0.1:"
        f"{port}/v1/models/demo/versions/1: cannot connect (Connection "
        "refused)"
    )
    d = double({"slow_s": 3})
    slow = verify(demo_build, *d.args(), "server.timeout_s=1")
    assert slow.code == 1
    assert "predict (rest): POST http://127.0.0.1:" in slow.error_line
    assert "no answer within 1 s" in slow.error_line


# -- bench ---------------------------------------------------------------------------------------


def test_bench_measures_rest_and_grpc(demo_build: Project, double, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = double()
    result = bench(
        demo_build,
        *d.args(),
        "bench.requests=40",
        "bench.warmup=4",
        "bench.concurrency=[1,2]",
        f"bench.output_dir={tmp_path}",
    )
    assert result.code == 0, result.out + result.err
    folder = tmp_path / "demo-native"
    summary = json.loads((folder / "summary.json").read_text())
    assert [(c["protocol"], c["concurrency"]) for c in summary] == [
        ("rest", 1),
        ("rest", 2),
        ("grpc", 1),
        ("grpc", 2),
    ]
    for cell in summary:
        assert cell["valid"] and cell["requests"] == 40 and cell["errors"] == 0
        assert 0 < cell["p50_ms"] <= cell["p90_ms"] <= cell["p99_ms"]
        assert cell["throughput_rps"] > 0 and cell["client_ceiling_rps"] > 0
        assert cell["speedup"] == pytest.approx(1.0)  # native against itself
    samples = json.loads((folder / "samples.json").read_text())
    assert all(len(c["latencies_ms"]) == 40 for c in samples)
    assert (folder / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| demo | 1 | native | rest |" in (folder / "summary.md").read_text()


def test_bench_never_reports_failed_requests(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    d = double({"http_500": True}, available=False)
    result = bench(
        demo_build,
        *d.args(),
        "bench.requests=10",
        "bench.warmup=1",
        "bench.concurrency=[1]",
        "bench.protocols=[rest]",
        f"bench.output_dir={tmp_path}",
    )
    assert result.code == 1
    assert result.error_line == (
        "1 of 1 cells had failed requests and are not figures; first: "
        'demo v1 rest: 10 failed (HTTP 500: {"error": "injected '
        'failure"})'
    )
    (cell,) = json.loads((tmp_path / "demo-native" / "summary.json").read_text())
    assert cell["valid"] is False and cell["speedup"] is None
    assert "INVALID" in result.out


def test_bench_sweep_ends_with_one_table(catalogue: Project, double, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert catalogue.run("-m", "profile=native,fast").code == 0
    d = double(bundle=catalogue.root / "bundles" / "demo-native")
    result = bench(
        catalogue,
        "-m",
        "profile=native,fast",
        *d.args(),
        "bench.requests=20",
        "bench.warmup=2",
        "bench.concurrency=[1]",
        "bench.protocols=[rest]",
        f"bench.output_dir={tmp_path}",
    )
    assert result.code == 0, result.out + result.err
    table = result.out[result.out.index("tftrt-bench sweep") :]
    assert "native" in table and "fast" in table and "x" in table


# -- deploy (a real Docker engine) -----------------------------------------------------------


@pytest.fixture
def docker_client() -> Any:
    from test_docker_executor import engine

    client = engine()
    if isinstance(client, str):
        pytest.skip(client)
    from docker.errors import ImageNotFound

    try:
        client.images.get(STAND_IN)
    except ImageNotFound:
        pytest.skip(f"image {STAND_IN} missing: build it with docker/build-test-image.sh")
    return client


@pytest.mark.docker
def test_deploy_verify_and_remove(docker_client: Any, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    ports = [
        f"target.ports.rest={free_port()}",
        f"target.ports.grpc={free_port()}",
        "target.health.interval_s=1",
    ]
    assert p.run(*ports).code == 0
    stand_in = [f"deploy.image={STAND_IN}", "deploy.gpus=false"]
    up = deploy(p, *ports, *stand_in)
    try:
        assert up.code == 0, up.out + up.err
        assert "every version AVAILABLE" in up.out
        (container,) = docker_client.containers.list(
            filters={"label": "com.docker.compose.project=tftrt-demo-native"}
        )
        deadline = time.monotonic() + 60
        while container.attrs["State"].get("Health", {}).get("Status") != "healthy":
            assert time.monotonic() < deadline, "the bundle's health check never passed"
            time.sleep(1)
            container.reload()
        checked = verify(p, *ports)
        assert checked.code == 0, checked.out + checked.err
    finally:
        down = deploy(p, *ports, *stand_in, "deploy.action=down")
    assert down.code == 0, down.err
    assert (
        docker_client.containers.list(
            all=True, filters={"label": "com.docker.compose.project=tftrt-demo-native"}
        )
        == []
    )


@pytest.mark.docker
def test_deploy_of_a_model_that_never_loads(docker_client: Any, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    ports = [f"target.ports.rest={free_port()}", f"target.ports.grpc={free_port()}"]
    assert p.run(*ports).code == 0
    # The stand-in reads faults from the bundle's config folder.
    bundle = p.root / "bundles" / "demo-native"
    (bundle / "config" / "double_faults.json").write_text('{"never_available": "demo"}')
    result = deploy(
        p, *ports, f"deploy.image={STAND_IN}", "deploy.gpus=false", "deploy.timeout_s=20"
    )
    assert result.code == 1
    assert result.error_line.startswith("not every version was AVAILABLE within 20 s (demo/1 ")
    assert "test double of tensorflow_model_server" in result.err  # the server's log tail
    assert (
        docker_client.containers.list(
            all=True, filters={"label": "com.docker.compose.project=tftrt-demo-native"}
        )
        == []
    )


def test_deploy_needs_a_built_bundle(tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    result = deploy(p)
    assert result.code == 1
    assert result.error_line == (
        f"{p.root}/bundles/demo-native holds no built bundle (bundle.json); run tftrt-build first"
    )
