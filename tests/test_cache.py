"""The content-addressed store: atomic commits, damaged entries, pinned key recipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import count_reads

from tftrt_build.plan.keys import KEY_SALT, stage_key
from tftrt_build.store import cache as cache_mod
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache

KEY = "ab" * 32


def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache", StatCache(tmp_path / "cache" / "stat.json"))


def commit(s: Store, key: str = KEY, content: bytes = b"model") -> None:
    with s.staging(key) as tmp:
        (tmp / "data" / "saved_model.pb").write_bytes(content)
        (tmp / "data" / "variables").mkdir()
        (tmp / "data" / "variables" / "v.index").write_bytes(b"idx")
        s.commit(key, tmp, {"stage": "source", "report": {"n": 1}})


def test_commit_then_hit(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.lookup(KEY).problem == "absent"
    commit(s)
    hit = s.lookup(KEY)
    assert hit.entry is not None
    assert hit.entry.path == tmp_path / "cache" / "objects" / "ab" / KEY
    assert hit.entry.report == {"n": 1}
    assert [f.path for f in hit.entry.tree.files] == ["saved_model.pb", "variables/v.index"]
    assert not list((tmp_path / "cache" / "tmp").iterdir())


def test_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    s = store(tmp_path)
    with pytest.raises(RuntimeError), s.staging(KEY) as tmp:
        (tmp / "data" / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("export failed")
    assert s.lookup(KEY).entry is None
    assert not list((tmp_path / "cache" / "tmp").iterdir())


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda d: (d / "saved_model.pb").write_bytes(b"other"), "saved_model.pb changed"),
        (lambda d: (d / "variables" / "v.index").unlink(), "missing file variables/v.index"),
        (lambda d: (d / "extra.txt").write_text("x"), "unexpected file extra.txt"),
        (lambda d: (d.parent / "manifest.json").write_text("{"), "unreadable manifest"),
    ],
)
def test_damaged_entry_is_detected_and_removed(tmp_path: Path, damage, problem: str) -> None:  # type: ignore[no-untyped-def]
    s = store(tmp_path)
    commit(s)
    data = s.entry_path(KEY) / "data"
    for f in data.rglob("*"):
        f.chmod(0o644) if f.is_file() else None
    damage(data)
    found = s.lookup(KEY)
    assert found.entry is None
    assert found.problem.startswith("damaged entry: ") and problem in found.problem
    assert not s.entry_path(KEY).exists()


def test_same_size_change_is_caught_with_full_verify(tmp_path: Path) -> None:
    s = store(tmp_path)
    commit(s, content=b"aaaa")
    f = s.entry_path(KEY) / "data" / "saved_model.pb"
    st = f.stat()
    f.chmod(0o644)
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: stat can't tell
    full = Store(s.root, StatCache(None), full_verify=True)
    assert full.lookup(KEY).problem == "damaged entry: saved_model.pb changed content"


def test_full_verify_reads_an_entry_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path)
    commit(s)
    for f in (s.entry_path(KEY) / "data").rglob("*"):
        # Committed seconds ago, so not "racily clean" (a file may change again in its tick).
        os.utime(f, (f.stat().st_atime - 10, f.stat().st_mtime - 10))
    reads = count_reads(monkeypatch)
    # As mode=check opens it: full verification, a stat cache that trusts no earlier run.
    full = Store(s.root, StatCache(s.root / "stat.json", trust=False), full_verify=True)
    for _ in range(3):  # a model served under three profiles
        assert full.lookup(KEY).entry is not None
    assert sorted(reads) == ["saved_model.pb", "v.index"]
    # A new run reads again, whatever an earlier run recorded.
    again = Store(s.root, StatCache(s.root / "stat.json", trust=False), full_verify=True)
    assert again.lookup(KEY).entry is not None
    assert len(reads) == 4


def test_plan_and_check_verify_an_entry_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(tmp_path)
    commit(s)
    walks: list[Path] = []
    real = cache_mod.relative_files

    def counted(root: Path) -> list[tuple[str, Path]]:
        walks.append(root)
        return real(root)

    monkeypatch.setattr(cache_mod, "relative_files", counted)
    readonly = Store(s.root, StatCache(None, trust=False), full_verify=True, readonly=True)
    assert all(readonly.lookup(KEY).entry is not None for _ in range(3))
    assert len(walks) == 1
    # A build (which commits and evicts) checks each time.
    assert all(s.lookup(KEY).entry is not None for _ in range(2))
    assert len(walks) == 3


def test_readonly_store_reports_but_keeps_damage(tmp_path: Path) -> None:
    s = store(tmp_path)
    commit(s)
    (s.entry_path(KEY) / "data" / "extra").write_text("x")
    ro = Store(s.root, StatCache(None), readonly=True)
    assert ro.lookup(KEY).entry is None
    assert s.entry_path(KEY).exists()


def test_committed_files_are_read_only_and_a_write_past_that_is_caught(tmp_path: Path) -> None:
    """Write bits are cleared, which stops an ordinary user's editor or tool. Root (as this
    suite often runs) writes past mode bits, so the guard that holds for everyone is the digest:
    the edited entry is refused on lookup."""
    s = store(tmp_path)
    commit(s)
    f = s.entry_path(KEY) / "data" / "saved_model.pb"
    assert f.stat().st_mode & 0o222 == 0
    try:
        with f.open("ab") as out:  # succeeds only where mode bits do not bind (root)
            out.write(b"!")
    except PermissionError:
        return  # an ordinary user: the mode bits held
    found = Store(s.root, StatCache(None)).lookup(KEY)
    assert found.entry is None
    assert found.problem == "damaged entry: saved_model.pb changed size"


def test_key_recipe_is_pinned() -> None:
    # Changing how keys are made must be deliberate: bump KEY_SALT and update this hash.
    assert KEY_SALT == "tftrt-build/key/1"
    key = stage_key("source", {"kind": "archive", "sha256": "0" * 64, "subdir": ""}, {})
    assert key == "392be2b21872766388dcd9888f6fd6f2623477ffdbd79eca99c388a68e95a276"
