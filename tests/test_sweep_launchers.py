"""Sweeps through Hydra's launchers: jobs in parallel write the same tftrt.lock as jobs in turn.

Four native jobs (two exported models x two targets, each with a bundle of its own) run with
hydra/launcher=joblib (n_jobs=2) in one project and one after another (the basic launcher)
in another, sharing the session's cache; the two locks must be equal byte for byte, and each
sweep ends with one summary table of all four jobs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project, make_project

pytestmark = pytest.mark.slow

SWEEP = ["-m", "model=demo,tiny", "target=compose,compose_cpu"]
BUNDLES = ["demo-native", "demo-native-cpu", "tiny-native", "tiny-native-cpu"]


def sweep(root: Path, cache: Path, *launcher: str) -> Project:
    p = make_project(root, "catalogue")
    p.cache = cache
    result = p.run(*SWEEP, *launcher)
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
