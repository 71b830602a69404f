"""The content-addressed store: ``<root>/objects/<key[:2]>/<key>/{manifest.json,data/}``.

An entry is staged under ``<root>/tmp/`` and renamed into place only once its data is complete
and its manifest (the digest of every file) is written, so an interrupted build never leaves an
entry a later run would serve. Every hit is checked against its manifest; a damaged entry is
moved aside and deleted, and the caller rebuilds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.errors import CacheError
from tftrt_build.store.digest import (
    FileDigest,
    Progress,
    StatCache,
    TreeDigest,
    hash_file,
    hash_tree,
    list_files,
)
from tftrt_build.store.fs import process_alive

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
        self.full_verify = full_verify
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
    def staging(self, key: str) -> Iterator[Path]:
        """A fresh folder to build an entry in; removed if the build raises."""
        tmp = self.root / "tmp" / f"{key[:16]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            (tmp / "data").mkdir(parents=True)
        except OSError as exc:
            raise CacheError(f"cannot create a staging folder in {self.root}: {exc}") from exc
        try:
            yield tmp
        finally:
            _remove_tree(tmp)

    def commit(
        self, key: str, staged: Path, record: dict[str, Any], progress: Progress | None = None
    ) -> Entry:
        """Hash the staged data, write its manifest and rename it into the store."""
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
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        final = self.entry_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            staged.rename(final)
        except OSError:
            # Another process committed the same key first; its entry is as good as ours.
            if not final.is_dir():
                raise
        # The files moved (same inodes), so their stat-cache rows follow them.
        self.stat_cache.move(data, final / "data")
        return Entry(key, final, manifest)

    def evict(self, key: str) -> None:
        path = self.entry_path(key)
        if not path.exists():
            return
        # Rename first, so a half-deleted entry is never seen under its key.
        trash = self.root / "tmp" / f"trash.{key[:16]}.{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        path.rename(trash)
        self.stat_cache.forget(path)
        _remove_tree(trash)

    def clean_tmp(self) -> None:
        """Remove staging folders left by processes that are gone."""
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return
        for child in tmp.iterdir():
            parts = child.name.split(".")
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if pid is not None and process_alive(pid):
                continue
            _remove_tree(child)


def tree_record(tree: TreeDigest) -> dict[str, Any]:
    return {"digest": tree.digest, "files": len(tree.files), "bytes": tree.size}


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
