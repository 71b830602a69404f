"""The content-addressed store: ``<root>/objects/<key[:2]>/<key>/{manifest.json,data/}``.

An entry is staged under ``<root>/tmp/`` and renamed into place only once its data is complete
and its manifest (the digest of every file) is written, so an interrupted build never leaves an
entry a later run would serve. Every hit is checked against its manifest; a damaged entry is
moved aside and deleted, and the caller rebuilds it. Processes that need the same missing key
take turns on the key's lock (``claim``): one builds it, the others find it built.
"""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.errors import CacheError
from tftrt_build.store import commit as bundle_commit
from tftrt_build.store import locks
from tftrt_build.store.digest import (
    FileDigest,
    Progress,
    StatCache,
    TreeDigest,
    hash_file,
    hash_tree,
    list_files,
)
from tftrt_build.store.steps import reached, step
from tftrt_build.store.tmp import Scratch, remove

ENTRY_FORMAT = 1
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def tree(self) -> TreeDigest:
        files = tuple(FileDigest(*f) for f in self.manifest["files"])
        return TreeDigest(self.manifest["digest"], files)

    @property
    def report(self) -> dict[str, Any]:
        return dict(self.manifest.get("report", {}))


@dataclass(frozen=True)
class Lookup:
    entry: Entry | None
    # Why there is no usable entry: "absent", or what is damaged.
    problem: str = ""


class Store:
    def __init__(
        self, root: Path, stat_cache: StatCache, full_verify: bool = False, readonly: bool = False
    ) -> None:
        self.root = root
        self.stat_cache = stat_cache
        # Re-hash every file of an entry used, instead of trusting the stat cache.
        self.full_verify = full_verify
        self.scratch = Scratch(root)
        # plan and check only look: a damaged entry is reported, not removed.
        self.readonly = readonly

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    def entry_path(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def lookup(self, key: str, progress: Progress | None = None) -> Lookup:
        path = self.entry_path(key)
        if not path.is_dir():
            return Lookup(None, "absent")
        problem = ""
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest.get("format") != ENTRY_FORMAT or manifest.get("key") != key:
                problem = "manifest does not match the entry"
            else:
                problem = self._check_files(path / "data", manifest, progress)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"unreadable manifest ({exc.__class__.__name__})"
        if problem:
            if not self.readonly:
                self.evict(key)
            return Lookup(None, f"damaged entry: {problem}")
        return Lookup(Entry(key, path, manifest))

    def _check_files(self, data: Path, manifest: dict[str, Any], progress: Progress | None) -> str:
        expected = {f[0]: (f[1], f[2]) for f in manifest["files"]}
        present = {p.relative_to(data).as_posix(): p for p in list_files(data)}
        if extra := sorted(set(present) - set(expected)):
            return f"unexpected file {extra[0]}"
        for rel, (size, digest) in expected.items():
            p = present.get(rel)
            if p is None:
                return f"missing file {rel}"
            if p.stat().st_size != size:
                return f"{rel} changed size"
            cache = None if self.full_verify else self.stat_cache
            if hash_file(p, cache, progress) != digest:
                return f"{rel} changed content"
        return ""

    @contextlib.contextmanager
    def claim(self, key: str, waiting: Callable[[], None] | None = None) -> Iterator[Lookup]:
        """Hold the key's lock and look it up again: built meanwhile by another process, or not.

        Only one process builds a key at a time; the others wait here (``waiting`` is called
        once if they have to) and then find the entry committed.
        """
        with locks.holding(locks.lock_file(self.root, "key", key), waiting):
            yield self.lookup(key)

    @contextlib.contextmanager
    def staging(self, key: str) -> Iterator[Path]:
        """A fresh folder to build an entry in; removed whatever happens."""
        try:
            tmp = self.scratch.path("stage")
            (tmp / "data").mkdir(parents=True)
        except OSError as exc:
            raise CacheError(f"cannot create a staging folder in {self.root}: {exc}") from exc
        try:
            with step("staging", tmp / "data"):
                yield tmp
        finally:
            remove(tmp)

    def commit(
        self, key: str, staged: Path, record: dict[str, Any], progress: Progress | None = None
    ) -> Entry:
        """Hash the staged data, write its manifest and rename it into the store."""
        reached("staging-done")
        data = staged / "data"
        for p in list_files(data):
            p.chmod(_READ_ONLY)
        tree = hash_tree(data, self.stat_cache, progress)
        manifest = {
            "format": ENTRY_FORMAT,
            "key": key,
            **record,
            "digest": tree.digest,
            "files": [[f.path, f.size, f.digest] for f in tree.files],
        }
        final = self.entry_path(key)
        with step("manifest", final):
            (staged / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        reached("manifest-written")
        with step("entry", final):
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                staged.rename(final)
            except OSError:
                # Another process (not holding our key lock: another host sharing the cache)
                # committed the same key first; its entry is checked on use like any other.
                if not final.is_dir():
                    raise
        reached("entry-renamed")
        # The files moved (same inodes), so their stat-cache rows follow them.
        self.stat_cache.move(data, final / "data")
        return Entry(key, final, manifest)

    def evict(self, key: str) -> None:
        path = self.entry_path(key)
        if not path.exists():
            return
        # Rename first, so a half-deleted entry is never seen under its key.
        trash = self.scratch.path("trash")
        path.rename(trash)
        self.stat_cache.forget(path)
        remove(trash)

    def clean_tmp(self, nears: list[Path] | None = None) -> list[Path]:
        """Remove what processes that are gone left in the temporary folders.

        ``nears`` are the folders of this run's destinations (the bundle's parent, the lock's
        folder), whose ``.tftrt-tmp/`` holds temporary paths when they are on another file
        system than the cache. An interrupted bundle commit is recovered first.
        """
        return self.scratch.clean(
            nears or [], lambda journal: bundle_commit.recover(self.root, journal)
        )


def tree_record(tree: TreeDigest) -> dict[str, Any]:
    return {"digest": tree.digest, "files": len(tree.files), "bytes": tree.size}
