"""The TensorFlow worker of the local executor (``executor.worker=fork``): same bytes as a fresh
process per stage, and the isolation a stage process gives.

The tests that run tasks use the real worker with real TensorFlow (slow). Each takes a worker
of its own: the worker is chosen by the stage environment, so a variable only this test sets
(``TFTRT_TEST_WORKER``) gives it one no other test shares or kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Project, make_project

from tftrt_build.config.commands import check_executor
from tftrt_build.config.schema import ExecutorConf, WorkerMode
from tftrt_build.errors import ConfigError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import Task, TaskFailed
from tftrt_build.execute.worker import WORKER_DIED, Workers, Zygote, forks, workers
from tftrt_build.store.digest import hash_tree

MODEL = {
    "args": {"image_size": 64, "classes": 10},
    "seed": 0,
    "signature": "serving_default",
    "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 64, 64, 3]}],
    "outputs": ["probabilities"],
}
# Export scripts that end their own process in the ways TensorFlow can.
ABORTS = "import os\n\ndef build(**args):\n    os.abort()\n"
KILLED = "import os, signal\n\ndef build(**args):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
# Prints its pid, then never returns.
SLEEPY = (
    "import os, time\n\ndef build(**args):\n"
    "    print('sleepy export', os.getpid(), flush=True)\n    time.sleep(3600)\n"
)
# Kills the process that forked it (the worker), then waits to be taken down with it.
KILLS_WORKER = (
    "import os, signal, time\n\ndef build(**args):\n"
    "    print('child', os.getpid(), flush=True)\n"
    "    os.kill(os.getppid(), signal.SIGKILL)\n    time.sleep(3600)\n"
)


def test_auto_forks_on_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert forks(WorkerMode.fork) and not forks(WorkerMode.process)
    monkeypatch.setattr(sys, "platform", "linux")
    assert forks(WorkerMode.auto)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not forks(WorkerMode.auto)


def test_fork_is_refused_where_it_is_not_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(ConfigError) as info:
        check_executor(ExecutorConf(worker=WorkerMode.fork), "conf/executor/mac.yaml")
    assert str(info.value) == (
        "conf/executor/mac.yaml: executor.worker: fork: stages are forked only on Linux, not on "
        "darwin (executor.worker=auto or process)"
    )
    check_executor(ExecutorConf(worker=WorkerMode.auto), None)  # auto: process there


def test_one_worker_per_interpreter_and_environment() -> None:
    """A task whose environment differs (another GPU of executor.gpu_pool) gets a worker
    started with it; a busy worker gets a sibling. Nothing is started until a task comes."""
    pool = Workers()
    gpu0 = {"CUDA_VISIBLE_DEVICES": "0"}
    with pool.lease("python", gpu0) as first:
        assert first.env == gpu0 and first.proc is None
        with pool.lease("python", gpu0) as busy:  # a second job of the sweep, at once
            assert busy is not first
        with pool.lease("python", {"CUDA_VISIBLE_DEVICES": "1"}) as other:
            assert other is not first and other.env == {"CUDA_VISIBLE_DEVICES": "1"}
        with pool.lease("/other/python", gpu0) as other:
            assert other is not first and other.python == "/other/python"
    with pool.lease("python", {"CUDA_VISIBLE_DEVICES": "0"}) as again:
        assert again is first
    assert len(pool.all()) == 4


def test_a_forked_child_leaves_its_parents_workers_alone() -> None:
    """A launcher that forks jobs: the job neither uses nor closes the parent's workers."""
    mark = uuid.uuid4().hex
    with workers.lease("python", {"TFTRT_TEST_WORKER": mark}):
        pass
    assert _zygotes(mark)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, str(len(_zygotes(mark))).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as seen:
        assert seen.read() == "0"
    assert _zygotes(mark)


# -- the real worker ---------------------------------------------------------------------------


@pytest.fixture
def own_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stage environment only this test uses, so its tasks get a worker of their own."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv("TFTRT_TEST_WORKER", mark)
    yield mark
    for zygote in _zygotes(mark):
        zygote.close()


def _zygotes(mark: str) -> list[Zygote]:
    return [z for z in workers.all() if z.env.get("TFTRT_TEST_WORKER") == mark]


def _worker_pid(mark: str) -> int:
    (zygote,) = _zygotes(mark)
    assert zygote.proc is not None and zygote.alive()
    return zygote.proc.pid


def _export(tmp: Path, name: str, script: str = "") -> Task:
    path = tmp / f"{name}.py"
    path.write_text(script or (REPO / "models" / "demo.py").read_text())
    out = tmp / name
    out.mkdir()
    return Task("export", MODEL, {"script": path}, out, f"export of {name}.py")


def _executor(tmp: Path, timeout_s: float = 600) -> LocalExecutor:
    return LocalExecutor(cache_dir=tmp, timeout_s=timeout_s, worker=WorkerMode.fork)


def _gone(pid: int, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0): look at its state.
        state = Path(f"/proc/{pid}/stat")
        if state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] in "ZX":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_fork_and_process_builds_write_the_same_lock(tmp_path: Path) -> None:
    """The same digests both ways, and the golden lock (written by fresh processes)."""
    locks = {}
    for mode in ("fork", "process"):
        p = Project(tmp_path / mode, tmp_path / f"{mode}-cache")
        p.root.mkdir()
        result = p.run(f"executor.worker={mode}")
        assert result.code == 0, result.err
        locks[mode] = p.lock.read_text()
        log = next(p.cache.glob("runs/*/run.log")).read_text()
        assert ("forked by the TensorFlow worker" in log) == (mode == "fork")
    assert locks["fork"] == locks["process"]
    assert locks["fork"] == (REPO / "tests" / "golden" / "demo-native.tftrt.lock").read_text()


@pytest.mark.slow
def test_exports_forked_from_one_worker_have_the_same_bytes(
    tmp_path: Path, own_worker: str
) -> None:
    """A second export from the same worker starts from TensorFlow's counters as the first did
    (one process exporting twice would name its functions differently)."""
    executor = _executor(tmp_path)
    first, second = _export(tmp_path, "first"), _export(tmp_path, "second")
    executor.run(first, lambda line: None)
    pid = _worker_pid(own_worker)
    executor.run(second, lambda line: None)
    assert _worker_pid(own_worker) == pid  # one TensorFlow import for both
    assert first.output is not None and second.output is not None
    assert hash_tree(first.output, None) == hash_tree(second.output, None)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "signal_name"), [(ABORTS, "SIGABRT"), (KILLED, "SIGKILL")], ids=["abort", "kill-9"]
)
def test_a_task_that_dies_fails_its_stage_and_the_worker_lives_on(
    tmp_path: Path, own_worker: str, script: str, signal_name: str
) -> None:
    executor = _executor(tmp_path)
    lines: list[str] = []
    with pytest.raises(TaskFailed) as info:
        executor.run(_export(tmp_path, "dies", script), lines.append)
    assert str(info.value) == "export of dies.py failed: the stage process died"
    assert info.value.tail[-1] == f"(killed by signal {signal_name})"
    pid = _worker_pid(own_worker)
    good = _export(tmp_path, "good")
    assert executor.run(good, lambda line: None)["meta_graphs"]
    assert _worker_pid(own_worker) == pid


@pytest.mark.slow
def test_a_worker_killed_between_stages_is_started_again(tmp_path: Path, own_worker: str) -> None:
    executor = _executor(tmp_path)
    executor.run(_export(tmp_path, "one"), lambda line: None)
    pid = _worker_pid(own_worker)
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    result = executor.run(_export(tmp_path, "two"), lambda line: None)
    assert result["meta_graphs"]
    assert _worker_pid(own_worker) != pid
    (zygote,) = _zygotes(own_worker)
    assert zygote.starts == 2


@pytest.mark.slow
def test_a_worker_killed_during_a_task_fails_that_stage_only(
    tmp_path: Path, own_worker: str
) -> None:
    """The task dies with its worker (not orphaned), the stage says so, the next stage runs."""
    executor = _executor(tmp_path)
    lines: list[str] = []
    with pytest.raises(TaskFailed) as info:
        executor.run(_export(tmp_path, "killer", KILLS_WORKER), lines.append)
    assert str(info.value) == "export of killer.py failed: the stage process died"
    assert info.value.tail[-1] == ("(the TensorFlow worker process died: killed by signal SIGKILL)")
    child = int(next(line for line in lines if line.startswith("child ")).split()[1])
    assert _gone(child), "the task outlived its worker"
    assert executor.run(_export(tmp_path, "after"), lambda line: None)["meta_graphs"]
    (zygote,) = _zygotes(own_worker)
    assert zygote.starts == 2


@pytest.mark.slow
def test_a_task_past_its_timeout_is_stopped_and_the_worker_lives_on(
    tmp_path: Path, own_worker: str
) -> None:
    executor = _executor(tmp_path)
    executor.run(_export(tmp_path, "warm"), lambda line: None)  # TensorFlow imported
    pid = _worker_pid(own_worker)
    executor.timeout_s = 8
    lines: list[str] = []
    with pytest.raises(TaskFailed) as info:
        executor.run(_export(tmp_path, "sleepy", SLEEPY), lines.append)
    assert str(info.value) == (
        "export of sleepy.py did not end within executor.timeout_s=8 s: stopped, nothing cached"
    )
    sleeper = int(next(line for line in lines if line.startswith("sleepy export")).split()[2])
    assert _gone(sleeper)
    assert _worker_pid(own_worker) == pid


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"], ids=["killed", "ctrl-c"])
def test_a_build_that_ends_leaves_no_worker_and_no_task(tmp_path: Path, how: str) -> None:
    """tftrt-build killed (kill -9) or interrupted (Ctrl-C) mid-export: its worker and the
    forked export end with it (die_with_parent), no process of the build is left."""
    p = make_project(tmp_path / "p")
    (p.root / "models").mkdir()
    (p.root / "models" / "sleepy.py").write_text(SLEEPY)
    (p.root / "conf" / "model").mkdir(parents=True)
    (p.root / "conf" / "model" / "sleepy.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "sleepy",
                "source": {"kind": "export", "script": "models/sleepy.py"},
                "inputs": MODEL["inputs"],
                "outputs": MODEL["outputs"],
            }
        )
    )
    mark = uuid.uuid4().hex
    env = {**os.environ, "TFTRT_CACHE_DIR": str(p.cache), "TFTRT_TEST_MARK": mark}
    proc = subprocess.Popen(
        [Path(sys.executable).parent / "tftrt-build", "model=sleepy"],
        cwd=p.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Take Ctrl-C as a terminal gives it (a background shell would have it ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while len(_processes_with(mark)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # the build, its worker and the forked export
        family = _processes_with(mark)
        assert len(family) == 3, family
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if how == "SIGINT":
        assert proc.returncode == 130, err.decode()[-2000:]
    assert all(_gone(pid) for pid in family), _processes_with(mark)
    assert p.cache_entries() == []


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds marker (stages inherit the build's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_worker_that_dies_before_taking_its_task_fails_the_stage_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker (then its replacement) gone before the task is handed over: the stage fails
    as a stage process that died at its start does, not with a raw "Broken pipe" (seen in a
    sweep with a broken executor.python, where the race made it intermittent)."""

    def gone(*args: object, **kwargs: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("tftrt_build.execute.worker.socket.send_fds", gone)
    zygote = Zygote("/bin/false", dict(os.environ))
    try:
        task = zygote.submit("/nonexistent/task.json")
        with task.stdout:
            assert zygote.starts == 2  # found gone once, started again, gone again
            assert task.wait(timeout=5) == WORKER_DIED
            assert task.note.startswith("(the TensorFlow worker process died before its task: ")
            assert task.stdout.read() == ""
    finally:
        zygote.close()
