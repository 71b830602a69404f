"""Sweeps through Hydra's launchers: jobs in parallel write the same tftrt.lock as jobs in turn.

The Ray case starts its own one-node cluster on 127.0.0.1 (from another folder than the
project, as an existing cluster would be) and stops it by process group.

Four native jobs (two exported models x two targets, each with a bundle of its own) run with
hydra/launcher=joblib (n_jobs=2) in one project and one after another (the basic launcher)
in another, sharing the session's cache; the two locks must be equal byte for byte, and each
sweep ends with one summary table of all four jobs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, make_project

pytestmark = pytest.mark.slow

SWEEP = ["-m", "model=demo,tiny", "target=compose,compose_cpu"]
BUNDLES = ["demo-native", "demo-native-cpu", "tiny-native", "tiny-native-cpu"]


def sweep(root: Path, cache: Path, *launcher: str, env: dict[str, str] | None = None) -> Project:
    p = make_project(root, "catalogue")
    p.cache = cache
    result = p.run(*SWEEP, *launcher, env=env, timeout=900)
    assert result.code == 0, result.err
    # One table for the whole sweep, whichever processes ran the jobs.
    assert result.out.count("tftrt-build sweep") == 1, result.out
    assert result.out.count("┃ job ") == 1, result.out
    for job in ("model=demo target=compose ", "model=tiny target=compose_cpu"):
        assert job in result.out
    assert sorted(d.name for d in (root / "bundles").iterdir()) == BUNDLES
    return p


def test_joblib_sweep_writes_the_lock_a_serial_sweep_writes(
    tmp_path: Path, shared_cache: Path
) -> None:
    # Parallel first: its jobs build the two models while the others wait on the key locks.
    parallel = sweep(
        tmp_path / "parallel", shared_cache, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    serial = sweep(tmp_path / "serial", shared_cache)
    assert parallel.lock.read_bytes() == serial.lock.read_bytes()
    lock = parallel.lock.read_text()
    for bundle in BUNDLES:
        assert f"bundles/{bundle}:" in lock


# Ray on loopback only, with no token written to ~/.ray (see README "Scaling out").
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
HAVE_RAY = all(
    importlib.util.find_spec(m) is not None for m in ("ray", "hydra_plugins.hydra_ray_launcher")
)


@pytest.fixture
def ray_cluster(tmp_path: Path, shared_cache: Path) -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1, started from another folder than the project's;
    its address. Stopped by its process group, never with `ray stop` (that stops every
    cluster of the host)."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed: pip install 'tftrt-build[ray]' (.ci/run installs it)")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray
    # Ray's socket paths must stay short: its temp folder is not under pytest's deep tmp_path.
    temp = Path(tempfile.mkdtemp(prefix="tftrt-ray-"))
    elsewhere = tmp_path / "cluster-cwd"
    elsewhere.mkdir()
    env = {**os.environ, **RAY_ENV, "TFTRT_CACHE_DIR": str(shared_cache)}
    start = subprocess.run(
        [ray, "start", "--head", "--port=0", "--num-cpus=2", f"--temp-dir={temp}",
         "--disable-usage-stats", "--include-dashboard=false"],
        env=env, cwd=elsewhere, capture_output=True, text=True, timeout=180,
        start_new_session=True,
    )  # fmt: skip
    groups = _ray_groups(temp)
    try:
        assert start.returncode == 0, start.stderr
        yield (temp / "ray_current_cluster").read_text().strip()
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups or _ray_groups(temp):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
            time.sleep(5)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_groups(temp: Path) -> set[int]:
    """Process groups of the cluster's daemons: they name its temp folder on their command line."""
    out = subprocess.run(["ps", "-ww", "-eo", "pgid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if str(temp) in line}


def test_ray_sweep_writes_the_lock_a_serial_sweep_writes(
    tmp_path: Path, shared_cache: Path, ray_cluster: str
) -> None:
    sweep_dir = tmp_path / "ray-sweep"
    ray = sweep(
        tmp_path / "ray",
        shared_cache,
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_cluster}",
        "++hydra.launcher.ray.init.object_store_memory=null",
        f"hydra.sweep.dir={sweep_dir}",
        env=RAY_ENV,
    )
    serial = sweep(tmp_path / "serial", shared_cache)
    assert ray.lock.read_bytes() == serial.lock.read_bytes()
    assert len(list(sweep_dir.glob("*/tftrt-outcome.json"))) == 4
