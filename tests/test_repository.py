"""This repository as a project: its committed lock is current and its example conf/ resolves."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, Project


def test_committed_lock_is_up_to_date(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    result = repo.run("mode=check")
    assert result.code == 0, result.out + result.err
    assert "tftrt.lock is up to date" in result.out


def test_example_target_plans(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    result = repo.run("target=example", "mode=plan")
    assert result.code == 0, result.err
    assert "resnet50/native" in result.out and "demo/native" in result.out


def test_blog_model_must_be_pinned(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    result = repo.run("model=resnet_v2_blog", "mode=plan")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/resnet_v2_blog.yaml: model.source.sha256: is not set: an archive must be "
        "pinned by its sha256 (run mode=build once to be told the archive's sha256)"
    )
