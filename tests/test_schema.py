"""Every config group and option, composed with Hydra's compose API and resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project

from tftrt_build.config.paths import BUILTIN_CONF
from tftrt_build.config.schema import ConverterKind, Mode, SourceKind, TargetKind


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (BUILTIN_CONF / group).glob("*.yaml"))


def test_defaults(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(project.root)
    assert request.mode is Mode.build
    assert [a.id for a in request.artifacts] == ["demo/native"]
    assert request.bundle_dir == project.root / "bundles" / "demo-native"
    assert request.cache_dir == Path(project.cache)  # TFTRT_CACHE_DIR unset: .tftrt-cache
    assert request.target.kind is TargetKind.compose


@pytest.mark.parametrize("name", options("model"))
def test_every_builtin_model(compose_request, project: Project, name: str) -> None:  # type: ignore[no-untyped-def]
    (artifact,) = compose_request(project.root, f"model={name}").artifacts
    assert artifact.model.name == name
    # resnet is the blog post's published SavedModel; the others are exported here.
    kind = SourceKind.archive if name == "resnet" else SourceKind.export
    assert artifact.model.source.kind is kind
    assert artifact.model_option.file == f"tftrt_build/conf/model/{name}.yaml"


@pytest.mark.parametrize("name", options("profile"))
def test_every_builtin_profile(compose_request, project: Project, name: str) -> None:  # type: ignore[no-untyped-def]
    (artifact,) = compose_request(project.root, f"profile={name}").artifacts
    assert artifact.profile.name == name
    assert isinstance(artifact.profile.converter, ConverterKind)


@pytest.mark.parametrize("name", options("target"))
def test_every_builtin_target(compose_request, project: Project, name: str) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(project.root, f"target={name}")
    assert request.target.name == name
    assert request.target.image.split(":")[-1] not in ("", "latest")


@pytest.mark.parametrize("name", options("executor"))
def test_every_builtin_executor(compose_request, project: Project, name: str) -> None:  # type: ignore[no-untyped-def]
    assert compose_request(project.root, f"executor={name}").executor.kind.value == name


def test_project_options_sit_beside_builtin_ones(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(catalogue.root, "target=two_versions")
    assert [(v.version, v.artifact.id) for v in request.served[0].versions] == [
        (1, "demo/native"),
        (2, "demo/fast"),
    ]
    assert request.served[0].labels == {"baseline": 1, "stable": 2}
    fast = request.served[0].versions[1].artifact
    assert fast.profile_option.file == "conf/profile/fast.yaml"
    assert fast.model_option.file == "tftrt_build/conf/model/demo.yaml"


def test_project_option_replaces_builtin_of_same_name(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    folder = project.root / "conf" / "profile"
    folder.mkdir(parents=True)
    (folder / "native.yaml").write_text("name: native\nconverter: native\nmax_batch_size: 32\n")
    (artifact,) = compose_request(project.root).artifacts
    assert artifact.profile.max_batch_size == 32
    assert artifact.profile_option.file == "conf/profile/native.yaml"


def test_overrides_reach_the_typed_config(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(
        project.root, "mode=plan", "model.source.args.classes=3", "target.ports.rest=9501"
    )
    assert request.mode is Mode.plan
    assert request.artifacts[0].model.source.args["classes"] == 3
    assert request.target.ports.rest == 9501
