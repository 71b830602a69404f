"""cache.remote: entries pushed to and pulled from a shared remote (file:// and S3 on 127.0.0.1).

The store-level cases run in process against both kinds of remote; the CLI round trip (build,
wipe the cache, build again: everything pulled, nothing run, the same lock) is slow. Faults
(corruption, a push cut short, an unreachable remote) are in tests/reliability/
test_remote_faults.py.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, S3Server

from tftrt_build.config.outputs import check_remote
from tftrt_build.errors import ConfigError
from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.plan.artifacts import engine_architecture
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.remote import Remote

KEY = "cd" * 32


def open_store(
    root: Path, url: str | None, readonly: bool = False, notes: list[str] | None = None
) -> Store:
    return Store(
        root,
        StatCache(root / "statcache.json"),
        readonly=readonly,
        remote=Remote.open(url) if url else None,
        notify=notes.append if notes is not None else None,
    )


def commit(s: Store, key: str = KEY, content: bytes = b"model") -> None:
    with s.staging(key) as tmp:
        (tmp / "data" / "saved_model.pb").write_bytes(content)
        (tmp / "data" / "variables").mkdir()
        (tmp / "data" / "variables" / "v.index").write_bytes(b"idx")
        s.commit(key, tmp, {"stage": "convert", "report": {"engines": 2}})


def files_of(entry_path: Path) -> dict[str, bytes]:
    data = entry_path / "data"
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def test_a_built_entry_is_pushed_and_another_machine_pulls_it(
    remote_url: str, tmp_path: Path
) -> None:
    builder = open_store(tmp_path / "gpu-host", remote_url)
    commit(builder)
    built = builder.lookup(KEY).entry
    assert built is not None and not built.pulled

    ci = open_store(tmp_path / "ci", remote_url)
    found = ci.lookup(KEY)
    assert found.entry is not None, found.problem
    assert found.entry.pulled
    assert found.entry.path == tmp_path / "ci" / "objects" / KEY[:2] / KEY
    assert found.entry.manifest == built.manifest
    assert (found.entry.path / "manifest.json").read_bytes() == (
        built.path / "manifest.json"
    ).read_bytes()
    assert files_of(found.entry.path) == files_of(built.path)
    # Pulled entries are checked on every later use like built ones.
    again = open_store(tmp_path / "ci", None).lookup(KEY)
    assert again.entry is not None and not again.entry.pulled
    assert not list((tmp_path / "ci" / "tmp").iterdir())


def test_a_lookup_that_must_not_pull_leaves_the_remote_alone(
    remote_url: str, tmp_path: Path
) -> None:
    commit(open_store(tmp_path / "a", remote_url))
    b = open_store(tmp_path / "b", remote_url)
    assert b.lookup(KEY, pull=False).problem == "absent"
    assert not (tmp_path / "b" / "objects").exists()


def test_plan_and_check_only_ask_the_remote(remote_url: str, tmp_path: Path) -> None:
    commit(open_store(tmp_path / "a", remote_url))
    looking = open_store(tmp_path / "b", remote_url, readonly=True)
    found = looking.lookup(KEY)
    assert (found.entry, found.remote) == (None, True)
    other = looking.lookup("ef" * 32)
    assert (other.entry, other.remote, other.problem) == (None, False, "absent")
    assert not (tmp_path / "b" / "objects").exists()


def test_an_entry_found_here_is_pushed_where_the_remote_lacks_it(
    remote_url: str, tmp_path: Path
) -> None:
    # Built before the team had a remote: the first build that uses it shares it.
    commit(open_store(tmp_path / "a", None))
    assert open_store(tmp_path / "b", remote_url).lookup(KEY).entry is None
    hit = open_store(tmp_path / "a", remote_url).lookup(KEY)
    assert hit.entry is not None and not hit.entry.pulled
    pulled = open_store(tmp_path / "c", remote_url).lookup(KEY)
    assert pulled.entry is not None and pulled.entry.pulled


def test_a_file_shared_by_two_entries_is_uploaded_once(tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    s = open_store(tmp_path / "a", url)
    commit(s, KEY)
    commit(s, "ef" * 32)
    blobs = sorted(p.name for p in (tmp_path / "remote" / "blobs").rglob("*") if p.is_file())
    # saved_model.pb and v.index are the same in both; the two manifests differ.
    assert len(blobs) == 4
    assert not [p for p in (tmp_path / "remote" / "tmp").iterdir()]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://AKIAEXAMPLE:s3cr3t@bucket/prefix", "the URL holds credentials"),
        ("gs://token@bucket/prefix", "the URL holds credentials"),
        ("bucket/prefix", "is not a URL"),
        ("s3://bucket/prefix?access_key=s3cr3t", "has a query or fragment"),
    ],
)
def test_a_remote_url_with_credentials_or_no_scheme_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_remote(url, "command line")
    text = str(err.value)
    assert text.startswith("command line: cache.remote: ")
    assert problem in text
    assert "s3cr3t" not in text and "AKIAEXAMPLE" not in text


def test_check_remote_keeps_a_plain_url() -> None:
    assert check_remote("s3://bucket/prefix", None) == "s3://bucket/prefix"
    assert check_remote(None, None) is None


@pytest.mark.slow
def test_build_wipe_rebuild_pulls_everything_and_runs_nothing(
    s3_server: S3Server, shared_cache: Path, tmp_path: Path
) -> None:
    url = s3_server.bucket(f"roundtrip-{uuid.uuid4().hex[:8]}") + "/cache"
    # moto takes any key; this one must appear in no file the builds write.
    secret = "s3cr3t-" + uuid.uuid4().hex
    env = {**s3_server.env, "AWS_SECRET_ACCESS_KEY": secret}
    # The session's cache (demo/native built by another test, or here): what it holds and
    # what it builds goes up.
    first = Project(tmp_path / "gpu-host", shared_cache)
    first.root.mkdir()
    r1 = first.run(f"cache.remote={url}", env=env)
    assert r1.code == 0, r1.err
    # Another machine, nothing cached: plan says what only the remote has, and fetches nothing.
    fresh = tmp_path / "fresh-cache"
    second = Project(tmp_path / "ci", fresh)
    second.root.mkdir()
    shutil.copy(first.lock, second.lock)
    planned = second.run(f"cache.remote={url}", "mode=plan", env=env)
    assert planned.code == 0, planned.err
    assert "only in cache.remote" in planned.out and "pull" in planned.out
    assert not (fresh / "objects").exists()
    checked = second.run(f"cache.remote={url}", "mode=check", env=env)
    assert checked.code == 0, checked.err
    assert "demo/native: only in cache.remote: a build pulls it" in checked.out
    # The build pulls everything: no stage runs (no stage log), the same lock byte for byte.
    second.lock.unlink()
    r2 = second.run(f"cache.remote={url}", env=env)
    assert r2.code == 0, r2.err
    assert "pulled from cache.remote" in r2.err
    assert "│ pulled" in r2.out and "built" not in r2.out
    runs = sorted((fresh / "runs").iterdir())
    assert not (runs[-1] / "stages").exists(), "a stage ran"
    assert second.lock.read_bytes() == first.lock.read_bytes()
    assert (second.root / "bundles" / "demo-native").is_dir()
    # The source is not needed where its conversion is pulled: it stays on the remote.
    source_key = yaml.safe_load(second.lock.read_text())["artifacts"]["demo/native"]["source"]
    assert not (fresh / "objects" / source_key["key"][:2] / source_key["key"]).exists()
    written = [p for p in [*second.root.rglob("*"), *fresh.rglob("*")] if p.is_file()]
    assert [p for p in written if secret.encode() in p.read_bytes()] == []
    assert secret not in r2.out + r2.err + planned.err + checked.err


class _NoGpu:
    """Probe answer of a CI runner: TensorFlow without a GPU (no TensorRT is needed to pull)."""

    def probe(self) -> Capabilities:
        return Capabilities("2.17.1", False, None, False, None)


def test_a_build_without_a_gpu_keys_engines_for_the_lock_s_gpu(
    project: Project,
    compose_request,  # type: ignore[no-untyped-def]
) -> None:
    """So a CI runner computes the GPU host's convert key and pulls its engines."""
    request = compose_request(project.root, "profile=fp16")
    artifact = request.artifacts[0]
    locked = {"toolchain": {"compute_capability": "8.6"}}
    executor: Any = _NoGpu()
    assert engine_architecture(artifact, request, executor, locked, building=True) == "8.6"
    assert engine_architecture(artifact, request, executor, None, building=True) is None
