"""This repository as a project: its committed lock is current and its example conf/ resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, Project


def test_committed_lock_is_up_to_date(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    for args in ([], ["target=example"]):
        result = repo.run("mode=check", *args)
        assert result.code == 0, result.out + result.err
        assert "tftrt.lock is up to date" in result.out


@pytest.mark.slow  # plans the example targets, probing TensorFlow
def test_example_targets_plan(tmp_path: Path) -> None:
    repo = Project(REPO, tmp_path / "cache")
    result = repo.run("target=example", "mode=plan")
    assert result.code == 0, result.err
    assert "resnet50/native" in result.out and "demo/native" in result.out
    gpu = repo.run("target=example_gpu", "mode=plan")
    assert gpu.code == 0, gpu.err
    assert "resnet50/fp16" in gpu.out and "resnet50/int8" in gpu.out


def test_design_card_resnet_fp16_says_how_to_pin(tmp_path: Path) -> None:
    """`tftrt-build model=resnet profile=fp16`, the design card's example, from this repository.

    The archive has no published digest, so the option ships unpinned: planning says how to pin
    it, and a build that cannot fetch the archive says so in the same line (the URL is replaced
    by a closed local port, so the test never downloads).
    """
    repo = Project(REPO, tmp_path / "cache")
    hint = (
        "(run tftrt-build mode=build once where the archive can be fetched and paste the sha256 "
        "it prints, or set model.source.sha256=<64 hex digits>)"
    )
    result = repo.run("model=resnet", "profile=fp16", "mode=plan")
    assert result.code == 2, result.err
    assert result.error_line == (
        "tftrt_build/conf/model/resnet.yaml: model.source.sha256: is not set: an archive must "
        f"be pinned by its sha256 {hint}"
    )
    offline = repo.run("model=resnet", "profile=fp16", "model.source.url=http://127.0.0.1:9/r.tgz")
    assert offline.code == 2, offline.err
    assert offline.error_line.startswith(
        "tftrt_build/conf/model/resnet.yaml: model.source.sha256: is not set, and getting the "
        "archive to compute it failed: cannot download http://127.0.0.1:9/r.tgz"
    )
    assert offline.error_line.endswith(hint)
    assert not (tmp_path / "cache" / "objects").exists()
