"""executor.gpu_pool: concurrent jobs each hold a GPU of their own; extra jobs wait.

This machine has no GPU: the slots are checked with fake device lists and real concurrent
processes, and the local executor's wiring with a stage process that is not started. That a
TF-TRT stage then really runs on the GPU it was given is unverified here.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from tftrt_build.config.applies import check_gpu_pool
from tftrt_build.config.schema import ExecutorConf, WorkerMode
from tftrt_build.errors import ConfigError
from tftrt_build.execute import local
from tftrt_build.execute.gpus import gpu_slot, pool_devices, visible_devices
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import Task
from tftrt_build.store.locks import lock_file


def test_pool_devices() -> None:
    assert pool_devices(None, lambda: 4) == []
    assert pool_devices([0, 2], lambda: 4) == ["0", "2"]
    assert pool_devices("auto", lambda: 3) == ["0", "1", "2"]
    assert pool_devices("auto", lambda: 0) == []


def test_a_pool_device_is_numbered_as_this_process_sees_gpus() -> None:
    assert visible_devices("1", "4,5") == "5"
    assert visible_devices("0", "") == "0"
    assert visible_devices("3", "4,5") == "3"


@pytest.mark.parametrize("pool", [[], [0, 0], ["a"], "all", 2])
def test_a_bad_pool_is_refused(pool: object) -> None:
    with pytest.raises(ConfigError) as err:
        check_gpu_pool(ExecutorConf(gpu_pool=pool), "conf/executor/local.yaml")
    assert str(err.value).startswith("conf/executor/local.yaml: executor.gpu_pool: ")


def _hold(cache: str, devices: list[str], out: str, hold_s: float) -> None:
    """One job: take a GPU, prove nobody else has it while held, give it back."""
    waited = []
    with gpu_slot(Path(cache), "host:test", devices, lambda: waited.append(1), 0.05) as d:
        marker = Path(cache, f"gpu-{d}.held")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            Path(out, f"{os.getpid()}.clash").write_text(d)
            return
        os.close(fd)
        multiprocessing.Event().wait(hold_s)
        marker.unlink()
    Path(out, f"{os.getpid()}.done").write_text(f"{d} {len(waited)}")


def test_concurrent_jobs_never_share_a_gpu_and_extra_jobs_wait(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    cache.mkdir()
    out.mkdir()
    ctx = multiprocessing.get_context("spawn")
    jobs = [
        ctx.Process(target=_hold, args=(str(cache), ["0", "1"], str(out), 1.0)) for _ in range(5)
    ]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(120)
        assert j.exitcode == 0
    assert not list(out.glob("*.clash")), "two jobs held one GPU"
    done = [p.read_text().split() for p in out.glob("*.done")]
    assert len(done) == 5
    assert {d for d, _ in done} == {"0", "1"}
    # Five jobs, two GPUs: at least three found both taken and waited.
    assert sum(int(w) for _, w in done) >= 3


@pytest.mark.parametrize("worker", [WorkerMode.process, WorkerMode.fork])
def test_the_local_executor_shows_a_stage_only_its_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: WorkerMode
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")
    seen: list[str] = []

    class Started(Exception):
        pass

    def stage(cmd: list[str], env: dict[str, str], log: object, timeout: object) -> None:
        seen.append(env["CUDA_VISIBLE_DEVICES"])
        # The slot is held while the stage runs: another taker finds it locked.
        held = FileLock(lock_file(tmp_path, "gpu", f"{local.host_scope()}:1"))
        with pytest.raises(Timeout):
            held.acquire(timeout=0)
        raise Started

    def fork(self: object, task_file: str, env: dict[str, str], log: object) -> None:
        stage([], env, log, None)  # the environment the task's worker is started with

    monkeypatch.setattr(local, "stream", stage)
    monkeypatch.setattr(LocalExecutor, "_fork", fork)
    executor = LocalExecutor(cache_dir=tmp_path, gpu_pool=[1], worker=worker)
    with pytest.raises(Started):
        executor.run(Task("export", {}, title="export"), lambda line: None)
    # Device 1 of the pool is the second GPU this process was given.
    assert seen == ["7"]
    # Released when the stage ended, even by an exception.
    FileLock(lock_file(tmp_path, "gpu", f"{local.host_scope()}:1")).acquire(timeout=0)


def test_the_docker_executor_asks_the_engine_for_the_gpu_it_holds(tmp_path: Path) -> None:
    from tftrt_build.execute.docker import DockerExecutor

    executor = DockerExecutor(ExecutorConf(gpu_pool=[0, 1]), tmp_path)
    task = Task("convert", {}, title="convert")
    with executor._gpu(task, lambda line: None):
        (request,) = executor._device_requests()
        assert request["DeviceIDs"] == ["0"]
        with executor._gpu(task, lambda line: None):  # a second job of the sweep
            assert executor._device_requests()[0]["DeviceIDs"] == ["1"]
    # Without a stage running, the executor's own executor.gpus applies again.
    assert executor._device_requests()[0]["Count"] == 1
