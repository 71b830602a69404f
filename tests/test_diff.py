"""mode=diff: a pull request's configs and lock against its base, in real git repositories.

The repositories are made with git itself in tmp_path: a main branch with
tests/fixtures/review and its lock, a feature branch that changes a model's export args,
profile keys, labels, versions and batching. The diff plans the working tree (no building) and
reads the base lock from git; each test asserts on the exact output.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project
from reviewing import (
    commit,
    edit,
    feature_changes,
    git,
    init_repo,
    keys_of,
    plan_lock,
    read_lock_data,
    review_repo,
    write_lock,
)

from tftrt_build.config.schema import DiffWarning
from tftrt_build.review.checks import find_warnings
from tftrt_build.review.compare import compare_artifacts, compare_serving
from tftrt_build.review.sides import Side
from tftrt_build.store.lock import Lock


@dataclass
class Scenario:
    project: Project
    base: dict[str, Any]  # the lock on main, as data
    head: dict[str, Any]  # the lock on the feature branch
    merge_base: str

    @property
    def root(self) -> Path:
        return self.project.root


@pytest.fixture(scope="module")
def feature(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Scenario:
    """main: prod as in the fixture; feature: feature_changes() with its lock updated."""
    root = tmp_path_factory.mktemp("review") / "repo"
    project = review_repo(root, shared_cache)
    base = read_lock_data(root)
    git(root, "checkout", "-q", "-b", "feature")
    feature_changes(root)
    write_lock(root, plan_lock(root, shared_cache, "target=prod"))
    commit(root, "prod: classes 12, trt16 tuned, demo stable on INT8, tiny canary gone")
    return Scenario(project, base, read_lock_data(root), git(root, "rev-parse", "main"))


def test_feature_branch_text(feature: Scenario) -> None:
    result = feature.project.run("mode=diff")
    b, h = keys_of(feature.base), keys_of(feature.head)
    assert result.out == (
        "tftrt-build diff: the working tree's configs compared with tftrt.lock at main "
        f"(merge-base {feature.merge_base[:12]})\n"
        "\n"
        "bundles/prod (target prod): changed; artifacts: 1 removed, 2 rebuilt, 2 unchanged\n"
        "  artifacts:\n"
        f"    removed    tiny/fp32    FP32  {b('tiny/fp32')}\n"
        f"    rebuilt    demo/trt16   FP16  {b('demo/trt16')} -> {h('demo/trt16')}\n"
        "      profile.tolerance.atol: null -> 0.05\n"
        "      profile.trt.minimum_segment_size: 3 -> 5\n"
        f"    rebuilt    tiny/native  FP32  {b('tiny/native')} -> {h('tiny/native')}\n"
        "      model.source.args.classes: 10 -> 12\n"
        f"    unchanged  demo/native  FP32  {b('demo/native')}\n"
        f"    unchanged  demo/trt8    INT8  {b('demo/trt8')}\n"
        "  TF Serving:\n"
        "    version tiny:2: removed, was tiny/fp32 (FP32)\n"
        "    label demo:canary: removed, was version 3 (INT8)\n"
        "    label demo:stable: version 2 (FP16) -> version 3 (INT8)\n"
        "    label tiny:canary: removed, was version 2 (FP32)\n"
        "    batching.batch_timeout_micros: 1000 -> 2000\n"
        "    batching.num_batch_threads: 4 -> 8\n"
        "    file config/batching.config: changed\n"
        "    file config/models.config: changed\n"
        "    file docker-compose.yml: changed\n"
        "\n"
        "warnings:\n"
        "  BLOCKING label_dangling: bundles/prod: tiny version 2 is removed, and so is label "
        "'canary' that pointed at it: requests for /v1/models/tiny/labels/canary will fail\n"
        "  precision_lowered: bundles/prod: label 'stable' of demo moved from version 2 (FP16) "
        "to 3 (INT8)\n"
        "  tolerance_loosened: bundles/prod: demo/trt16: the correctness check allows more: "
        "atol 0.01 -> 0.05\n"
        "\n"
        "1 target: 1 changed, 0 unchanged; 3 warnings, 1 blocking (diff.blocking)\n"
    )
    # label_dangling blocks by default.
    assert result.code == 1, result.err


def test_feature_branch_json(feature: Scenario) -> None:
    result = feature.project.run("mode=diff", "diff.format=json")
    assert result.code == 1, result.err
    doc = json.loads(result.out)
    b, h = feature.base["artifacts"], feature.head["artifacts"]

    def key(lock: dict[str, Any], artifact: str) -> str:
        return str(lock[artifact]["convert"]["key"])

    def change(path: str, before: Any, after: Any) -> dict[str, Any]:
        return {"path": path, "kind": "changed", "before": before, "after": after}

    def artifact(
        id_: str, status: str, before: Any, after: Any, precision: str, **found: Any
    ) -> dict[str, Any]:
        lists = {"config": [], "files": [], "toolchain": [], "inputs": [], **found}
        return {
            "id": id_,
            "status": status,
            "key": {"before": before, "after": after},
            "precision": precision,
            **lists,
        }

    assert doc["base"] == {
        "description": f"tftrt.lock at main (merge-base {feature.merge_base[:12]})",
        "ref": "main",
        "commit": feature.merge_base,
        "path": "tftrt.lock",
        "found": True,
    }
    assert (doc["changed"], doc["blocking"], doc["schema"], doc["notes"]) == (True, 1, 1, [])
    (target,) = doc["targets"]
    assert (target["bundle"], target["target"], target["status"]) == (
        "bundles/prod",
        "prod",
        "changed",
    )
    assert target["key"]["before"] == feature.base["bundles"]["bundles/prod"]["key"]
    assert target["key"]["after"] == feature.head["bundles"]["bundles/prod"]["key"]
    assert target["artifacts"] == [
        artifact("tiny/fp32", "removed", key(b, "tiny/fp32"), None, "FP32"),
        artifact(
            "demo/trt16",
            "rebuilt",
            key(b, "demo/trt16"),
            key(h, "demo/trt16"),
            "FP16",
            config=[
                change("profile.tolerance.atol", None, 0.05),
                change("profile.trt.minimum_segment_size", 3, 5),
            ],
        ),
        artifact(
            "tiny/native",
            "rebuilt",
            key(b, "tiny/native"),
            key(h, "tiny/native"),
            "FP32",
            config=[change("model.source.args.classes", 10, 12)],
        ),
        artifact("demo/native", "unchanged", key(b, "demo/native"), key(h, "demo/native"), "FP32"),
        artifact("demo/trt8", "unchanged", key(b, "demo/trt8"), key(h, "demo/trt8"), "INT8"),
    ]
    files = {
        path: (digest, feature.head["bundles"]["bundles/prod"]["files"][path])
        for path, digest in feature.base["bundles"]["bundles/prod"]["files"].items()
    }
    assert target["serving"] == [
        {
            "what": "version",
            "item": "tiny:2",
            "change": "removed",
            "before": {"artifact": "tiny/fp32", "precision": "FP32"},
            "after": None,
        },
        {
            "what": "label",
            "item": "demo:canary",
            "change": "removed",
            "before": {"version": 3, "precision": "INT8"},
            "after": None,
        },
        {
            "what": "label",
            "item": "demo:stable",
            "change": "moved",
            "before": {"version": 2, "precision": "FP16"},
            "after": {"version": 3, "precision": "INT8"},
        },
        {
            "what": "label",
            "item": "tiny:canary",
            "change": "removed",
            "before": {"version": 2, "precision": "FP32"},
            "after": None,
        },
        {
            "what": "parameter",
            "item": "batching.batch_timeout_micros",
            "change": "changed",
            "before": 1000,
            "after": 2000,
        },
        {
            "what": "parameter",
            "item": "batching.num_batch_threads",
            "change": "changed",
            "before": 4,
            "after": 8,
        },
        *(
            {"what": "file", "item": path, "change": "changed", "before": old, "after": new}
            for path, (old, new) in sorted(files.items())
            if old != new
        ),
    ]
    assert doc["warnings"] == [
        {
            "kind": "label_dangling",
            "bundle": "bundles/prod",
            "message": "tiny version 2 is removed, and so is label 'canary' that pointed at it: "
            "requests for /v1/models/tiny/labels/canary will fail",
            "blocking": True,
        },
        {
            "kind": "precision_lowered",
            "bundle": "bundles/prod",
            "message": "label 'stable' of demo moved from version 2 (FP16) to 3 (INT8)",
            "blocking": False,
        },
        {
            "kind": "tolerance_loosened",
            "bundle": "bundles/prod",
            "message": "demo/trt16: the correctness check allows more: atol 0.01 -> 0.05",
            "blocking": False,
        },
    ]


@pytest.mark.parametrize(
    ("blocking", "code", "blocked"),
    [
        ("[]", 0, []),  # changes and warnings, none blocking: 0
        ("[precision_lowered,tolerance_loosened]", 1, ["precision_lowered", "tolerance_loosened"]),
    ],
)
def test_which_warnings_block_is_configurable(
    feature: Scenario, blocking: str, code: int, blocked: list[str]
) -> None:
    result = feature.project.run("mode=diff", "diff.format=json", f"diff.blocking={blocking}")
    assert result.code == code, result.err
    doc = json.loads(result.out)
    assert len(doc["warnings"]) == 3
    assert sorted(w["kind"] for w in doc["warnings"] if w["blocking"]) == blocked


def test_markdown_comment_is_the_readme_sample(feature: Scenario, golden) -> None:  # type: ignore[no-untyped-def]
    result = feature.project.run("mode=diff", "diff.format=markdown", "diff.output=out/pr.md")
    assert result.code == 1, result.err
    text = (feature.root / "out" / "pr.md").read_text()
    # On the console: the warnings and where the comment went; the comment itself in the file.
    assert "written to out/pr.md" in result.out
    assert "blocking label_dangling: bundles/prod: tiny version 2 is removed" in result.out
    assert not [p for p in (feature.root / "out").iterdir() if p.name != "pr.md"]
    assert text.startswith("<!-- tftrt-build:diff -->\n### tftrt-build diff\n")
    assert text.count("<details") == text.count("</details>") == 2
    assert "| label moved | `demo:stable` | `version 2 (FP16)` | `version 3 (INT8)` |" in text
    # The keys in the sample are this test's; stable with the pinned toolchain. The test
    # repository's commit depends on what the shared cache already held, so it is masked.
    sample = re.sub(r"\(merge-base [0-9a-f]{12}\)", "(merge-base 0123456789ab)", text)
    assert sample != text
    golden("diff.md", sample)
    readme = (REPO / "README.md").read_text()
    assert sample in readme, "README's 'Reviewing changes' sample is not tests/golden/diff.md"


def test_no_change_exits_0(feature: Scenario, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-b", "main", str(feature.root), str(clone))
    result = Project(clone, feature.project.cache).run("mode=diff")
    assert result.code == 0, result.err
    assert result.out.splitlines()[2:] == [
        "bundles/prod (target prod): unchanged; artifacts: 5 unchanged",
        "",
        "1 target: 0 changed, 1 unchanged; no warnings",
    ]
    assert "at origin/main (merge-base " in result.out.splitlines()[0]


def test_base_is_the_merge_base_not_the_tip_of_main(tmp_path: Path, shared_cache: Path) -> None:
    root = tmp_path / "repo"
    project = review_repo(root, shared_cache)
    fork = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "feature")
    edit(root / "conf" / "model" / "tiny.yaml", "classes: 10", "classes: 12")
    commit(root, "tiny: 12 classes")
    # main moves on after the branch: its change is not the feature's to review.
    git(root, "checkout", "-q", "main")
    edit(
        root / "conf" / "target" / "prod.yaml",
        "batch_timeout_micros: 1000",
        "batch_timeout_micros: 5000",
    )
    write_lock(root, plan_lock(root, shared_cache, "target=prod"))
    commit(root, "prod: slower batching")
    git(root, "checkout", "-q", "feature")
    result = project.run("mode=diff", "diff.format=json")
    doc = json.loads(result.out)
    assert doc["base"]["commit"] == fork
    (target,) = doc["targets"]
    assert [s["item"] for s in target["serving"] if s["what"] == "parameter"] == []
    assert [a["id"] for a in target["artifacts"] if a["status"] == "rebuilt"] == [
        "tiny/fp32",
        "tiny/native",
    ]
    # The feature did not rebuild: the lock it carries is stale, and the reviewer is told.
    assert [w["kind"] for w in doc["warnings"]] == ["lock_stale"]
    assert "run `tftrt-build target=prod` and commit tftrt.lock" in doc["warnings"][0]["message"]
    assert result.code == 0


def test_base_from_a_ref_or_a_lock_file(feature: Scenario, tmp_path: Path) -> None:
    by_ref = feature.project.run("mode=diff", "diff.base='HEAD~1'", "diff.format=json")
    by_file_path = tmp_path / "base.lock"
    by_file_path.write_text(git(feature.root, "show", "main:tftrt.lock") + "\n")
    by_file = feature.project.run("mode=diff", f"diff.base_lock={by_file_path}", "diff.format=json")
    ref_doc, file_doc = json.loads(by_ref.out), json.loads(by_file.out)
    assert ref_doc["base"]["ref"] == "HEAD~1"
    assert file_doc["base"] == {
        "description": str(by_file_path),
        "ref": None,
        "commit": None,
        "path": str(by_file_path),
        "found": True,
    }
    assert ref_doc["targets"] == file_doc["targets"] and ref_doc["warnings"] == file_doc["warnings"]


def test_gpu_architecture_of_locked_engines(tmp_path: Path, shared_cache: Path) -> None:
    """The lock was built on a T4 (7.5) before the target declared its A10s (8.6)."""
    root = tmp_path / "repo"
    init_repo(root)
    shutil.copytree(REPO / "tests" / "fixtures" / "review", root, dirs_exist_ok=True)
    target = root / "conf" / "target" / "prod.yaml"
    edit(target, 'gpus: {count: 1, compute_capability: "8.6"}', "gpus: {count: 1}")
    # What a build on a 7.5 GPU records for a target that declares none: the GPU's
    # architecture in each TF-TRT convert key and toolchain, nothing in the target.
    data = plan_lock(root, shared_cache, "target=prod", "target.gpus.compute_capability=7.5")
    data["bundles"]["bundles/prod"]["serving"]["gpus"]["compute_capability"] = None
    write_lock(root, data)
    commit(root, "prod, built on a T4")
    project = Project(root, shared_cache)
    assert project.run("mode=check", "target=prod").code == 0
    git(root, "checkout", "-q", "-b", "a10")
    edit(target, "gpus: {count: 1}", 'gpus: {count: 1, compute_capability: "8.6"}')
    commit(root, "prod: serve on A10s")
    result = project.run("mode=diff")
    assert result.code == 1, result.err
    lines = result.out.splitlines()
    rebuilt = [i for i, line in enumerate(lines) if line.startswith("    rebuilt ")]
    assert [lines[i].split()[1] for i in rebuilt] == ["demo/trt16", "demo/trt8", "tiny/fp32"]
    assert {lines[i + 1] for i in rebuilt} == {
        "      convert.toolchain.compute_capability: 7.5 -> 8.6"
    }
    assert "    gpus.compute_capability: null -> 8.6" in lines
    warnings = lines[lines.index("warnings:") + 1 : -2]
    assert warnings == [
        "  BLOCKING gpu_arch_mismatch: bundles/prod: demo/trt16, demo/trt8, tiny/fp32: the "
        "TF-TRT engines in tftrt.lock were built for compute capability 7.5, but target 'prod' "
        "declares 8.6 (gpus.compute_capability): they will not load there; rebuild them on a "
        "GPU of compute capability 8.6",
        "  lock_stale: bundles/prod: tftrt.lock is out of date with the configs (tiny/fp32 "
        "convert: changed: toolchain.compute_capability: 7.5 -> 8.6; demo/trt16 convert: "
        "changed: toolchain.compute_capability: 7.5 -> 8.6; demo/trt8 convert: changed: "
        "toolchain.compute_capability: 7.5 -> 8.6 (+1 more)): run `tftrt-build target=prod` "
        "and commit tftrt.lock",
    ]
    doc = json.loads(project.run("mode=diff", "diff.format=json").out)
    assert doc["warnings"][0] == {
        "kind": "gpu_arch_mismatch",
        "bundle": "bundles/prod",
        "message": warnings[0].split("bundles/prod: ", 1)[1],
        "blocking": True,
    }


def test_targets_added_removed_and_moved(tmp_path: Path, shared_cache: Path) -> None:
    root = tmp_path / "repo"
    project = review_repo(root, shared_cache)
    git(root, "checkout", "-q", "-b", "feature")
    # prod's bundle folder moves; a new target 'edge' is built.
    edit(
        root / "conf" / "target" / "prod.yaml",
        "bundle_dir: bundles/prod",
        "bundle_dir: bundles/prod-a10",
    )
    (root / "conf" / "target" / "edge.yaml").write_text(
        "name: edge\nbundle_dir: bundles/edge\nmodels:\n"
        "  - {model: tiny, versions: [{version: 1, profile: native}]}\n"
    )
    data = plan_lock(root, shared_cache, "target=prod")
    edge = plan_lock(root, shared_cache, "target=edge")
    write_lock(
        root,
        {
            "artifacts": {**data["artifacts"], **edge["artifacts"]},
            "bundles": {**data["bundles"], **edge["bundles"]},
        },
    )
    commit(root, "prod moves, edge added")
    result = project.run("mode=diff", "diff.format=json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert [(t["bundle"], t["bundle_before"], t["status"]) for t in doc["targets"]] == [
        ("bundles/edge", None, "added"),
        ("bundles/prod-a10", "bundles/prod", "changed"),
    ]
    moved = doc["targets"][1]
    assert moved["notes"] == ["the bundle moved from bundles/prod (target.bundle_dir)"]
    assert {a["status"] for a in moved["artifacts"]} == {"unchanged"}
    # Only the rendered files that name the folder change.
    assert [s["what"] for s in moved["serving"]] == ["file"] * len(moved["serving"])

    # A target option removed: its bundle is removed; explicit target= compares one target.
    (root / "conf" / "target" / "edge.yaml").unlink()
    commit(root, "edge dropped again")
    gone = json.loads(project.run("mode=diff", "diff.base='HEAD~1'", "diff.format=json").out)
    edge_diff = next(t for t in gone["targets"] if t["bundle"] == "bundles/edge")
    assert edge_diff["status"] == "removed"
    assert edge_diff["notes"] == ["target option 'edge' no longer exists"]
    only = json.loads(project.run("mode=diff", "target=prod", "diff.format=json").out)
    assert [t["bundle"] for t in only["targets"]] == ["bundles/prod-a10"]
    listed = json.loads(project.run("mode=diff", "diff.targets=[prod]", "diff.format=json").out)
    assert listed["targets"] == only["targets"]


@pytest.mark.slow
def test_against_a_lock_a_real_build_wrote(demo_build: Project, tmp_path: Path) -> None:
    """The session's real build of demo/native is the base; the branch changes its args."""
    root = tmp_path / "repo"
    init_repo(root)
    shutil.copy(demo_build.lock, root / "tftrt.lock")
    commit(root, "demo, built")
    base = read_lock_data(root)
    assert (
        base["bundles"]["bundles/demo-native"]["serving"]["image"]
        == "tensorflow/serving:2.17.1-gpu"
    )
    assert base["artifacts"]["demo/native"]["source"]["output"]["files"] == 4
    git(root, "checkout", "-q", "-b", "feature")
    demo = (REPO / "tftrt_build" / "conf" / "model" / "demo.yaml").read_text()
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "demo.yaml").write_text(demo.replace("classes: 10", "classes: 12"))
    commit(root, "demo: 12 classes")
    result = Project(root, demo_build.cache).run("mode=diff")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[2] == "bundles/demo-native (target compose): changed; artifacts: 1 rebuilt"
    assert lines[4].split()[:3] == ["rebuilt", "demo/native", "FP32"]
    assert lines[5] == "      model.source.args.classes: 10 -> 12"
    assert lines[-1] == "1 target: 1 changed, 0 unchanged; 1 warning, 0 blocking (diff.blocking)"


# --- The comparison itself, on lock entries of the scenario edited by hand ---------------------


def _sides(base: dict[str, Any], head: dict[str, Any]) -> tuple[Side, Side]:
    return (
        Side.from_lock(Lock(base["artifacts"], base["bundles"]), "bundles/prod"),
        Side.from_lock(Lock(head["artifacts"], head["bundles"]), "bundles/prod"),
    )


def _versions(data: dict[str, Any], model: str) -> dict[str, Any]:
    return next(m for m in data["bundles"]["bundles/prod"]["models"] if m["name"] == model)


def _warnings(base: dict[str, Any], head: dict[str, Any]) -> list[tuple[str, str]]:
    old, new = _sides(base, head)
    lock = Lock(head["artifacts"], head["bundles"])
    return [(k.value, m) for k, m in find_warnings(old, new, lock, [], "tftrt-build")]


def test_a_version_that_drops_precision_in_place(feature: Scenario) -> None:
    head = copy.deepcopy(feature.base)
    demo = _versions(head, "demo")
    demo["versions"][1]["artifact"] = "demo/trt8"  # version 2, labelled stable: FP16 -> INT8
    assert _warnings(feature.base, head) == [
        (
            "precision_lowered",
            "demo version 2 (labels: stable) now serves INT8 (demo/trt8), was FP16 (demo/trt16)",
        ),
    ]
    # Moving a label to a more exact version, or off a removed version, warns of nothing.
    up = copy.deepcopy(feature.base)
    _versions(up, "demo")["labels"]["canary"] = 1
    demo_up = _versions(up, "demo")
    demo_up["versions"] = [v for v in demo_up["versions"] if v["version"] != 3]
    demo_up["labels"] = {"baseline": 1, "stable": 2, "canary": 1}
    assert _warnings(feature.base, up) == []


def test_tolerances(feature: Scenario) -> None:
    tightened = copy.deepcopy(feature.base)
    tolerance = tightened["artifacts"]["demo/trt8"]["config"]["profile"]["tolerance"]
    tolerance.update(atol=0.01, top1_agreement=0.95)
    assert _warnings(feature.base, tightened) == []
    dropped = copy.deepcopy(feature.base)
    dropped["artifacts"]["demo/trt8"]["config"]["profile"]["tolerance"]["top1_agreement"] = None
    dropped["artifacts"]["demo/trt8"]["config"]["profile"]["tolerance"]["rtol"] = 0.5
    assert _warnings(feature.base, dropped) == [
        (
            "tolerance_loosened",
            "demo/trt8: the correctness check allows more: rtol 0.1 -> 0.5, "
            "top1_agreement 0.9 -> not checked",
        ),
    ]
    # A tolerance is not in the key: the artifact is 'changed', not rebuilt.
    old, new = _sides(feature.base, dropped)
    trt8 = next(a for a in compare_artifacts(old, new) if a.id == "demo/trt8")
    assert (trt8.status, [str(c) for c in trt8.config]) == (
        "changed",
        ["profile.tolerance.rtol: null -> 0.5", "profile.tolerance.top1_agreement: 0.9 -> null"],
    )


def test_a_base_lock_from_before_serving_records(feature: Scenario) -> None:
    old_style = copy.deepcopy(feature.base)
    del old_style["bundles"]["bundles/prod"]["serving"]
    old, new = _sides(old_style, feature.head)
    changes, notes = compare_serving(old, new)
    assert not [c for c in changes if c.what == "parameter"]
    assert [c.item for c in changes if c.what == "file"] == [
        "config/batching.config",
        "config/models.config",
        "docker-compose.yml",
    ]
    assert notes == [
        "the base lock records no serving parameters (written before tftrt-build kept them): "
        "image, GPUs, ports, batching and monitoring are not compared; the rendered files "
        "below still are"
    ]
    # A profile recorded with a key this version does not know: precision unknown, no crash.
    odd = copy.deepcopy(feature.base)
    odd["artifacts"]["demo/trt16"]["config"]["profile"]["future_key"] = 1
    old, _ = _sides(odd, feature.head)
    assert old.precision("demo/trt16") is None
    assert _warnings(odd, feature.head)[0][0] == DiffWarning.label_dangling.value


def test_the_lock_names_what_a_reviewer_reads() -> None:
    """Issue 14: one artifact per block naming model, profile, key and inputs; serving kept."""
    lock = (REPO / "tftrt.lock").read_text()
    blocks = re.split(r"\n  (?=\S)", lock.split("\nbundles:\n")[0].split("\nartifacts:\n")[1])
    assert blocks and all(
        re.search(r"^    model: ", b, re.M)
        and re.search(r"^    profile: ", b, re.M)
        and "      key: " in b
        and "      inputs:" in b
        for b in blocks
    )
    assert lock.count("    serving:\n      kind: compose\n      image: ") == 2


def test_an_input_file_that_moved(tmp_path: Path, shared_cache: Path) -> None:
    """The project's own copy of models/demo.py, edited: every export from it is rebuilt."""
    from tftrt_build.config.paths import builtin_models

    root = tmp_path / "repo"
    project = review_repo(root, shared_cache)
    base = read_lock_data(root)
    git(root, "checkout", "-q", "-b", "feature")
    (root / "models").mkdir()
    script = (builtin_models() / "demo.py").read_text()
    (root / "models" / "demo.py").write_text(script + "# wider stem next time\n")
    commit(root, "demo.py: a comment")
    head = plan_lock(root, shared_cache, "target=prod")
    digest = [
        d["artifacts"]["demo/native"]["source"]["inputs"]["script_digest"] for d in (base, head)
    ]
    b, h = keys_of(base), keys_of(head)
    lines = project.run("mode=diff").out.splitlines()
    start = lines.index("  artifacts:") + 1
    expected = []
    for artifact, precision in [
        ("demo/native", "FP32"),
        ("demo/trt16", "FP16"),
        ("demo/trt8", "INT8"),
        ("tiny/fp32", "FP32"),
        ("tiny/native", "FP32"),
    ]:
        expected.append(
            f"    rebuilt    {artifact:<11}  {precision}  {b(artifact)} -> {h(artifact)}"
        )
        expected.append(f"      file models/demo.py: {digest[0][:12]}… -> {digest[1][:12]}…")
    assert lines[start : start + 10] == expected


def test_image_monitoring_and_warmup_changes(feature: Scenario) -> None:
    from tftrt_build.review.render import describe

    head = copy.deepcopy(feature.base)
    bundle = head["bundles"]["bundles/prod"]
    bundle["serving"]["image"] = "tensorflow/serving:2.16.1-gpu"
    bundle["serving"]["monitoring"]["enabled"] = False
    tiny = _versions(head, "tiny")["versions"][0]
    old_warmup = tiny["warmup"]
    tiny["warmup"] = "f" * 64
    old, new = _sides(feature.base, head)
    changes, notes = compare_serving(old, new)
    assert notes == []
    assert [describe(c) for c in changes] == [
        f"warm-up records of tiny:1: {old_warmup[:12]}… -> ffffffffffff…",
        "image: tensorflow/serving:2.17.1-gpu -> tensorflow/serving:2.16.1-gpu",
        "monitoring.enabled: true -> false",
    ]
