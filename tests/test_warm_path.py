"""What the warm path must not load: TensorFlow, NumPy, matplotlib, the Docker SDK, a probe,
or the modules of other modes and commands.

Each run is a fresh ``tftrt-build`` process started through a small wrapper that, as the
process exits, writes which of those modules it had imported; the test process's own
``sys.modules`` says nothing about the CLI's. Speed itself is measured by benchmarks/bench.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, Result, make_project

from tftrt_build.config.runmode import may_set_run_mode
from tftrt_build.execute import versions
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import package_versions
from tftrt_build.stages.convert import ConvertContext
from tftrt_build.stages.tftrt import TftrtConverter

HEAVY = ("tensorflow", "keras", "numpy", "matplotlib", "docker")
# Modules of other commands and modes, and a live display a captured run never shows.
LATER = (
    "tftrt_build.review",
    "tftrt_build.cli.review",
    "tftrt_build.serve",
    "rich.progress",
    "rich._emoji_codes",
)
# What only a run that writes needs: plan, check and a no-op build take no inter-process lock.
WRITING = ("filelock",)
# Runs tftrt-build's console entry point; at exit, writes the heavy modules it imported.
WRAPPER = """
import atexit, json, os, sys
def report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(os.environ["HEAVY"])))
    heavy += sorted(set(sys.modules) & set(json.loads(os.environ["LATER"])))
    with open(os.environ["HEAVY_OUT"], "w") as f:
        json.dump(heavy, f)
atexit.register(report)
sys.argv = ["tftrt-build", *sys.argv[1:]]
from tftrt_build.cli.build import main
main()
"""


def run_watched(
    project: Project, tmp_path: Path, *args: str, later: tuple[str, ...] = LATER
) -> tuple[Result, list[str]]:
    """Run tftrt-build in the project; its result and the heavy modules it imported."""
    out = tmp_path / "heavy.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "TFTRT_CACHE_DIR": str(project.cache),
        "COLUMNS": "200",
        "HEAVY": json.dumps(HEAVY),
        "LATER": json.dumps(later),
        "HEAVY_OUT": str(out),
    }
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    heavy: list[str] = json.loads(out.read_text())
    return Result(proc.returncode, proc.stdout, proc.stderr), heavy


@pytest.mark.parametrize("args", [(), ("mode=check",), ("mode=plan",)])
def test_warm_path_imports_nothing_heavy(
    demo_build: Project, tmp_path: Path, args: tuple[str, ...]
) -> None:
    if not args:
        # Files hashed within a second of their writing are hashed again by the next run, which
        # records them in the stat cache (a write, under its lock): let that happen first.
        time.sleep(1.1)
        assert run_watched(demo_build, tmp_path)[0].code == 0
    result, heavy = run_watched(demo_build, tmp_path, *args, later=LATER + WRITING)
    assert result.code == 0, result.err
    if not args:
        assert "hit" in result.out and "built" not in result.out  # a no-op build
    assert heavy == []


def test_an_experiment_build_with_nothing_to_write_still_commits_under_the_locks(
    demo_build: Project, tmp_path: Path
) -> None:
    """An experiment's bundle on disk may be another process's, swapped in and not yet
    committed, and the lock (which an experiment leaves alone) would not tell: it goes the
    locked way even when nothing is to be written. The lock is the only user of filelock."""
    experiment = "target.warmup.enabled=false"
    for _ in range(2):  # writes the experiment's bundle, then settles the stat cache
        assert run_watched(demo_build, tmp_path, experiment)[0].code == 0
        time.sleep(1.1)
    result, seen = run_watched(demo_build, tmp_path, experiment, later=WRITING)
    assert result.code == 0, result.err
    assert "up to date" in result.out + result.err
    assert seen == ["filelock"]


# Runs tftrt-build's console entry point; at exit, writes how often Hydra composed the config.
COUNTING = """
import atexit, os, sys
from hydra._internal.hydra import Hydra
calls = []
original = Hydra.compose_config
def counted(self, *args, **kwargs):
    calls.append(kwargs.get("run_mode"))
    return original(self, *args, **kwargs)
Hydra.compose_config = counted
atexit.register(lambda: open(os.environ["COMPOSES_OUT"], "w").write(str(len(calls))))
sys.argv = ["tftrt-build", *sys.argv[1:]]
from tftrt_build.cli.build import main
main()
"""
# A user's option that makes every run a sweep: the one way a config file sets hydra.mode.
SWEEPING = "# @package _global_\nexecutor: {kind: local}\nhydra: {mode: MULTIRUN}\n"


def run_counted(project: Project, tmp_path: Path, *args: str) -> tuple[Result, int]:
    out = tmp_path / "composes"
    env = {**os.environ, "TFTRT_CACHE_DIR": str(project.cache), "COMPOSES_OUT": str(out)}
    proc = subprocess.run(
        [sys.executable, "-c", COUNTING, *args],
        cwd=project.root,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr), int(out.read_text())


@pytest.mark.slow  # three console-script runs
def test_hydra_composes_once_unless_a_users_value_could_set_the_run_mode(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    plain, composes = run_counted(project, tmp_path, "mode=plan")
    assert plain.code == 0, plain.err
    assert composes == 1  # Hydra's own get_mode would compose once more
    given, composes = run_counted(project, tmp_path, "mode=plan", "hydra.mode=RUN")
    assert given.code == 0, given.err
    assert composes == 2
    # A config file that sets hydra.mode is honoured: two jobs, without -m.
    (project.root / "conf" / "executor").mkdir(parents=True)
    (project.root / "conf" / "executor" / "sweeping.yaml").write_text(SWEEPING)
    swept, _ = run_counted(project, tmp_path, "mode=plan", "executor=sweeping", "profile=fp32,fp16")
    assert swept.code == 0, swept.err
    assert "profile=fp32" in swept.out and "profile=fp16" in swept.out


def test_only_a_users_mention_of_hydra_can_set_the_run_mode(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "mine.yaml").write_text("name: mine\n")
    assert not may_set_run_mode(["model=mine", "profile=fp16"], [conf, tmp_path / "missing"])
    assert may_set_run_mode(["hydra.mode=MULTIRUN"], [conf])
    assert may_set_run_mode(["++hydra.mode=RUN"], [conf])
    (conf / "executor").mkdir()
    (conf / "executor" / "sweeping.yaml").write_text(SWEEPING)
    assert may_set_run_mode([], [conf])
    (conf / "executor" / "sweeping.yaml").unlink()
    (conf / "hydra" / "launcher").mkdir(parents=True)
    (conf / "hydra" / "launcher" / "mine.yaml").write_text("n_jobs: 2\n")
    assert may_set_run_mode([], [conf])


GPU_TARGET = """\
name: gpu
kind: compose
image: tensorflow/serving:2.17.1-gpu
gpus: {count: 1, compute_capability: "8.6"}
bundle_dir: bundles/gpu
models:
  - model: demo
    versions:
      - {version: 1, profile: native}
      - {version: 2, profile: fp16}
"""


def test_tftrt_plan_against_a_lock_runs_no_probe(tmp_path: Path) -> None:
    # The lock records the toolchain demo/fp16 was converted with (on a GPU host); planning it
    # on this machine, with the same TensorFlow, needs no probe of what this machine can do.
    project = make_project(tmp_path / "gpu")
    (project.root / "conf" / "target").mkdir(parents=True)
    (project.root / "conf" / "target" / "gpu.yaml").write_text(GPU_TARGET)
    tensorflow = package_versions()["tensorflow"]
    project.lock.write_text(
        "schema: 1\nhash: blake3\nartifacts:\n  demo/fp16:\n    convert:\n      key: '0'\n"
        f"      toolchain: {{tensorflow: '{tensorflow}', tensorrt: 8.6.1, "
        "compute_capability: '8.6'}\n"
    )
    result, heavy = run_watched(project, tmp_path, "target=gpu", "mode=plan")
    assert result.code == 0, result.err
    assert "TF-TRT (TrtGraphConverterV2)" in result.out
    assert "toolchain" not in result.out  # the convert stage's key moved by its inputs only
    assert not (project.cache / "probes").exists()  # a probe would have left its record
    assert heavy == []


def _context(executor: LocalExecutor, recorded: dict[str, Any] | None) -> ConvertContext:
    def nowhere(path: str, key: str) -> Path:
        raise AssertionError(f"no file is needed: {path} ({key})")

    return ConvertContext(executor, nowhere, lambda path: "", "8.6", recorded)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each probe the local executor is asked for; it answers as a GPU host with TensorRT."""
    asked: list[int] = []

    def probe(self: LocalExecutor) -> Capabilities:
        asked.append(1)
        return Capabilities(package_versions()["tensorflow"], True, "8.6.1", True, "8.6.1")

    monkeypatch.setattr(LocalExecutor, "probe", probe)
    return asked


def test_the_recorded_toolchain_stands_while_tensorflow_is_the_recorded_one(
    probes: list[int],
) -> None:
    recorded = {
        "tensorflow": package_versions()["tensorflow"],
        "tensorrt": "8.6.1",
        "compute_capability": "8.6",
    }
    found = TftrtConverter().toolchain(_context(LocalExecutor(), dict(recorded)))
    assert found == recorded
    assert probes == []


@pytest.mark.parametrize(
    "recorded",
    [
        # Another TensorFlow converted it: its linked TensorRT may differ; ask this one.
        {"tensorflow": "2.16.1", "tensorrt": "8.6.1", "compute_capability": "8.6"},
        # Converted for another GPU architecture than the target now declares.
        {"tensorflow": "<this>", "tensorrt": "8.6.1", "compute_capability": "7.5"},
        # Converted by an executor with an identity (a Docker image), not this machine.
        {"tensorflow": "<this>", "tensorrt": "8.6.1", "compute_capability": "8.6", "image": "x"},
        None,  # building: always the probe
    ],
)
def test_anything_else_is_probed(probes: list[int], recorded: dict[str, Any] | None) -> None:
    tensorflow = package_versions()["tensorflow"]
    if recorded is not None and recorded["tensorflow"] == "<this>":
        recorded["tensorflow"] = tensorflow
    found = TftrtConverter().toolchain(_context(LocalExecutor(), recorded))
    assert probes == [1]
    assert found == {"tensorflow": tensorflow, "tensorrt": "8.6.1", "compute_capability": "8.6"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int]]:
    """sys.path of one folder, last changed a minute ago; reads of the package metadata."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    _backdate(folder)
    monkeypatch.setattr(sys, "path", [str(folder)])
    reads: list[int] = []

    def read() -> dict[str, str]:
        reads.append(1)
        return {"tensorflow": f"2.17.{len(reads)}"}

    monkeypatch.setattr(versions, "package_versions", read)
    return folder, reads


def _backdate(path: Path) -> None:
    past = time.time() - 60
    os.utime(path, (past, past))


def test_package_versions_are_kept_while_nothing_is_installed(
    tmp_path: Path, site: tuple[Path, list[int]]
) -> None:
    folder, reads = site
    cache = tmp_path / "cache"
    cache.mkdir()
    first = versions.installed_versions(cache)
    assert versions.installed_versions(cache) == first
    assert reads == [1]
    # Installing a package adds a dist-info folder: its folder on sys.path changes.
    (folder / "tensorflow-2.18.0.dist-info").mkdir()
    _backdate(folder)
    assert versions.installed_versions(cache) == {"tensorflow": "2.17.2"}
    assert reads == [1, 1]


def test_package_versions_of_a_folder_changed_just_now_are_read_again(
    tmp_path: Path, site: tuple[Path, list[int]]
) -> None:
    folder, reads = site
    (folder / "keras-3.0.0.dist-info").mkdir()  # changed now: racily clean
    cache = tmp_path / "cache"
    cache.mkdir()
    versions.installed_versions(cache)
    versions.installed_versions(cache)
    assert reads == [1, 1]


def test_the_bench_measures_dvc_with_bytecode_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dvc anchor once ran with the shell's PYTHONDONTWRITEBYTECODE=1, compiling every
    module of dvc on every run (3.0 s instead of 1.2 s): the goal's ratio looked better."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench", bench)  # its dataclasses look themselves up
    spec.loader.exec_module(bench)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = bench.measured_env(bench.DVC_ENV)
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["DVC_NO_ANALYTICS"] == "1" and env["PYTHONPYCACHEPREFIX"]
