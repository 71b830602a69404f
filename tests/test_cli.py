"""The installed ``tftrt-build`` end to end, as a user runs it (subprocesses, real TensorFlow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project

from tftrt_build.emit.models_config import parse as parse_models_config

pytestmark = pytest.mark.slow


def tensorflow_imported(stderr: str) -> bool:
    """Whether -X importtime output shows TensorFlow being imported by any process."""
    return any(
        line.rstrip().endswith(("| tensorflow", "|   tensorflow"))
        or line.split("|")[-1].strip() == "tensorflow"
        for line in stderr.splitlines()
        if "import time:" in line
    )


def test_default_build_writes_bundle_and_lock(project: Project) -> None:
    result = project.run()
    assert result.code == 0, result.err
    bundle = project.root / "bundles" / "demo-native"
    version = bundle / "models" / "demo" / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    config = parse_models_config((bundle / "config" / "models.config").read_text())
    assert [c.name for c in config.model_config_list.config] == ["demo"]
    compose = yaml.safe_load((bundle / "docker-compose.yml").read_text())
    assert compose["services"]["tfserving"]["image"] == "tensorflow/serving:2.17.1-gpu"
    lock = yaml.safe_load(project.lock.read_text())
    assert lock["schema"] == 1 and list(lock["artifacts"]) == ["demo/native"]
    # The last lines: the summary table, then where the bundle is.
    last = result.out.strip().splitlines()
    assert "bundles/demo-native (written)" in last[-1]
    assert any("demo" in line and "native" in line and "built" in line for line in last)


def test_cached_rerun_hits_every_stage_without_tensorflow(demo_build: Project) -> None:
    result = demo_build.run(env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.code == 0, result.err
    assert "demo/native convert: cached" in result.err
    assert "bundle bundles/demo-native: up to date" in result.err
    assert "hit" in result.out and "built" not in result.out
    assert "import time:" in result.err  # the probe works...
    assert not tensorflow_imported(result.err)  # ...and saw no TensorFlow import


def test_changed_input_rebuilds_only_what_depends_on_it(catalogue: Project) -> None:
    first = catalogue.run("target=two_models")
    assert first.code == 0, first.err
    tiny = catalogue.root / "conf" / "model" / "tiny.yaml"
    tiny.write_text(tiny.read_text().replace("classes: 10", "classes: 5"))
    second = catalogue.run("target=two_models")
    assert second.code == 0, second.err
    assert "tiny/native source: changed: args.classes: 10 -> 5" in second.err
    assert "demo/native convert: cached" in second.err
    rows = {line.split()[1]: line for line in second.out.splitlines() if "│" in line}
    assert "built" in rows["tiny"] and "hit" in rows["demo"]


def test_script_change_is_named(catalogue: Project) -> None:
    assert catalogue.run().code == 0
    script = catalogue.root / "models" / "demo.py"
    script.parent.mkdir(exist_ok=True)
    from tftrt_build.config.paths import builtin_models

    script.write_text((builtin_models() / "demo.py").read_text() + "\n# a comment\n")
    result = catalogue.run("mode=plan")
    assert result.code == 0
    assert "changed: script_digest:" in result.out


def test_check_passes_then_fails_on_stale_lock(demo_build: Project, tmp_path: Path) -> None:
    assert demo_build.run("mode=check").code == 0
    # A fresh clone: the lock without any cache is still up to date.
    clone = make_project(tmp_path / "clone")
    (clone.root / "tftrt.lock").write_text(demo_build.lock.read_text())
    ok = clone.run("mode=check")
    assert ok.code == 0, ok.out + ok.err
    assert "tftrt.lock is up to date" in ok.out
    assert clone.cache_entries() == []
    stale = clone.run("mode=check", "model.source.args.classes=12")
    assert stale.code == 1
    assert "tftrt.lock is out of date" in stale.out
    assert "args.classes: 10 -> 12" in stale.out


def test_plan_builds_nothing_and_says_why(project: Project) -> None:
    result = project.run("mode=plan")
    assert result.code == 0, result.err
    assert "new: not in tftrt.lock" in result.out
    assert project.cache_entries() == [] and not project.lock.exists()
    assert not (project.root / "bundles").exists()


def test_sweep_reports_failed_job_and_runs_the_others(catalogue: Project) -> None:
    result = catalogue.run("-m", "profile=native,native_fp16,fast")
    assert result.code == 2, result.err
    table = result.out[result.out.index("tftrt-build sweep") :]
    assert "profile=native " in table and "profile=fast" in table
    assert "failed" in table and table.count("hit") + table.count("built") == 2
    assert (catalogue.root / "bundles" / "demo-fast").is_dir()


def test_damaged_entry_is_rebuilt_not_served(demo_build: Project, tmp_path: Path) -> None:
    p = Project(tmp_path / "damaged", tmp_path / "cache")
    p.root.mkdir()
    assert p.run().code == 0
    data = next(p.cache.glob("objects/*/*/data/variables/variables.data-*"))
    data.chmod(0o644)
    with data.open("r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    result = p.run()
    assert result.code == 0, result.err
    assert "damaged entry: variables/variables.data-00000-of-00001 changed content" in result.err
    assert yaml.safe_load(p.lock.read_text()) == yaml.safe_load(demo_build.lock.read_text())


def test_killed_build_leaves_no_entry(project: Project) -> None:
    env = {**os.environ, "TFTRT_CACHE_DIR": str(project.cache)}
    exe = Path(sys.executable).parent / "tftrt-build"
    proc = subprocess.Popen(
        [exe],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list((project.cache / "tmp").glob("*/data")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((project.cache / "tmp").iterdir())  # the staging folder is left behind...
    assert project.cache_entries() == []  # ...but nothing a later run would serve
    again = project.run("mode=build")
    assert again.code == 0, again.err
    assert not list((project.cache / "tmp").iterdir())


def test_cache_dir_moves_with_env_and_key(project: Project, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    # A cache outside the project is an explicit choice, like any other output path.
    refused = project.run(f"cache.dir={moved}", "mode=plan")
    assert refused.code == 2 and "allow_outside_project=true" in refused.error_line
    assert not moved.exists()
    result = project.run(f"cache.dir={moved}", "allow_outside_project=true", "mode=plan")
    assert result.code == 0, result.err
    assert (moved / "runs").is_dir()


def test_two_clean_builds_write_the_same_lock(demo_build: Project, tmp_path: Path, golden) -> None:  # type: ignore[no-untyped-def]
    other = Project(tmp_path / "other", tmp_path / "other-cache")
    other.root.mkdir()
    assert other.run().code == 0
    assert other.lock.read_text() == demo_build.lock.read_text()
    golden("demo-native.tftrt.lock", other.lock.read_text())


def test_help_lists_groups_and_project_options(catalogue: Project) -> None:
    result = catalogue.run("--help")
    assert result.code == 0
    assert (
        "profile: fast, fp16, fp32, int8, native, native_fp16, seed_fp16, zero_batch" in result.out
    )
    assert "target: " in result.out and "two_models" in result.out


def test_bundle_json_describes_versions(demo_build: Project) -> None:
    from tftrt_build.store.digest import hash_tree

    bundle = demo_build.root / "bundles" / "demo-native"
    doc = json.loads((bundle / "bundle.json").read_text())
    (version,) = doc["models"][0]["versions"]
    assert version["artifact"] == "demo/native"
    lock = yaml.safe_load(demo_build.lock.read_text())
    assert version["key"] == lock["artifacts"]["demo/native"]["convert"]["key"]
    # The version folder is the artifact plus its warm-up records, and bundle.json says so.
    assert version["digest"] == hash_tree(bundle / "models" / "demo" / "1").digest
