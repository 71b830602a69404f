"""Bundle files: rendered from protobuf/YAML, checked against TF Serving's and Compose's schemas."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import Project

from tftrt_build.config.schema import GpusConf
from tftrt_build.emit import render_all
from tftrt_build.emit.compose import gpu_devices
from tftrt_build.emit.models_config import parse
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.plan import make_plan
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import Lock


def compose_schema() -> dict:  # type: ignore[type-arg]
    import check_jsonschema

    path = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    return json.loads(path.read_text())


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def rendered(compose_request, catalogue: Project, *overrides: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    request = compose_request(catalogue.root, *overrides)
    store = Store(catalogue.cache, StatCache(None), readonly=True)
    plan = make_plan(request, store, LocalExecutor(), Lock())
    return plan.bundle.files


def test_multi_version_models_config_golden(compose_request, catalogue: Project, golden) -> None:  # type: ignore[no-untyped-def]
    files = rendered(compose_request, catalogue, "target=two_versions")
    text = files["config/models.config"]
    golden("two_versions.models.config", text)
    message = parse(text)
    (config,) = message.model_config_list.config
    assert config.name == "demo" and config.base_path == "/models/demo"
    assert list(config.model_version_policy.specific.versions) == [1, 2]
    assert dict(config.version_labels) == {"baseline": 1, "stable": 2}


def test_single_version_uses_latest_policy(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    files = rendered(compose_request, catalogue)
    (config,) = parse(files["config/models.config"]).model_config_list.config
    assert config.model_version_policy.latest.num_versions == 1


@pytest.mark.parametrize("target", ["two_versions", "two_models", "compose"])
def test_compose_file_is_valid_by_schema_and_by_compose(  # type: ignore[no-untyped-def]
    compose_request, catalogue: Project, tmp_path: Path, golden, target: str
) -> None:
    files = rendered(compose_request, catalogue, f"target={target}")
    text = files["docker-compose.yml"]
    if target == "two_versions":
        golden("two_versions.docker-compose.yml", text)
    jsonschema.validate(yaml.safe_load(text), compose_schema())
    (tmp_path / "docker-compose.yml").write_text(text)
    for folder in ("models", "config"):
        (tmp_path / folder).mkdir()
    proc = subprocess.run(
        [compose_binary(), "-f", tmp_path / "docker-compose.yml", "config", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr


def test_compose_binary_rejects_a_broken_file(tmp_path: Path) -> None:
    # The check above can fail: a service without an image is refused.
    (tmp_path / "docker-compose.yml").write_text("services:\n  s:\n    ports: [1]\n")
    proc = subprocess.run(
        [compose_binary(), "-f", tmp_path / "docker-compose.yml", "config", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0


@pytest.mark.parametrize(
    ("count", "ids", "expected"),
    [
        (None, [], [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]),
        ("all", [], [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]),
        (0, [], []),
        (
            None,
            ["0", "2"],
            [{"driver": "nvidia", "device_ids": ["0", "2"], "capabilities": ["gpu"]}],
        ),
    ],
)
def test_gpu_reservation(count: object, ids: list[str], expected: list[dict]) -> None:  # type: ignore[type-arg]
    assert gpu_devices(GpusConf(count=count, device_ids=ids)) == expected


def test_rendering_is_pure_and_stable(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(catalogue.root, "target=two_models")
    store = Store(catalogue.cache, StatCache(None), readonly=True)
    plan = make_plan(request, store, LocalExecutor(), Lock())
    assert render_all(plan.bundle.spec) == render_all(plan.bundle.spec) == plan.bundle.files
    assert not catalogue.cache.exists()
