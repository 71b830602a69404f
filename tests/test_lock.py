"""tftrt.lock: deterministic text, schema check, safe concurrent updates."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tftrt_build.errors import LockError
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
