"""Config input that is accepted takes effect: listed targets' overrides, paths, samples, locks.

The refusals are in tests/reliability/test_bad_input.py; these are the other half of the rule,
that what is accepted does what it says (and that nothing valid is refused).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import GOLDEN, REPO, Project

from tftrt_build.config.paths import BUILTIN_CONF, display_path, lock_key
from tftrt_build.config.yamlguard import yaml_problem
from tftrt_build.stages.samples import make
from tftrt_build.store.lock import Lock, read_lock
from tftrt_build.store.lockcheck import shape_problem


def _artifacts(request) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {a.id: a for a in request.artifacts}


def test_listed_target_applies_overrides_to_the_chosen_model(
    compose_request, catalogue: Project
) -> None:  # type: ignore[no-untyped-def]
    plain = _artifacts(compose_request(catalogue.root, "target=serving"))
    changed = _artifacts(
        compose_request(
            catalogue.root, "target=serving", "model=demo", "model.source.args.classes=5"
        )
    )
    assert plain["demo/native"].model.source.args["classes"] == 10  # type: ignore[attr-defined]
    assert changed["demo/native"].model.source.args["classes"] == 5  # type: ignore[attr-defined]
    # The other listed model is left as its file says.
    assert changed["resnet50/native"].model == plain["resnet50/native"].model  # type: ignore[attr-defined]


def test_listed_target_applies_profile_overrides_to_entries_of_that_profile(
    compose_request, catalogue: Project
) -> None:  # type: ignore[no-untyped-def]
    arts = _artifacts(
        compose_request(
            catalogue.root,
            "target=serving",
            "profile=fp16",
            "profile.trt.minimum_segment_size=5",
            "+profile.tolerance.top1_agreement=0.9",
        )
    )
    fp16 = arts["resnet50/fp16"].profile  # type: ignore[attr-defined]
    assert fp16.trt.minimum_segment_size == 5
    assert fp16.tolerance.top1_agreement == 0.9
    assert arts["resnet50/native"].profile.trt.minimum_segment_size == 3  # type: ignore[attr-defined]


def test_listed_target_delete_override(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    arts = _artifacts(
        compose_request(
            catalogue.root, "target=two_models", "model=tiny", "~model.source.args.width"
        )
    )
    assert "width" not in arts["tiny/native"].model.source.args  # type: ignore[attr-defined]


def test_chosen_option_without_overrides_is_accepted(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(catalogue.root, "target=serving", "model=demo", "profile=native")
    assert sorted(_artifacts(request)) == ["demo/native", "resnet50/fp16", "resnet50/native"]


def test_defaults_written_out_are_not_refused(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    # A key another kind reads counts as written only when it differs from the schema default.
    (artifact,) = compose_request(
        project.root,
        "model.samples.path=null",
        "profile.batch_sizes=[]",
        "profile.trt.minimum_segment_size=3",
        "target.k8s.namespace=default",
        "executor.image=tftrt-build/gpu:2.17.1-trt8.6.1",
    ).artifacts
    assert artifact.id == "demo/native"


def test_allowed_outside_bundle_is_keyed_without_its_path(
    compose_request, project: Project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "elsewhere" / "bundle"
    request = compose_request(
        project.root, f"target.bundle_dir={outside}", "allow_outside_project=true"
    )
    assert request.bundle_dir == outside
    key = lock_key(request.bundle_dir, request.project)
    assert key.startswith("outside-project/bundle-") and str(tmp_path) not in key
    assert shape_problem({"bundles": {key: {"key": "k"}}}) is None


def test_bundle_dir_is_normalised_before_it_becomes_a_key(
    compose_request, project: Project
) -> None:  # type: ignore[no-untyped-def]
    request = compose_request(project.root, "target.bundle_dir=bundles/../bundles/x")
    assert lock_key(request.bundle_dir, request.project) == "bundles/x"


@pytest.mark.parametrize(
    "lock_file", [GOLDEN / "demo-native.tftrt.lock", REPO / "tftrt.lock"], ids=["golden", "repo"]
)
def test_locks_tftrt_build_writes_have_the_checked_shape(lock_file: Path) -> None:
    data = yaml.safe_load(lock_file.read_text())
    assert shape_problem(data) is None
    assert read_lock(lock_file).artifacts


def test_lock_round_trip_keeps_its_shape(tmp_path: Path) -> None:
    lock = read_lock(GOLDEN / "demo-native.tftrt.lock")
    again = Lock.from_yaml(lock.to_yaml(), "x")
    assert again == lock


def test_yaml_anchors_within_the_budget_are_fine() -> None:
    text = "base: &b {a: 1, b: [1, 2, 3]}\nother: *b\nthird: *b\n"
    assert yaml_problem(text.encode()) is None


def test_builtin_resnet_samples_are_found_from_any_project(tmp_path: Path) -> None:
    inputs = [{"name": "image_bytes", "dtype": "string", "shape": [-1]}]
    samples = {"kind": "file", "path": "models/samples/resnet_jpeg.npz", "count": 4}
    batch = make(inputs, samples, rows=6, project=tmp_path)["image_bytes"]
    assert batch.shape == (6,)
    for item in batch:
        data = bytes(item)
        assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")  # a whole JPEG
    with np.load(REPO / "models" / "samples" / "resnet_jpeg.npz") as shipped:
        assert len(shipped["image_bytes"]) == 4


def test_builtin_config_is_named_by_package_wherever_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI installs into `.venv/` inside the clone, so the built-in config sits under the working
    folder there; messages still name it `tftrt_build/conf/...`, as they do elsewhere."""
    resnet = BUILTIN_CONF / "model" / "resnet.yaml"
    monkeypatch.chdir(BUILTIN_CONF.parent.parent)
    assert display_path(resnet) == "tftrt_build/conf/model/resnet.yaml"
    monkeypatch.chdir(BUILTIN_CONF.parent.parent.parent)
    assert display_path(resnet) == "tftrt_build/conf/model/resnet.yaml"


def test_experiment_bundle_goes_beside_the_target_but_diff_compares_the_committed_one(
    compose_request, project: Project
) -> None:  # type: ignore[no-untyped-def]
    committed = project.root / "bundles" / "demo-native"
    assert compose_request(project.root).bundle_dir == committed
    exp = compose_request(project.root, "target.ports.rest=9501")
    assert exp.bundle_dir.parent == project.root / "bundles" / "experiments"
    assert exp.bundle_dir.name.startswith("demo-native-") and not exp.records
    assert exp.experiment == ("target.ports.rest=9501",)
    # Choosing options and settings of how to build are not experiments.
    plain = compose_request(project.root, "profile=native", "executor.timeout_s=60")
    assert plain.bundle_dir == committed and plain.records
    diff = compose_request(project.root, "mode=diff", "target.ports.rest=9501")
    assert diff.bundle_dir == committed
    recorded = compose_request(project.root, "target.ports.rest=9501", "record=true")
    assert recorded.bundle_dir == committed and recorded.records
    chosen = compose_request(project.root, "target.ports.rest=9501", "target.bundle_dir=b/x")
    assert chosen.bundle_dir == project.root / "b" / "x" and not chosen.records


@pytest.mark.slow  # two console-script runs
def test_hydra_searchpath_reaches_the_options_a_target_lists(project: Project) -> None:
    """An option found only on a folder the user adds to Hydra's search path is listable."""
    extra = project.root.parent / "shared-conf"
    (extra / "model").mkdir(parents=True)
    (extra / "model" / "shared.yaml").write_text(
        "name: shared\nsource: {kind: export, script: models/demo.py, "
        "args: {image_size: 8, classes: 2}}\ninputs: [{name: image, dtype: float32, "
        "shape: [-1, 8, 8, 3]}]\n"
    )
    (project.root / "conf" / "target").mkdir(parents=True)
    (project.root / "conf" / "target" / "t.yaml").write_text(
        "name: t\nbundle_dir: bundles/t\nmodels:\n"
        "  - model: shared\n    versions: [{version: 1, profile: native}]\n"
    )
    without = project.run("mode=plan", "target=t")
    assert without.code == 2
    assert "target.models[0].model: no model option 'shared'" in without.error_line
    added = project.run("mode=plan", "target=t", f"hydra.searchpath=[file://{extra}]")
    assert added.code == 0, added.err
    assert "shared/native" in added.out


def test_loading_listed_options_leaves_the_composed_config_as_it_was(
    catalogue: Project, in_project: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Options load inside the composed config itself (no copy); each load puts it back."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from tftrt_build.cli.app import prepare
    from tftrt_build.config.options import HydraOptions
    from tftrt_build.errors import ConfigError

    monkeypatch.chdir(catalogue.root)
    overrides = ["target=two_models", "model=tiny", "model.source.args.width=5"]
    prepare(overrides)
    GlobalHydra.instance().clear()
    with initialize_config_module("tftrt_build.conf", version_base="1.3"):
        cfg = compose("tftrt_build", overrides, return_hydra_config=True)
        with open_dict(cfg):
            del cfg["hydra"]
        before = OmegaConf.to_yaml(cfg)
        options = HydraOptions(cfg, [], overrides)
        assert options.model("tiny").source.args["width"] == 5  # the command line's override
        assert options.model("demo").name == "demo"
        assert options.profile("native").name == "native"
        with pytest.raises(ConfigError):
            options.model("typo_key")  # a failing load puts the composed node back too
        assert OmegaConf.to_yaml(cfg) == before


def test_a_path_of_an_unknown_users_home_is_a_folder_of_that_name(tmp_path: Path) -> None:
    """Was an internal error: expanduser raises for ~user of no such user. The OS (and Hydra,
    which makes the run folder from the same text) take it as a folder's name."""
    from tftrt_build.config.paths import under

    assert under(tmp_path, "~no-such-user-here/cache") == tmp_path / "~no-such-user-here/cache"
    assert under(tmp_path, "~/cache") == Path.home() / "cache"
