"""tftrt-verify, tftrt-bench and tftrt-deploy against the TF Serving test double.

No TF Serving binary exists here; tests/doubles/tfserving.py stands in for it (real TensorFlow
serving the bundle's SavedModels over TF Serving's REST and gRPC interfaces) and misbehaves on
request. tftrt-deploy runs on the real Docker engine with an image that installs the double as
tensorflow_model_server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import TESTS, Project, Result, make_project, wait_for_test_images

from tftrt_build.serve.bench import Cell, speedups

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
        return [f"server.url=http://127.0.0.1:{self.rest}", f"server.grpc=127.0.0.1:{self.grpc}"]

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

CHECKS = ("status", "metadata", "identity (rest)", "predict (rest)", "identity (grpc)")


def test_verify_passes_on_a_correct_server(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    d = double()
    result = verify(demo_build, *d.args())
    assert result.code == 0, result.out + result.err
    for check in (*CHECKS, "predict (grpc)"):
        assert check in result.out
    assert "answers as demo/native (key" in result.out
    assert "all 6 checks passed" in result.out


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (
            {"wrong_numbers": {"model": "demo", "version": 1, "delta": 0.5}},
            "4 of 6 checks failed; first: demo 1 identity (rest): not the artifact the bundle "
            "holds: against the outputs recorded for demo/native (key {key}) the answers differ "
            "in 'probabilities' by 0.5 (allowed 1.",
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
    double,  # type: ignore[no-untyped-def]
    faults: dict[str, Any],
    message: str,
) -> None:
    d = double(faults, available="wrong_numbers" in faults)
    result = verify(demo_build, *d.args())
    assert result.code == 1
    key = artifact_key(demo_build)[:12]
    assert message.format(rest=d.rest, key=key) in result.error_line


def artifact_key(p: Project, bundle: str = "demo-native") -> str:
    doc = json.loads((p.root / "bundles" / bundle / "bundle.json").read_text())
    return str(doc["models"][0]["versions"][0]["key"])


def test_verify_version_never_available(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    d = double({"never_available": "demo"}, available=False)
    result = verify(demo_build, *d.args())
    assert result.code == 1
    assert result.error_line == "1 of 1 checks failed; first: demo 1 status: LOADING"


def test_verify_unreachable_and_timeout(demo_build: Project, double) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    gone = verify(demo_build, f"server.url=http://127.0.0.1:{port}")
    assert gone.code == 1
    assert gone.error_line == (
        f"1 of 1 checks failed; first: demo 1 status: GET http://127.0.0.1:"
        f"{port}/v1/models/demo/versions/1: cannot connect (Connection "
        "refused)"
    )
    d = double({"slow_s": 3})
    slow = verify(demo_build, *d.args(), "server.timeout_s=1")
    assert slow.code == 1
    assert "identity (rest): POST http://127.0.0.1:" in slow.error_line
    assert "no answer within 1 s" in slow.error_line


# -- what is served: the bundle must be built, and the server must answer as its artifacts ---


def test_verify_and_bench_refuse_a_bundle_never_built(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    # The server serves demo-native; demo-fp16 was never built. Before the fix verify said
    # "all 4 checks passed" and bench printed an FP16 row with a speed-up.
    d = double()
    wanted = "no bundle bundles/demo-fp16; run tftrt-build target=compose model=demo profile=fp16"
    checked = verify(demo_build, "profile=fp16", *d.args())
    assert checked.code == 1 and checked.error_line == wanted
    measured = bench(
        demo_build,
        "profile=fp16",
        *d.args(),
        f"bench.output_dir={tmp_path}",
        "allow_outside_project=true",
    )
    assert measured.code == 1 and measured.error_line == wanted
    assert list(tmp_path.iterdir()) == []


def test_bench_sweep_with_a_bundle_never_built(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    d = double()
    result = bench(
        demo_build,
        "-m",
        "profile=native,fp16",
        *d.args(),
        *QUICK,
        "bench.protocols=[rest]",
        f"bench.output_dir={tmp_path}",
        "allow_outside_project=true",
    )
    assert result.code == 1, result.out + result.err
    table = result.out[result.out.index("tftrt-bench sweep") :]
    rows = [line for line in table.splitlines() if line.startswith("│ demo")]
    assert len(rows) == 1 and "native" in rows[0] and "1.00x" in rows[0]
    assert "no bundle bundles/demo-fp16" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-native"]


@pytest.fixture
def other_seed(tmp_path: Path, shared_cache: Path) -> Project:
    """A project with two bundles of the demo model: seed 0 (demo-native) and seed 1 (other),
    the same model name, version and profile, different weights."""
    p = Project(tmp_path / "two", shared_cache)
    p.root.mkdir()
    assert p.run().code == 0
    built = p.run("model.source.seed=1", "target.bundle_dir=bundles/other")
    assert built.code == 0, built.err
    return p


OTHER = ("model.source.seed=1", "target.bundle_dir=bundles/other")


def test_verify_and_bench_catch_a_server_serving_a_different_model(
    other_seed: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    # The server serves bundles/demo-native; verify and bench are asked about bundles/other.
    d = double(bundle=other_seed.root / "bundles" / "demo-native")
    served, wanted = artifact_key(other_seed)[:12], artifact_key(other_seed, "other")[:12]
    different = (
        f"serving a different model: the answers match demo/native (key {served}; "
        f"bundles/demo-native serves it as demo/1), not demo/native (key {wanted}); against its "
        "recorded outputs they differ in 'probabilities' by "
    )
    checked = verify(other_seed, *OTHER, *d.args())
    assert checked.code == 1
    assert checked.error_line.startswith("4 of 6 checks failed; first: demo 1 identity (rest): ")
    assert different in checked.error_line
    results = tmp_path / "results"
    measured = bench(
        other_seed,
        *OTHER,
        *d.args(),
        *QUICK,
        f"bench.output_dir={results}",
        "allow_outside_project=true",
    )
    assert measured.code == 1
    assert measured.error_line.startswith(
        f"nothing measured: demo v1 (native) over rest: {different}"
    )
    assert not results.exists()
    # The bundle the server does serve passes both.
    assert verify(other_seed, *d.args()).code == 0
    assert (
        bench(
            other_seed,
            *d.args(),
            *QUICK,
            f"bench.output_dir={results}",
            "allow_outside_project=true",
        ).code
        == 0
    )


# -- bench ---------------------------------------------------------------------------------------

QUICK = ("bench.requests=10", "bench.warmup=1", "bench.concurrency=[1]")


def test_bench_measures_rest_and_grpc(demo_build: Project, double, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = double()
    result = bench(
        demo_build,
        *d.args(),
        "bench.requests=40",
        "bench.warmup=4",
        "bench.concurrency=[1,2]",
        f"bench.output_dir={tmp_path}",
        "allow_outside_project=true",
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
        assert cell["artifact"] == artifact_key(demo_build)[:12]
    samples = json.loads((folder / "samples.json").read_text())
    assert all(len(c["latencies_ms"]) == 40 for c in samples)
    assert (folder / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| demo | 1 | native | rest |" in (folder / "summary.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["demo-native"]  # no staging folder left


def test_bench_against_a_failing_server_measures_nothing(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    d = double({"http_500": True}, available=False)
    result = bench(
        demo_build, *d.args(), *QUICK, f"bench.output_dir={tmp_path}", "allow_outside_project=true"
    )
    assert result.code == 1
    assert result.error_line == (
        f"nothing measured: GET http://127.0.0.1:{d.rest}/v1/models/demo: HTTP 500: "
        "injected failure"
    )
    assert list(tmp_path.iterdir()) == []


def test_bench_against_a_refused_port_fails_in_seconds(demo_build: Project, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    result = bench(
        demo_build,
        f"server.url=http://127.0.0.1:{port}",
        f"bench.output_dir={tmp_path}",
        "allow_outside_project=true",
    )
    elapsed = time.monotonic() - started
    assert result.code == 1
    assert result.error_line == (
        f"nothing measured: GET http://127.0.0.1:{port}/v1/models/demo: cannot connect "
        "(Connection refused)"
    )
    assert elapsed < 10, f"took {elapsed:.1f} s"  # asked of the issue: seconds, not minutes
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_bench_counts_answers_that_are_no_prediction_as_failed(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    protocol: str,
) -> None:
    # The identity request is answered well; every request after it gets 64 random bytes
    # with HTTP 200 / gRPC OK. Before the fix bench exited 0 with latency figures.
    d = double({"garbage_after": 1})
    result = bench(
        demo_build,
        *d.args(),
        *QUICK,
        f"bench.protocols=[{protocol}]",
        f"bench.output_dir={tmp_path}",
        "allow_outside_project=true",
    )
    assert result.code == 1, result.out + result.err
    assert result.error_line.startswith(
        f"1 of 1 cells had failed requests and are not figures; first: demo v1 {protocol}: "
        "10 failed (not a prediction: "
    )
    (cell,) = json.loads((tmp_path / "demo-native" / "summary.json").read_text())
    assert cell["valid"] is False and cell["errors"] == 10 and cell["speedup"] is None


def _clients_of(pid: int) -> list[int]:
    """The bench's client processes: its children started by multiprocessing's spawn."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def test_a_dead_bench_client_fails_the_run_naming_the_cell(
    demo_build: Project,
    double,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    d = double({"slow_s": 0.2})
    exe = Path(sys.executable).parent / "tftrt-bench"
    env = {**os.environ, "TFTRT_CACHE_DIR": str(demo_build.cache), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            exe,
            *d.args(),
            "bench.requests=400",
            "bench.warmup=2",
            "bench.concurrency=[2]",
            "bench.processes=2",
            "bench.protocols=[rest]",
            f"bench.output_dir={tmp_path}",
            "allow_outside_project=true",
        ],
        cwd=demo_build.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(clients := _clients_of(proc.pid)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no bench clients started"
            time.sleep(0.1)
        victim = clients[0]
        os.kill(victim, signal.SIGKILL)
        # Without the fix the other client waits at the barrier and the bench for its results.
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    result = Result(proc.returncode, "", err)
    assert result.code == 1
    assert result.error_line == (
        f"demo v1 (native) rest batch 1 x2: client process {victim} died (killed by SIGKILL); "
        "no results written"
    )
    assert list(tmp_path.iterdir()) == []
    # The other client was stopped, not left running.
    survivor = Path(f"/proc/{clients[1]}/stat")
    assert not survivor.exists() or survivor.read_text().split()[2] == "Z"


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
        "allow_outside_project=true",
    )
    assert result.code == 0, result.out + result.err
    table = result.out[result.out.index("tftrt-bench sweep") :]
    rows = [line for line in table.splitlines() if line.startswith("│ demo")]
    # The 'fast' profile serves the same SavedModel, so it answers as its own artifact and
    # gets a speed-up over native.
    assert len(rows) == 2
    assert "native" in rows[0] and "1.00x" in rows[0]
    assert "fast" in rows[1] and re.search(r"│ \d+\.\d\dx", rows[1])


# -- deploy (a real Docker engine) -----------------------------------------------------------


@pytest.fixture
def docker_client() -> Any:
    from test_docker_executor import engine

    client = engine()
    if isinstance(client, str):
        pytest.skip(client)
    from docker.errors import ImageNotFound

    wait_for_test_images()
    try:
        client.images.get(STAND_IN)
    except ImageNotFound:
        pytest.skip(f"image {STAND_IN} missing: build it with docker/build-test-image.sh")
    return client


@pytest.mark.docker
def test_cpu_target_deploys_turns_healthy_verifies_and_goes(
    docker_client: Any, tmp_path: Path
) -> None:
    # The built-in CPU target: no GPU reservation to drop, only the image is swapped for the
    # stand-in (no TF Serving image can be pulled here).
    p = make_project(tmp_path / "p")
    args = [
        "target=compose_cpu",
        f"target.ports.rest={free_port()}",
        f"target.ports.grpc={free_port()}",
        "target.health.interval_s=1",
        "record=true",
    ]
    assert p.run(*args).code == 0
    stand_in = [f"deploy.image={STAND_IN}"]
    up = deploy(p, *args, *stand_in)
    project = "com.docker.compose.project=tftrt-demo-native-cpu"
    try:
        assert up.code == 0, up.out + up.err
        assert "every version AVAILABLE" in up.out
        (container,) = docker_client.containers.list(filters={"label": project})
        assert container.attrs["HostConfig"]["DeviceRequests"] in (None, [])
        assert container.attrs["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "5", "max-size": "50m"},
        }
        assert container.labels["autoheal"] == "true"
        deadline = time.monotonic() + 60
        while container.attrs["State"].get("Health", {}).get("Status") != "healthy":
            assert time.monotonic() < deadline, "the bundle's health check never passed"
            time.sleep(1)
            container.reload()
        checked = verify(p, *args)
        assert checked.code == 0, checked.out + checked.err
        assert "all 6 checks passed" in checked.out
    finally:
        down = deploy(p, *args, *stand_in, "deploy.action=down")
    assert down.code == 0, down.err
    assert docker_client.containers.list(all=True, filters={"label": project}) == []


@pytest.mark.docker
def test_deploy_of_a_model_that_never_loads(docker_client: Any, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    ports = [f"target.ports.rest={free_port()}", f"target.ports.grpc={free_port()}", "record=true"]
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


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("tftrt-deploy", "deploy.action=down"),
        ("tftrt-verify", "server.url"),
        ("tftrt-bench", "bench.concurrency"),
    ],
)
def test_each_command_has_its_own_help(tmp_path: Path, command: str, usage: str) -> None:
    p = make_project(tmp_path / "p")
    result = tool(command, p, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{command}: ")
    assert f"Usage: {command} " in result.out and usage in result.out
    assert "tftrt-build: build TF-TRT models" not in result.out
    assert "target: compose, compose_cpu" in result.out  # the config groups, as tftrt-build's


def test_first_native_version_is_the_baseline_when_two_serve_the_saved_model() -> None:
    """Two profiles with the native converter in one table: the first listed is the reference
    (1.00x), not whichever a dictionary happened to keep last."""

    def cell(profile: str, converter: str, rps: float) -> Cell:
        return Cell(
            "demo",
            profile,
            profile,
            converter,
            "rest",
            1,
            1,
            requests=10,
            throughput_rps=rps,
            artifact=profile * 3,
        )

    cells = [
        cell("native", "native", 100.0),
        cell("fast", "native", 50.0),
        cell("fp16", "tftrt", 300.0),
    ]
    speedups(cells)
    assert [c.speedup for c in cells] == [1.0, 0.5, 3.0]
