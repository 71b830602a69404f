"""tftrt.lock: deterministic text, schema check, safe concurrent updates."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import yaml
from conftest import Project

import tftrt_build.store.lock as lockmod
from tftrt_build.errors import LockError
from tftrt_build.store.digest import digest_bytes
from tftrt_build.store.lock import Lock, read_lock, updating


def test_round_trip_and_fixed_order() -> None:
    lock = Lock({"b/x": {"key": "2", "shape": [-1, 3]}, "a/x": {"key": "1"}}, {})
    text = lock.to_yaml()
    assert text.index("a/x") < text.index("b/x")
    assert "shape: [-1, 3]" in text
    assert text.splitlines()[2] == "schema: 1"
    assert Lock.from_yaml(text, "tftrt.lock") == lock
    assert Lock.from_yaml(text, "x").to_yaml() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "tftrt.lock: not a tftrt.lock (expected a mapping, found a list)"),
        ("schema: 2\nhash: blake3\n", "tftrt.lock: schema 2 is not the supported 1"),
        ("schema: 1\nhash: md5\n", "tftrt.lock: digests are 'md5', expected blake3"),
        ("schema: [", "tftrt.lock: not valid YAML"),
    ],
)
def test_bad_lock_files(text: str, message: str) -> None:
    with pytest.raises(LockError) as info:
        Lock.from_yaml(text, "tftrt.lock")
    assert str(info.value).startswith(message)


def _add(path: str, name: str) -> None:
    with updating(Path(path), Path(path).parent / "cache") as lock:
        lock.artifacts[name] = {"key": name}


def test_concurrent_updates_keep_every_entry(tmp_path: Path) -> None:
    path = tmp_path / "tftrt.lock"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add, args=(str(path), f"m{i}/p")) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert sorted(read_lock(path).artifacts) == [f"m{i}/p" for i in range(8)]


def test_unchanged_lock_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "tftrt.lock"
    _add(str(path), "a/b")
    before = path.stat().st_mtime_ns
    with updating(path, tmp_path / "cache"):
        pass
    assert path.stat().st_mtime_ns == before


@pytest.mark.slow  # builds the demo model (session export) through the CLI
def test_command_line_values_are_an_experiment_unless_recorded(
    demo_build: Project, shared_cache: Path, tmp_path: Path
) -> None:
    """`tftrt-build target.ports.rest=9501` must not dirty what a pull request reviews: the
    lock and the target's bundle stay as committed, the experiment's bundle goes beside it, and
    only record=true writes it into both."""
    p = Project(tmp_path / "p", shared_cache)
    p.root.mkdir()
    assert p.run().code == 0  # the demo artifact is a cache hit (demo_build)
    committed = p.lock.read_bytes()
    compose = p.root / "bundles" / "demo-native" / "docker-compose.yml"
    committed_compose = compose.read_bytes()

    exp = p.run("target.ports.rest=9501")
    assert exp.code == 0, exp.err
    assert (
        "lock: tftrt.lock not updated: an experiment (target.ports.rest=9501); put it in conf/, "
        "or add record=true to record it" in " ".join(exp.out.split())
    )
    assert p.lock.read_bytes() == committed and compose.read_bytes() == committed_compose
    (folder,) = (p.root / "bundles" / "experiments").iterdir()
    assert folder.name.startswith("demo-native-")
    assert "--rest_api_port=9501" in (folder / "docker-compose.yml").read_text()
    assert "target.ports.rest=9501" in (folder / "README.md").read_text()  # how to rebuild it
    assert p.run("mode=check").code == 0
    # The same command line finds the same folder (as tftrt-deploy/-verify/-bench do).
    again = p.run("target.ports.rest=9501")
    assert again.code == 0 and f"experiments/{folder.name} (unchanged)" in again.out
    assert [f.name for f in folder.parent.iterdir()] == [folder.name]

    recorded = p.run("target.ports.rest=9501", "record=true")
    assert recorded.code == 0, recorded.err
    assert "--rest_api_port=9501" in compose.read_text() and p.lock.read_bytes() != committed
    # Recorded, the lock now says what conf/ does not: check names the bundle as changed.
    stale = p.run("mode=check")
    assert stale.code == 1 and "tftrt.lock is out of date" in stale.out


def _files(*roots: Path) -> dict[str, bytes]:
    return {
        str(f): f.read_bytes() for root in roots for f in sorted(root.rglob("*")) if f.is_file()
    }


@pytest.mark.slow  # builds the demo model (session export) through the CLI
def test_plan_and_check_write_only_their_run_log_and_the_cache_records(
    demo_build: Project, shared_cache: Path, tmp_path: Path
) -> None:
    """README "Plan and check": nothing in the project, no cache entry; in the cache folder a
    run log (pruned to cache.keep_runs) and the records that spare the next run work (the stat
    cache, the parsed lock, the package versions), and nothing else."""
    p = Project(tmp_path / "p", shared_cache)
    p.root.mkdir()
    assert p.run().code == 0  # a cache hit of demo_build's export
    for mode in ("plan", "check"):
        before = _files(p.root, shared_cache)
        runs = set((shared_cache / "runs").iterdir())
        assert p.run(f"mode={mode}").code == 0
        after = _files(p.root, shared_cache)
        (new_run,) = set((shared_cache / "runs").iterdir()) - runs
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)} - {
            str(f) for f in new_run.rglob("*")
        }
        records = {shared_cache / "statcache.json", shared_cache / "packages.json"}
        unexpected = {
            k
            for k in changed
            if Path(k) not in records and Path(k).parent != shared_cache / "parsed"
        }
        assert unexpected == set(), sorted(unexpected)


def _pure_python_text(lock: Lock, monkeypatch: pytest.MonkeyPatch) -> str:
    """The lock as PyYAML's pure-Python emitter writes it: the reference bytes."""
    with monkeypatch.context() as m:
        m.setattr(lockmod, "_FAST_DUMPER", lockmod.lock_dumper(yaml.SafeDumper))
        return lock.to_yaml()


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "value",
    [
        "plain ascii " * 20,  # folded plain scalar
        "it's: quoted # " * 12,  # single-quoted, folded
        "déjà vu " * 20,  # double-quoted with escapes: the emitters fold these differently
        "tab\there\x7f " * 15,
        "日本語",
    ],
)
def test_libyaml_writes_the_bytes_pure_python_writes(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = Lock({"m/p": {"note": value, "list": [value, 1, None], value[:30]: True}}, {})
    text = lock.to_yaml()
    assert text == _pure_python_text(lock, monkeypatch)
    assert Lock.from_yaml(text, "tftrt.lock") == lock


@pytest.mark.parametrize("path", ["tftrt.lock", "tests/golden/demo-native.tftrt.lock"])
def test_committed_locks_are_written_back_unchanged(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / path).read_text()
    lock = Lock.from_yaml(text, path)
    assert lock.to_yaml() == text == _pure_python_text(lock, monkeypatch)


def test_a_changed_lock_is_read_again(tmp_path: Path) -> None:
    # Same size, same second: only the bytes tell the two apart.
    path = tmp_path / "tftrt.lock"
    path.write_text(Lock({"a/x": {"key": "1"}}, {}).to_yaml())
    first = read_lock(path)
    first.artifacts["b/x"] = {"key": "3"}  # a caller's edit stays its own
    assert read_lock(path).artifacts == {"a/x": {"key": "1"}}
    path.write_text(Lock({"a/x": {"key": "2"}}, {}).to_yaml())
    assert read_lock(path).artifacts == {"a/x": {"key": "2"}}


def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the locks this process read, as a new tftrt-build process would."""
    monkeypatch.setattr(lockmod, "_READ", {})


def _no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, where: str) -> Lock:
        raise AssertionError("the lock's YAML was parsed")

    monkeypatch.setattr(lockmod, "load_yaml", refuse)


def test_an_unchanged_lock_is_read_from_its_parsed_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cache = tmp_path / "tftrt.lock", tmp_path / "cache"
    cache.mkdir()
    lock = Lock({"m/p": {"model": "m", "convert": {"key": "k", "toolchain": {"tf": "2.17.1"}}}})
    path.write_text(lock.to_yaml())
    assert read_lock(path, cache) == lock
    _fresh_process(monkeypatch)
    with monkeypatch.context() as m:
        _no_yaml(m)
        assert read_lock(path, cache) == lock


@pytest.mark.parametrize("change", ["lock", "parsed form"])
def test_a_changed_lock_or_a_damaged_parsed_form_is_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    path, cache = tmp_path / "tftrt.lock", tmp_path / "cache"
    cache.mkdir()
    path.write_text(Lock({"m/p": {"model": "m"}}).to_yaml())
    read_lock(path, cache)
    [kept] = (cache / "parsed").iterdir()
    if change == "lock":
        path.write_text(Lock({"m/p": {"model": "n"}}).to_yaml())
        expected = "n"
    else:
        kept.write_bytes(kept.read_bytes().replace(b'"model": "m"', b'"model": "x"'))
        expected = "m"
    _fresh_process(monkeypatch)
    assert read_lock(path, cache).artifacts["m/p"]["model"] == expected


def test_what_json_cannot_hold_exactly_is_not_kept(tmp_path: Path) -> None:
    path, cache = tmp_path / "tftrt.lock", tmp_path / "cache"
    cache.mkdir()
    path.write_text(Lock({"m/p": {"config": {"model": {"labels": {1: "a"}}}}}).to_yaml())
    assert read_lock(path, cache).artifacts["m/p"]["config"]["model"]["labels"] == {1: "a"}
    assert not (cache / "parsed").exists() or not list((cache / "parsed").iterdir())


def test_a_parsed_form_is_checked_as_the_file_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A newer tftrt-build with another lock schema refuses the lock, kept parse or not.
    path, cache = tmp_path / "tftrt.lock", tmp_path / "cache"
    cache.mkdir()
    path.write_text(Lock({"m/p": {"model": "m"}}).to_yaml())
    read_lock(path, cache)
    _fresh_process(monkeypatch)
    monkeypatch.setattr(lockmod, "SCHEMA", 2)
    with monkeypatch.context() as m:
        _no_yaml(m)
        with pytest.raises(LockError, match="schema 1 is not the supported 2"):
            read_lock(path, cache)


def test_a_parsed_form_of_another_format_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first format kept artifacts and bundles only; read as today's, it has no schema.
    path, cache = tmp_path / "tftrt.lock", tmp_path / "cache"
    cache.mkdir()
    lock = Lock({"m/p": {"model": "m"}})
    path.write_text(lock.to_yaml())
    read_lock(path, cache)
    [kept] = (cache / "parsed").iterdir()
    body = json.dumps({"artifacts": lock.artifacts, "bundles": {}})
    header = {"lock": digest_bytes(path.read_bytes()), "body": digest_bytes(body.encode())}
    kept.write_text(json.dumps(header) + "\n" + body)
    _fresh_process(monkeypatch)
    assert read_lock(path, cache) == lock
