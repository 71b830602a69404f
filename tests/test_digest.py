"""Content digests and the stat cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import blake3
import pytest
from conftest import count_reads

from tftrt_build.store import digest
from tftrt_build.store.digest import (
    StatCache,
    canonical_json,
    digest_json,
    hash_file,
    hash_tree,
    list_files,
    relative_files,
)


def old(path: Path) -> None:
    """Backdate a file, so its stat-cache entry is not 'racily clean'."""
    t = time.time() - 10
    os.utime(path, (t, t))


# Both ways a file is read: whole, below 1 MiB, and mapped and hashed on several threads.
@pytest.mark.parametrize("size", [1000, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_file_digest_is_blake3_of_content(tmp_path: Path, size: int) -> None:
    f = tmp_path / "a.bin"
    data = os.urandom(size)
    f.write_bytes(data)
    assert hash_file(f) == blake3.blake3(data).hexdigest()


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "empty"
    f.write_bytes(b"")
    assert hash_file(f) == blake3.blake3(b"").hexdigest()


def test_stat_cache_skips_reading_unchanged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    old(f)
    cache = StatCache(tmp_path / "stat.json")
    first = hash_file(f, cache)
    cache.save()

    def no_reading(*args: object) -> str:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(digest, "_blake3_file", no_reading)
    assert hash_file(f, StatCache(tmp_path / "stat.json")) == first


def test_stat_cache_notices_a_change(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    old(f)
    cache = StatCache(None)
    first = hash_file(f, cache)
    f.write_bytes(b"two")
    assert hash_file(f, cache) != first


def test_full_verify_reads_a_file_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # cache.verify=full (mode=check): digests from the bytes, but the same unchanged file, asked
    # for again in the same run (a model under several profiles), is not read again...
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    old(f)
    trusted = StatCache(tmp_path / "stat.json")
    hash_file(f, trusted)
    trusted.save()
    reads = count_reads(monkeypatch)
    full = StatCache(tmp_path / "stat.json", trust=False)
    first = hash_file(f, full)
    assert len(reads) == 1  # ...what an earlier run recorded is not trusted...
    assert hash_file(f, full) == first
    assert len(reads) == 1
    # ...and a change in between is read.
    f.write_bytes(b"y" * 1000)
    old(f)
    assert hash_file(f, full) != first
    assert len(reads) == 2


def test_full_verify_reads_hard_links_of_one_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A native conversion hard-links its source entry's files: 16 profiles of one model are 16
    # paths of one inode, and full verification read each of them.
    f, link, copy = tmp_path / "a.bin", tmp_path / "link.bin", tmp_path / "copy.bin"
    f.write_bytes(b"x" * 1000)
    old(f)
    os.link(f, link)
    copy.write_bytes(f.read_bytes())
    old(copy)
    reads = count_reads(monkeypatch)
    full = StatCache(None, trust=False)
    assert hash_file(f, full) == hash_file(link, full) == hash_file(copy, full)
    assert reads == ["a.bin", "copy.bin"]  # a copy is another file: read
    # Bytes changed through one link are read again through the other.
    link.write_bytes(b"y" * 1000)
    old(link)
    assert hash_file(f, full) == blake3.blake3(b"y" * 1000).hexdigest()
    assert reads == ["a.bin", "copy.bin", "a.bin"]


def test_racily_clean_entry_is_not_trusted(tmp_path: Path) -> None:
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"new")  # modified just now: same tick as the hashing
    cache = StatCache(None)
    hash_file(f, cache)
    assert cache.lookup(f.absolute(), f.stat()) is None


def test_tree_files_are_in_the_order_of_their_relative_posix_paths(tmp_path: Path) -> None:
    # Not the walk's order: "a.txt" sorts before "a/b" ('.' < '/'), a folder's files are not
    # all before its subfolders' ("c/z" after "c/d/e").
    for name in ["b", "a/b", "a.txt", "c/z", "c/d/e", "a/a/a"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    expected = ["a.txt", "a/a/a", "a/b", "b", "c/d/e", "c/z"]
    assert [rel for rel, _ in relative_files(tmp_path)] == expected
    assert list_files(tmp_path) == [tmp_path / rel for rel in expected]
    assert [f.path for f in hash_tree(tmp_path).files] == expected


def test_tree_digest_depends_on_names_and_content_not_order_or_times(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ["x", "y/z"]), (b, ["y/z", "x"])):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(name)
    old(a / "x")
    assert hash_tree(a).digest == hash_tree(b).digest
    (b / "x").rename(b / "w")
    assert hash_tree(a).digest != hash_tree(b).digest


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert digest_json({"a": 1, "b": 2}) == digest_json({"b": 2, "a": 1})


def test_damaged_stat_cache_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "stat.json"
    path.write_text("{not json")
    assert StatCache(path).lookup(path, path.stat()) is None


def test_a_full_check_of_unchanged_files_leaves_the_stat_cache_file_alone(
    tmp_path: Path,
) -> None:
    # mode=check hashes every bundle file again; rows that already say the same are not
    # rewritten (statcache.json was rewritten by every check of a 900-file bundle).
    files = [tmp_path / "tree" / f"f{i}" for i in range(3)]
    for f in files:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(f.name.encode())
        old(f)
    path = tmp_path / "stat.json"
    first = StatCache(path)
    tree = hash_tree(tmp_path / "tree", first)
    first.save()
    saved = path.read_bytes()
    os.utime(path, (1, 1))
    full = StatCache(path, trust=False)
    assert hash_tree(tmp_path / "tree", full) == tree
    full.save()
    assert path.stat().st_mtime == 1 and path.read_bytes() == saved
    # A file that changed gets its new row.
    files[0].write_bytes(b"changed")
    old(files[0])
    again = StatCache(path, trust=False)
    hash_tree(tmp_path / "tree", again)
    again.save()
    assert path.stat().st_mtime != 1
    assert StatCache(path).lookup(files[0].absolute(), files[0].stat()) == hash_file(files[0])


@pytest.mark.parametrize(
    "row",
    [
        lambda st: [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev],  # cut short
        lambda st: [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, "soon", "d"],
        lambda st: [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, 1, None],
        lambda st: {"size": st.st_size},
    ],
    ids=["short", "hashed-at-text", "digest-null", "mapping"],
)
@pytest.mark.parametrize("trust", [True, False], ids=["verify-stat", "verify-full"])
def test_a_malformed_stat_cache_row_is_as_good_as_absent(
    tmp_path: Path, row: Any, trust: bool
) -> None:
    # Valid JSON, a row whose stamp matches the file, the rest not as record() writes it: a
    # full check crashed on it (IndexError), a stat check would too.
    f = tmp_path / "tree" / "a"
    f.parent.mkdir()
    f.write_bytes(b"x")
    old(f)
    path = tmp_path / "stat.json"
    rows = {str(f.absolute()): row(f.stat())}
    path.write_text(json.dumps({"version": digest._STATCACHE_VERSION, "entries": rows}))
    cache = StatCache(path, trust=trust)
    assert hash_file(f, cache) == blake3.blake3(b"x").hexdigest()
    cache.save()
    assert StatCache(path).lookup(f.absolute(), f.stat()) == blake3.blake3(b"x").hexdigest()


def test_rows_forgotten_or_moved_leave_the_file(tmp_path: Path) -> None:
    folder, moved = tmp_path / "entry", tmp_path / "moved"
    f = folder / "a"
    folder.mkdir()
    f.write_bytes(b"x")
    old(f)
    path = tmp_path / "stat.json"
    cache = StatCache(path)
    hash_file(f, cache)
    cache.save()
    # Forgotten (an evicted entry), then read again in the same run: the new row is kept.
    cache = StatCache(path)
    cache.forget(folder)
    hash_file(f, cache)
    cache.save()
    assert str(f.absolute()) in json.loads(path.read_text())["entries"]
    # Moved (a renamed folder): the row goes with it, none stays under the old path.
    folder.rename(moved)
    cache = StatCache(path)
    cache.move(folder, moved)
    cache.save()
    entries = json.loads(path.read_text())["entries"]
    assert str((moved / "a").absolute()) in entries and str(f.absolute()) not in entries
