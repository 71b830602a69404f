"""Helpers for mode=diff tests: real git repositories in tmp_path, locks written from plans.

A lock written here is what ``mode=build`` writes for the same configs minus the output
digests a build adds (``ArtifactPlan.to_lock`` and ``BundlePlan.to_lock``, the very records
``build`` stores): the diff compares keys, configs, inputs and serving records, never outputs,
so no TensorFlow export or TF-TRT conversion is needed to make one. ``test_diff.py`` also
diffs against a lock a real build wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES, Project

REVIEW = FIXTURES / "review"
# Commits with fixed names and dates, and no user or system git config in the way.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Reviewer",
    "GIT_AUTHOR_EMAIL": "reviewer@example.invalid",
    "GIT_COMMITTER_NAME": "Reviewer",
    "GIT_COMMITTER_EMAIL": "reviewer@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.run(
        ["git", *args], cwd=root, env={**env, **GIT_ENV}, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def init_repo(root: Path, branch: str = "main") -> None:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def plan_lock(root: Path, cache: Path, *overrides: str) -> dict[str, Any]:
    """The lock mode=build would write in ``root`` for these overrides, as plain data."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from tftrt_build import job
    from tftrt_build.cli.app import to_config
    from tftrt_build.config.options import HydraOptions
    from tftrt_build.config.resolve import resolve
    from tftrt_build.config.schema import register_configs

    register_configs()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("TFTRT_CACHE_DIR", str(cache))
        GlobalHydra.instance().clear()
        try:
            with initialize_config_module("tftrt_build.conf", version_base="1.3"):
                cfg = compose("tftrt_build", list(overrides), return_hydra_config=True)
                choices = dict(cfg.hydra.runtime.choices)
                with open_dict(cfg):
                    del cfg["hydra"]
                options = HydraOptions()
                request = resolve(to_config(cfg, choices, options), choices, options, root)
                plan, _, _ = job.plan_request(request)
        finally:
            GlobalHydra.instance().clear()
    return {
        "artifacts": {a.id: _lock_entry(a) for a in plan.artifacts},
        "bundles": {plan.bundle_id: plan.bundle.to_lock()},
    }


def _lock_entry(art: Any) -> dict[str, Any]:
    """The artifact's lock entry, with the output digests a build records where the (shared)
    cache already holds the stage: a lock that leaves them out reads as edited."""
    from tftrt_build.build.artifacts import ArtifactResult
    from tftrt_build.plan.keys import plain
    from tftrt_build.store.cache import tree_record

    if art.convert.entry is not None:
        return ArtifactResult(art, art.convert.entry, built=False, seconds=0.0).to_lock()
    entry: dict[str, Any] = art.to_lock()
    if art.source.entry is not None:
        entry["source"]["output"] = plain(tree_record(art.source.entry.tree))
    return entry


def write_lock(root: Path, data: dict[str, Any]) -> None:
    from tftrt_build.store.lock import Lock

    (root / "tftrt.lock").write_text(Lock(data["artifacts"], data["bundles"]).to_yaml())


def read_lock_data(root: Path) -> dict[str, Any]:
    data = yaml.safe_load((root / "tftrt.lock").read_text())
    assert isinstance(data, dict)
    return data


def review_repo(root: Path, cache: Path) -> Project:
    """A git repository whose main branch holds tests/fixtures/review and its planned lock."""
    init_repo(root)
    shutil.copytree(REVIEW, root, dirs_exist_ok=True)
    write_lock(root, plan_lock(root, cache, "target=prod"))
    commit(root, "prod: tiny and demo")
    return Project(root, cache)


def feature_changes(root: Path) -> None:
    """What the feature branch changes: export args, profile keys, labels, versions, batching."""
    conf = root / "conf"
    edit(conf / "model" / "tiny.yaml", "classes: 10", "classes: 12")
    edit(conf / "profile" / "trt16.yaml", "Range}", "Range, minimum_segment_size: 5}")
    (conf / "profile" / "trt16.yaml").write_text(
        (conf / "profile" / "trt16.yaml").read_text() + "tolerance: {atol: 0.05}\n"
    )
    target = conf / "target" / "prod.yaml"
    edit(target, "batch_timeout_micros: 1000}", "batch_timeout_micros: 2000, num_batch_threads: 8}")
    edit(
        target,
        "      - {version: 2, profile: fp32}\n    labels: {stable: 1, canary: 2}",
        "    labels: {stable: 1}",
    )
    edit(target, "labels: {baseline: 1, stable: 2, canary: 3}", "labels: {baseline: 1, stable: 3}")


Keys = Callable[[str], str]


def keys_of(data: dict[str, Any]) -> Keys:
    """An artifact's convert key (12 characters, as the diff shows it) in a lock's data."""
    return lambda artifact: str(data["artifacts"][artifact]["convert"]["key"])[:12]
