"""This repository as a project: its committed lock is current and its example conf/ resolves."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, Project


def test_committed_lock_is_up_to_date(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    for args in ([], ["target=example"]):
        result = repo.run("mode=check", *args)
        assert result.code == 0, result.out + result.err
        assert "tftrt.lock is up to date" in result.out


def test_example_targets_plan(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    result = repo.run("target=example", "mode=plan")
    assert result.code == 0, result.err
    assert "resnet50/native" in result.out and "demo/native" in result.out
    gpu = repo.run("target=example_gpu", "mode=plan")
    assert gpu.code == 0, gpu.err
    assert "resnet50/fp16" in gpu.out and "resnet50/int8" in gpu.out


def test_blog_model_must_be_pinned(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    # Its string input would also need sample files for warm-up records: a separate error.
    result = repo.run("model=resnet_v2_blog", "mode=plan", "target.warmup.enabled=false")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/resnet_v2_blog.yaml: model.source.sha256: is not set: an archive must be "
        "pinned by its sha256 (run mode=build once to be told the archive's sha256)"
    )
