"""The Docker executor against a real Docker engine (started by .ci/run in CI).

The image is tftrt-build's CPU test image (docker/build-test-image.sh): TensorFlow 2.17.1 and
tftrt-build, no TensorRT, no GPU. On a machine without a Docker engine these tests skip with
the reason; under TFTRT_CI=1 a skip is a failure.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project, wait_for_test_images

from tftrt_build.config.schema import ExecutorConf, ExecutorKind, GpusConf, TransferMode
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.docker import LABEL, DockerExecutor
from tftrt_build.execute.task import Task
from tftrt_build.execute.transfer import download

pytestmark = [pytest.mark.docker, pytest.mark.slow]
IMAGE = os.environ.get("TFTRT_TEST_IMAGE", "tftrt-build/test-cpu:2.17.1")
# Stage containers of this suite's image: other builds may share the engine (and the label).
OURS = {"label": LABEL, "ancestor": IMAGE}


@functools.cache
def engine() -> Any:
    from docker.errors import DockerException

    import docker

    client = None
    try:
        client = docker.from_env()
        client.ping()
        return client
    except DockerException as exc:
        reason = f"no Docker engine reachable ({exc.__class__.__name__}); set DOCKER_HOST"
    if client is not None:
        client.close()
    # The SDK leaves the failed connection's socket open; finalised later, its ResourceWarning
    # is an error under filterwarnings=error. Finalise it now, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return reason


@pytest.fixture
def client() -> Any:
    found = engine()
    if isinstance(found, str):
        pytest.skip(found)
    from docker.errors import ImageNotFound

    wait_for_test_images()
    try:
        found.images.get(IMAGE)
    except ImageNotFound:
        pytest.skip(f"image {IMAGE} missing: build it with docker/build-test-image.sh")
    yield found
    leftovers = found.containers.list(all=True, filters=OURS)
    assert leftovers == [], "containers left behind"


def docker_args(*extra: str) -> list[str]:
    return ["executor=docker", f"executor.image={IMAGE}", "executor.gpus.count=0", *extra]


def lock_entry(p: Project, artifact: str = "demo/native") -> dict[str, Any]:
    return dict(yaml.safe_load(p.lock.read_text())["artifacts"][artifact])


@pytest.mark.parametrize("transfer", ["mount", "copy"])
def test_export_in_a_container_matches_the_local_build(  # type: ignore[no-untyped-def]
    client, demo_build: Project, tmp_path: Path, transfer: str
) -> None:
    p = make_project(tmp_path / "p")
    result = p.run(*docker_args(f"executor.transfer={transfer}"))
    assert result.code == 0, result.err
    here, local = lock_entry(p), lock_entry(demo_build)
    # Same inputs, same TensorFlow: the same bytes, whichever executor made them...
    assert here["source"]["output"] == local["source"]["output"]
    assert here["convert"]["output"] == local["convert"]["output"]
    # ...under another key, because the image is part of the toolchain.
    image_id = client.images.get(IMAGE).id
    assert here["source"]["toolchain"]["image_id"] == image_id
    assert here["source"]["key"] != local["source"]["key"]


def test_remote_engine_over_tcp_uploads_and_downloads(
    client,
    demo_build: Project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    tcp = os.environ.get("TFTRT_DOCKER_TCP")
    if not tcp:
        pytest.skip("no engine on TCP (TFTRT_DOCKER_TCP, set by .ci/run)")
    p = make_project(tmp_path / "p")
    result = p.run(*docker_args(f"executor.host={tcp}"))
    assert result.code == 0, result.err
    assert lock_entry(p)["source"]["output"] == lock_entry(demo_build)["source"]["output"]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A private sshd on 127.0.0.1 whose sessions reach this test's Docker engine.

    Yields the engine's ssh:// address and the environment a client needs: a HOME whose
    ~/.ssh holds the key, the known host key and a config naming both (the Docker SDK's
    paramiko reads them from there). Debian's openssh-server; .ci/run installs it.
    """
    binary = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin")
    if binary is None:
        pytest.skip("no sshd: apt-get install openssh-server (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("a private sshd here needs root (it logs in as root)")
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    folder = tmp_path / "sshd"
    ssh_dir = folder / "home" / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    for key in (folder / "host_key", ssh_dir / "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder}/host_key\n"
        f"PidFile {folder}/sshd.pid\nAuthorizedKeysFile {ssh_dir}/id_ed25519.pub\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n"
        "StrictModes no\nAllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n"
        # The session's `docker system dial-stdio` talks to the engine of this test.
        f"SetEnv DOCKER_HOST={engine}\n"
    )
    host_key = (folder / "host_key.pub").read_text().split()
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (ssh_dir / "config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {ssh_dir}/id_ed25519\n"
        f"  UserKnownHostsFile {ssh_dir}/known_hosts\n  StrictHostKeyChecking yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    subprocess.run([binary, "-t", "-f", folder / "sshd_config"], check=True)
    log = (folder / "sshd.log").open("w")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", folder / "sshd_config"], stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, (folder / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not listen"
            time.sleep(0.05)
        yield f"ssh://root@127.0.0.1:{port}", {"HOME": str(folder / "home")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_remote_engine_over_ssh(  # type: ignore[no-untyped-def]
    client, sshd: tuple[str, dict[str, str]], demo_build: Project, tmp_path: Path
) -> None:
    host, env = sshd
    p = make_project(tmp_path / "p")
    result = p.run(*docker_args(f"executor.host={host}"), env=env)
    assert result.code == 0, result.err
    # Uploaded and downloaded over ssh: the same bytes as the local build.
    here, local = lock_entry(p), lock_entry(demo_build)
    assert here["source"]["output"] == local["source"]["output"]
    assert here["convert"]["output"] == local["convert"]["output"]
    assert here["source"]["toolchain"]["image_id"] == client.images.get(IMAGE).id


def test_ssh_engine_without_paramiko_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paramiko", None)  # import paramiko fails, as uninstalled
    executor = DockerExecutor(ExecutorConf(kind=ExecutorKind.docker, host="ssh://me@gpu-host"))
    with pytest.raises(CapabilityError) as info:
        executor.client  # noqa: B018 - connecting is what fails
    assert str(info.value) == (
        "the Docker engine ssh://me@gpu-host is reached over ssh, which needs paramiko: "
        "pip install 'tftrt-build[ssh]'"
    )


def test_moved_tag_rebuilds_and_the_lock_shows_it(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = "tftrt-build/test-moving:1"
    client.images.get(IMAGE).tag(tag)
    p = make_project(tmp_path / "p")
    args = ["executor=docker", f"executor.image={tag}", "executor.gpus.count=0"]
    assert p.run(*args).code == 0
    before = lock_entry(p)["source"]["toolchain"]["image_id"]
    moved, _ = client.images.build(
        fileobj=io.BytesIO(f"FROM {IMAGE}\nLABEL moved=1\n".encode()), tag=tag, rm=True
    )
    try:
        result = p.run(*args, "mode=plan")
        assert f"changed: toolchain.image_id: {before[:12]}" in result.out
        assert p.run(*args).code == 0
        assert lock_entry(p)["source"]["toolchain"]["image_id"] == moved.id != before
    finally:
        client.images.remove(tag, force=True)


def test_a_failure_is_one_line_and_the_log_holds_the_rest(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make_project(tmp_path / "p")
    result = p.run(*docker_args("model.source.args.classes=-3"))
    assert result.code == 1
    line = result.error_line
    assert line.startswith(
        "export of models/demo.py failed: ValueError: Received an invalid value for `units`, "
        "expected a positive integer. Received: units=-3 (full log: .tftrt-cache/runs/"
    ), line
    # The container's own log, streamed back into the run folder: the traceback the stage
    # printed is there, and not on the console.
    log = p.root / line.rsplit("(full log: ", 1)[1].rstrip(")")
    assert log.parent.name == "stages" and log.name.endswith("-export.log")
    assert "Traceback (most recent call last)" in log.read_text()
    assert "Traceback" not in result.err
    assert result.err.rstrip().endswith(line)  # nothing under the error line
    assert p.cache_entries() == []


def test_executor_streams_each_line(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    executor = DockerExecutor(
        ExecutorConf(kind=ExecutorKind.docker, image=IMAGE, gpus=GpusConf(count=0))
    )
    lines: list[str] = []
    code = executor._run_container(
        ["python3", "-c", "print('one'); print('two')"],
        lines.append,
        gpus=False,
        mounts=[],
        archive=None,
    )
    assert code == 0 and lines == ["one", "two"]


def test_gpu_request_on_an_engine_without_nvidia(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    executor = DockerExecutor(
        ExecutorConf(kind=ExecutorKind.docker, image=IMAGE, gpus=GpusConf(count="all"))
    )
    with pytest.raises(CapabilityError) as info:
        executor.run(Task("probe", {}, title="probe"), lambda line: None)
    assert (
        "cannot give containers GPUs (the NVIDIA container runtime is missing): could not "
        "select device driver" in str(info.value)
    )
    # The request Docker got is the one Compose would write for count: all.
    (request,) = executor._device_requests()
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]


def test_tftrt_in_a_container_stops_with_what_is_missing(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make_project(tmp_path / "p")
    result = p.run(*docker_args("profile=fp16"))
    assert result.code == 1
    where = os.environ.get("DOCKER_HOST", "the local Docker engine")
    assert result.error_line == (
        f"profile 'fp16' needs TF-TRT, which image {IMAGE} on {where} "
        "cannot run: the TensorRT 8.6.1 library is not installed (TensorFlow loads "
        "libnvinfer.so.8.6.1 from its rpath or the system library folders); no GPU is visible "
        "to TensorFlow. Use an image with TensorRT 8.6.1 on an engine with NVIDIA GPUs "
        "(executor.image, executor.host; README, 'GPU hosts')"
    )
    assert p.leftovers() == []


def test_missing_image_and_unreachable_engine(tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    gone = p.run("executor=docker", "executor.host=unix:///nonexistent/docker.sock")
    assert gone.code == 1
    assert gone.error_line.startswith(
        "cannot reach the Docker engine at unix:///nonexistent/docker.sock: "
    )
    if isinstance(engine(), str):
        pytest.skip(engine())
    missing = p.run("executor=docker", "executor.image=tftrt-build/nowhere:0")
    assert missing.code == 1
    assert missing.error_line.startswith(
        "image tftrt-build/nowhere:0 is not on the Docker engine at "
    )
    assert "docker build -f docker/gpu.Dockerfile -t tftrt-build/nowhere:0 ." in missing.error_line
    assert p.leftovers() == []


def _wait_for_container(client: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = client.containers.list(filters={**OURS, "status": "running"})
        if running:
            return running[0]
        time.sleep(0.1)
    raise AssertionError("no stage container started")


def _interruptible() -> None:
    """In the child: take Ctrl-C as a terminal gives it. A shell that starts the test run in
    the background (no job control) sets SIGINT to ignored, children inherit that, and Python
    then keeps it ignored, so the build would never see the test's SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_build(p: Project) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "tftrt-build"
    return subprocess.Popen(
        [exe, *docker_args("model=resnet50")],
        cwd=p.root,
        env={**os.environ, "TFTRT_CACHE_DIR": str(p.cache)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_interruptible,
    )


def test_ctrl_c_stops_and_removes_the_container(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make_project(tmp_path / "p")
    proc = _start_build(p)
    try:
        _wait_for_container(client)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave it running into the next test
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert client.containers.list(all=True, filters=OURS) == []
    assert p.cache_entries() == []


def test_container_of_a_killed_build_is_removed_by_the_next(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make_project(tmp_path / "p")
    proc = _start_build(p)
    _wait_for_container(client)
    proc.kill()
    proc.communicate(timeout=30)
    assert client.containers.list(all=True, filters=OURS)  # left running...
    result = p.run(*docker_args("mode=plan"))  # ...until the next run reaches the engine
    assert result.code == 0, result.err
    assert client.containers.list(all=True, filters=OURS) == []


def test_transfer_mode_follows_the_engine() -> None:
    def mode(host: str | None) -> TransferMode:
        conf = ExecutorConf(kind=ExecutorKind.docker, host=host)
        return DockerExecutor(conf).transfer

    assert mode("unix:///var/run/docker.sock") is TransferMode.mount
    assert mode("ssh://me@gpu-host") is TransferMode.copy
    assert mode("tcp://10.0.0.5:2376") is TransferMode.copy


def _watch(client: Any) -> dict[str, Any]:
    """Record the first stage container seen running: its attributes and its task folder."""
    seen: dict[str, Any] = {}

    def poll() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not seen:
            for container in client.containers.list(filters=OURS):
                with contextlib.suppress(Exception):
                    attrs = container.attrs
                    io = next(m for m in attrs["Mounts"] if m["Destination"] == "/tftrt/io")
                    st = os.stat(io["Source"])
                    seen.update(attrs=attrs, io_mode=st.st_mode & 0o7777, io_uid=st.st_uid)
                    return
            time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()
    return seen


def test_stage_container_is_unprivileged(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    executor = DockerExecutor(
        ExecutorConf(kind=ExecutorKind.docker, image=IMAGE, gpus=GpusConf(count=0))
    )
    seen = _watch(client)
    lines: list[str] = []
    report = executor.run(
        Task("probe", {}, title="probe"),
        lines.append,
    )
    assert "tensorflow" in report
    host = seen["attrs"]["HostConfig"]
    # Every capability dropped, no privilege gained through setuid, no network.
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none" and host["Privileged"] is False
    # As the caller, or an unprivileged uid when the caller is root.
    uid = os.getuid() or 10001
    assert seen["attrs"]["Config"]["User"] == f"{uid}:{os.getgid() if os.getuid() else 10001}"
    # Its task folder: 0700, owned by that uid while the stage runs.
    assert seen["io_mode"] == 0o700 and seen["io_uid"] == uid
    # What the kernel says inside: no effective capability, no_new_privs set.
    out: list[str] = []
    executor._run_container(
        ["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"],
        out.append,
        gpus=False,
        mounts=[],
        archive=None,
    )
    assert out == [str(uid), "CapEff:\t0000000000000000", "NoNewPrivs:\t1"]


ROOT_SCRIPT = """\
from pathlib import Path

import helper_mod


def build(**args):
    here = Path(__file__).parent
    # Only the script and its declared deps are in the container, not their folder.
    seen = sorted(p.name for p in here.iterdir())
    assert seen == ["helper_mod.py", "rootmodel.py"], seen
    return helper_mod.model()
"""


@pytest.mark.parametrize("transfer", ["mount", "copy"])
def test_only_the_script_and_its_deps_reach_the_container(  # type: ignore[no-untyped-def]
    client, demo_build: Project, tmp_path: Path, transfer: str
) -> None:
    p = make_project(tmp_path / "p")
    demo = (Path(__file__).parents[1] / "models" / "demo.py").read_text()
    (p.root / "helper_mod.py").write_text(demo.replace("def build(", "def model("))
    (p.root / "rootmodel.py").write_text(ROOT_SCRIPT)
    (p.root / "secret.txt").write_text("not for the container\n")
    (p.root / "conf" / "model").mkdir(parents=True)
    body = yaml.safe_load(
        (Path(__file__).parents[1] / "tftrt_build/conf/model/demo.yaml").read_text()
    )
    body["source"] = {"kind": "export", "script": "rootmodel.py", "deps": ["helper_mod.py"]}
    (p.root / "conf" / "model" / "rooted.yaml").write_text(yaml.safe_dump(body))
    result = p.run(*docker_args("model=rooted", f"executor.transfer={transfer}"))
    assert result.code == 0, result.err
    # The same model as the demo's, exported from the project root.
    here = lock_entry(p, "rooted/native")["source"]["output"]
    assert here == lock_entry(demo_build)["source"]["output"]


SLEEPY = """\
import time

def build(**args):
    print("sleepy export", flush=True)
    time.sleep(3600)
"""


def test_a_stage_past_its_timeout_is_stopped_and_removed(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = make_project(tmp_path / "p")
    (p.root / "models").mkdir()
    (p.root / "models" / "sleepy.py").write_text(SLEEPY)
    (p.root / "conf" / "model").mkdir(parents=True)
    body = yaml.safe_load(
        (Path(__file__).parents[1] / "tftrt_build/conf/model/demo.yaml").read_text()
    )
    body["source"] = {"kind": "export", "script": "models/sleepy.py"}
    (p.root / "conf" / "model" / "sleepy.yaml").write_text(yaml.safe_dump(body))
    # Long enough for TensorFlow to load in the container and the script to print.
    result = p.run(*docker_args("model=sleepy", "executor.timeout_s=25"), timeout=240)
    assert result.code == 1, result.err
    assert result.error_line.startswith(
        f"export of models/sleepy.py did not end within executor.timeout_s=25 s in {IMAGE}: "
        "stopped and removed, nothing cached"
    ), result.error_line
    # Its last lines, under the error line: what it was doing (the end of its full log).
    under = [line.strip() for line in result.err.split("error: ", 1)[1].splitlines()[1:]]
    log = p.root / result.error_line.rsplit("(full log: ", 1)[1].rstrip(")")
    logged = [line.strip() for line in log.read_text().splitlines()]
    # Rich wraps long lines: compare the words of the last (at most 12) lines.
    assert under and " ".join(under).split() == " ".join(logged[-12:]).split(), result.err
    assert client.containers.list(all=True, filters=OURS) == []
    assert p.leftovers() == []


@pytest.mark.parametrize(
    ("make", "what"),
    [
        ("ln -s /etc/passwd /o/pw", "'pw' is a link to '/etc/passwd'"),
        ("ln /o/f /o/h", "'h' is a link to"),
        # Inside the output folder, so tar's data filter alone would keep it.
        ("ln -s f /o/rel", "'rel' is a link to 'f'"),
    ],
)
def test_download_refuses_links_a_container_sends_back(  # type: ignore[no-untyped-def]
    client, tmp_path: Path, make: str, what: str
) -> None:
    container = client.containers.run(
        IMAGE,
        ["sh", "-c", f"mkdir /o && echo x > /o/f && {make}"],
        detach=True,
        labels={LABEL: "test"},
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        dest = tmp_path / "out"
        dest.mkdir()
        with pytest.raises(StageError, match=f"the stage's output {what}"):
            download(container, "/o", dest)
        assert list(dest.iterdir()) == []
    finally:
        container.remove(force=True)
