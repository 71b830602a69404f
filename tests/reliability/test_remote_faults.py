"""cache.remote under faults: damaged remote entries, a push cut short, an unreachable remote.

Tables, one row per case, each run against a folder (file://) and an S3 server on 127.0.0.1:

- ``DAMAGE``: one object of a pushed entry changed (a byte of a file or of the manifest
  flipped, a file truncated or deleted, the pointer overwritten): the pull says so in one line
  naming cache.remote and the key, uses nothing and leaves nothing here; the rebuilt entry is
  pushed over it and then pulls whole.
- ``FAIL_STEPS``: an upload failing at each remote step (``TFTRT_FAIL_AT``): one error line
  naming the step; the remote holds no entry a pull accepts; the next build that uses the
  entry (committed here) pushes it.

Then the S3 server stopped between a push's files and its pointer, and an unreachable remote:
required, one error line naming cache.remote and the URL; not required, a warning and a
local build.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, S3Server, free_port, start_s3
from test_remote_cache import KEY, commit, files_of, open_store

from tftrt_build.errors import CacheError
from tftrt_build.store import remote as remote_mod
from tftrt_build.store.remote import Remote, RemoteError


def _blob_of(remote: Remote, entry_path: Path, name: str) -> str:
    manifest: dict[str, Any] = json.loads((entry_path / "manifest.json").read_text())
    digest = next(d for p, _, d in manifest["files"] if p == name)
    return remote._blob(digest)


def _flip(remote: Remote, path: str) -> None:
    data = bytearray(remote.fs.cat_file(path))
    data[len(data) // 2] ^= 0x01
    remote.fs.pipe_file(path, bytes(data))


def _manifest_blob(remote: Remote) -> str:
    return remote._blob(remote.fs.cat_file(remote._pointer(KEY)).decode())


Damage = Callable[[Remote, Path], None]
DAMAGE: list[tuple[str, Damage, str]] = [
    (
        "file byte flipped",
        lambda r, e: _flip(r, _blob_of(r, e, "saved_model.pb")),
        "saved_model.pb does not match its digest",
    ),
    (
        "file truncated",
        lambda r, e: r.fs.pipe_file(_blob_of(r, e, "variables/v.index"), b"id"),
        "variables/v.index does not match its digest",
    ),
    (
        "file deleted",
        lambda r, e: r.fs.rm_file(_blob_of(r, e, "saved_model.pb")),
        "missing file saved_model.pb",
    ),
    (
        "manifest byte flipped",
        lambda r, e: _flip(r, _manifest_blob(r)),
        "its manifest does not match its digest",
    ),
    (
        "pointer overwritten",
        lambda r, e: r.fs.pipe_file(r._pointer(KEY), b"not a digest"),
        "its pointer is not a digest",
    ),
]


@pytest.mark.parametrize(("case", "damage", "problem"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_remote_entry_is_reported_rebuilt_and_pushed_again(
    remote_url: str, tmp_path: Path, case: str, damage: Damage, problem: str
) -> None:
    builder = open_store(tmp_path / "gpu-host", remote_url)
    commit(builder)
    built = builder.lookup(KEY).entry
    assert built is not None
    assert builder.remote is not None
    damage(builder.remote, built.path)

    notes: list[str] = []
    ci = open_store(tmp_path / "ci", remote_url, notes=notes)
    found = ci.lookup(KEY)
    assert found.entry is None, case
    assert found.problem == f"damaged remote entry: {problem}"
    said = f"cache.remote: {remote_url}: entry {KEY[:12]} is damaged ({problem}); not used"
    assert notes == [said]
    assert not (tmp_path / "ci" / "objects").exists() or not list(
        (tmp_path / "ci" / "objects").rglob("manifest.json")
    )
    assert not list((tmp_path / "ci" / "tmp").iterdir())
    # The rebuild (the same content here) is pushed over the damaged objects.
    commit(ci)
    again = open_store(tmp_path / "third", remote_url).lookup(KEY)
    assert again.entry is not None and again.entry.pulled, again.problem
    assert files_of(again.entry.path) == files_of(built.path)


FAIL_STEPS = [
    ("remote-blob", "uploading a file to cache.remote"),
    ("remote-entry", "publishing an entry in cache.remote"),
]


@pytest.mark.parametrize(("step", "title"), FAIL_STEPS, ids=[s[0] for s in FAIL_STEPS])
def test_a_failed_push_leaves_no_entry_and_the_next_build_pushes_it(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, title: str
) -> None:
    builder = open_store(tmp_path / "gpu-host", remote_url)
    monkeypatch.setenv("TFTRT_FAIL_AT", step)
    with pytest.raises(CacheError) as err:
        commit(builder)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(title) and "[Errno 28]" in line
    monkeypatch.delenv("TFTRT_FAIL_AT")
    assert open_store(tmp_path / "ci", remote_url).lookup(KEY).problem == "absent"
    # The entry was committed here before the push: the next build finds it and shares it.
    assert open_store(tmp_path / "gpu-host", remote_url).lookup(KEY).entry is not None
    pulled = open_store(tmp_path / "ci2", remote_url).lookup(KEY)
    assert pulled.entry is not None and pulled.entry.pulled


def test_s3_server_stopped_between_the_files_and_the_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = start_s3()
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    url = s3.bucket(f"cut-{uuid.uuid4().hex[:8]}") + "/cache"
    port = int(s3.endpoint.rsplit(":", 1)[1])
    stopped: list[str] = []

    def reached(point: str) -> None:
        if point == "remote-files-pushed":
            s3.server.stop()  # type: ignore[attr-defined]
            stopped.append(point)

    monkeypatch.setattr(remote_mod, "reached", reached)
    builder = open_store(tmp_path / "gpu-host", url)
    with pytest.raises(RemoteError) as err:
        commit(builder)
    assert stopped == ["remote-files-pushed"]
    assert str(err.value).startswith(f"cache.remote: {url}: cannot ")
    assert "Could not connect to the endpoint URL" in str(err.value)
    monkeypatch.setattr(remote_mod, "reached", lambda point: None)
    # The same server back (moto keeps its objects in this process): the files are there,
    # the entry is not, and no pull accepts it.
    s3 = start_s3(port)
    try:
        remote = Remote.open(url)
        assert remote.fs.find(remote._path("blobs")), "the files were not pushed first"
        assert not remote.fs.exists(remote._pointer(KEY))
        assert open_store(tmp_path / "ci", url).lookup(KEY).problem == "absent"
    finally:
        s3.server.stop()  # type: ignore[attr-defined]


def test_remote_not_required_warns_and_goes_on_when_it_fails_mid_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = start_s3()
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    url = s3.bucket(f"flaky-{uuid.uuid4().hex[:8]}") + "/cache"
    notes: list[str] = []
    builder = open_store(tmp_path / "host", url, notes=notes)
    builder.remote_required = False
    s3.server.stop()  # type: ignore[attr-defined]
    commit(builder)
    assert builder.lookup(KEY).entry is not None
    assert builder.remote is None
    assert len(notes) == 1
    assert notes[0].startswith(f"cache.remote: {url}: cannot ")
    assert notes[0].endswith("; going on without it (cache.remote_required=false)")


def _unreachable(s3: S3Server) -> dict[str, str]:
    return {**s3.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}


@pytest.mark.slow
def test_an_unreachable_remote_stops_the_build_in_one_line_or_warns(
    s3_server: S3Server, shared_cache: Path, tmp_path: Path
) -> None:
    env = _unreachable(s3_server)
    p = Project(tmp_path / "p", shared_cache)
    p.root.mkdir()
    url = "s3://team-cache/tftrt"
    refused = p.run(f"cache.remote={url}", env=env)
    assert refused.code == 1
    assert refused.error_line.startswith(f"cache.remote: {url}: cannot reach it: ")
    assert "set cache.remote_required=false" in refused.error_line
    assert not p.lock.exists()
    warned = p.run(f"cache.remote={url}", "cache.remote_required=false", env=env)
    assert warned.code == 0, warned.err
    said = " ".join(warned.err.split())  # the console wraps long notes
    assert f"cache.remote: {url}: cannot reach it: " in said
    assert "building with the local cache only (cache.remote_required=false)" in said
    assert p.lock.exists()
