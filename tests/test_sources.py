"""Archive and local-folder sources, through the CLI, with a real SavedModel (the demo's)."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project

pytestmark = pytest.mark.slow

MODEL = """\
name: {name}
source:
{source}
inputs:
  - {{name: {input}, dtype: float32, shape: [-1, 64, 64, 3]}}
outputs: [probabilities]
"""


@pytest.fixture
def saved_model(demo_build: Project) -> Path:
    """The demo's exported SavedModel as the cache holds it (the bundle adds warm-up records)."""
    lock = yaml.safe_load(demo_build.lock.read_text())
    key = lock["artifacts"]["demo/native"]["source"]["key"]
    return demo_build.cache / "objects" / key[:2] / key / "data"


def write_model(p: Project, name: str, source: dict[str, str], input_name: str = "image") -> None:
    body = "".join(f"  {k}: {v}\n" for k, v in source.items())
    folder = p.root / "conf" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        MODEL.format(name=name, source=body.rstrip("\n"), input=input_name)
    )


def make_archive(saved_model: Path, path: Path, folders: tuple[str, ...] = ("demo/1",)) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for folder in folders:
            tf.add(saved_model, arcname=folder)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact_digest(p: Project, artifact: str) -> str:
    lock = yaml.safe_load(p.lock.read_text())
    return str(lock["artifacts"][artifact]["convert"]["output"]["digest"])


def test_archive_by_path_and_url_give_the_exported_model(
    demo_build: Project, saved_model: Path, tmp_path: Path
) -> None:
    # Separate projects and caches: with one cache the second source would be a hit (same
    # sha256, same key) and nothing would be downloaded.
    by_path, by_url = make_project(tmp_path / "p"), make_project(tmp_path / "u")
    sha = make_archive(saved_model, tmp_path / "model.tar.gz")
    write_model(
        by_path, "m", {"kind": "archive", "path": str(tmp_path / "model.tar.gz"), "sha256": sha}
    )
    write_model(
        by_url, "m", {"kind": "archive", "url": f"file://{tmp_path}/model.tar.gz", "sha256": sha}
    )
    for p in (by_path, by_url):
        result = p.run("model=m")
        assert result.code == 0, result.err
    expected = artifact_digest(demo_build, "demo/native")
    assert artifact_digest(by_path, "m/native") == artifact_digest(by_url, "m/native") == expected
    assert (by_url.cache / "downloads" / sha).is_file()


def test_unpinned_archive_says_its_sha256_and_writes_nothing(
    saved_model: Path, tmp_path: Path
) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, tmp_path / "model.tar.gz")
    write_model(p, "unpinned", {"kind": "archive", "url": f"file://{tmp_path}/model.tar.gz"})
    result = p.run("model=unpinned")
    assert result.code == 2
    assert result.error_line == (
        f"conf/model/unpinned.yaml: model.source.sha256: is not set; "
        f"file://{tmp_path}/model.tar.gz has sha256 {sha}: add it to pin the archive"
    )
    assert p.leftovers() == [] and not list((p.cache / "downloads").iterdir())


def test_archive_with_wrong_sha256_fails(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, p.root / "model.tar.gz")
    write_model(p, "wrong", {"kind": "archive", "path": "model.tar.gz", "sha256": repr("0" * 64)})
    result = p.run("model=wrong")
    assert result.code == 1
    assert (
        f"has sha256 {sha}, but conf/model/wrong.yaml pins model.source.sha256 "
        in result.error_line
    )
    assert p.leftovers() == []


def test_archive_with_two_saved_models_needs_subdir(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, p.root / "two.tar.gz", ("m/1", "m/2"))
    write_model(p, "two", {"kind": "archive", "path": "two.tar.gz", "sha256": sha})
    result = p.run("model=two")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/two.yaml: model.source.subdir: the archive holds m/1, m/2; name the folder "
        "to use"
    )
    assert p.leftovers() == []
    assert p.run("model=two", "model.source.subdir=m/2").code == 0


def test_local_folder_is_copied_and_checked(
    demo_build: Project, saved_model: Path, tmp_path: Path
) -> None:
    p = make_project(tmp_path / "p")
    shutil.copytree(saved_model, p.root / "exported")
    write_model(p, "mine", {"kind": "local", "path": "exported"})
    result = p.run("model=mine")
    assert result.code == 0, result.err
    assert artifact_digest(p, "mine/native") == artifact_digest(demo_build, "demo/native")


def test_declared_input_missing_from_signature(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    shutil.copytree(saved_model, p.root / "exported")
    write_model(p, "misnamed", {"kind": "local", "path": "exported"}, input_name="imgae")
    result = p.run("model=misnamed")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/misnamed.yaml: model.inputs[0].name: 'imgae' is not an input of signature "
        "'serving_default' (inputs: image) (did you mean 'image'?)"
    )
    assert p.leftovers() == []
