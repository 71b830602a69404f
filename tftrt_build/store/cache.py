"""The content-addressed store: ``<root>/objects/<key[:2]>/<key>/{manifest.json,data/}``.

An entry is staged under ``<root>/tmp/`` and renamed into place only once its data is complete
and its manifest (the digest of every file) is written, so an interrupted build never leaves an
entry a later run would serve. Every hit is checked against its manifest; a damaged entry is
moved aside and deleted, and the caller rebuilds it. Processes that need the same missing key
take turns on the key's lock (``claim``): one builds it, the others find it built.

With a remote cache (``remote``, ``cache.remote``) a key missing here is pulled into staging,
checked against the remote manifest's digests and committed like a built entry; an entry
built or found here is pushed where the remote lacks it. In plan and check (``readonly``) the
remote is only asked whether it has the key.

Why this module is long: a remote entry enters the store through the same key lock, staging
and commit as a built one, so pulling and sharing live beside them.
"""

from __future__ import annotations

import contextlib
import json
import logging
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
    relative_files,
)
from tftrt_build.store.remote import Remote, RemoteDamaged, RemoteError
from tftrt_build.store.steps import reached, step
from tftrt_build.store.tmp import Scratch, remove

log = logging.getLogger(__name__)
ENTRY_FORMAT = 1
# Manifest fields the store writes itself; the rest is the record the caller gave.
_OWN_FIELDS = ("format", "key", "digest", "files")
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    manifest: dict[str, Any]
    # Fetched from cache.remote by this process rather than built or found here.
    pulled: bool = False

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
    # plan and check: not here, but cache.remote has it (a build would pull it).
    remote: bool = False


class Store:
    def __init__(
        self,
        root: Path,
        stat_cache: StatCache,
        full_verify: bool = False,
        readonly: bool = False,
        remote: Remote | None = None,
        remote_required: bool = True,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.stat_cache = stat_cache
        # Re-hash every file of an entry used, instead of trusting the stat cache.
        self.full_verify = full_verify
        self.scratch = Scratch(root)
        # plan and check only look: a damaged entry is reported, not removed.
        self.readonly = readonly
        self.remote = remote
        # cache.remote_required=false: a failing remote is warned about and then left alone.
        self.remote_required = remote_required
        # Where warnings a user must see go (the CLI's notes); logged either way.
        self.notify = notify
        # Keys the remote lacks, or has damaged, and keys known to be there: asked once a run.
        self._remote_missed: set[str] = set()
        self._remote_has: set[str] = set()
        # plan and check: entries found intact this run. They look up a model's source once
        # per profile that serves it, and never commit or evict, so one check per key suffices.
        self._intact: dict[str, Lookup] = {}

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    def entry_path(self, key: str) -> Path:
        return self.objects / key[:2] / key

    def lookup(self, key: str, progress: Progress | None = None, pull: bool = True) -> Lookup:
        """The checked entry of a key: here, else (``pull``) from cache.remote.

        An entry found here that the remote lacks is pushed to it (builds only).
        """
        if key in self._intact:
            return self._intact[key]
        found = self._lookup_local(key, progress)
        if found.entry is not None:
            self._share(found.entry)
            if self.readonly:
                self._intact[key] = found
            return found
        if not pull or self.remote is None:
            return found
        if self.readonly:
            has = self._remote_call(lambda r: r.has(key), False)
            return Lookup(None, found.problem, remote=bool(has))
        with locks.holding(locks.lock_file(self.root, "key", key)):
            return self._pull(key, found, progress)

    def _lookup_local(self, key: str, progress: Progress | None = None) -> Lookup:
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

    def _digests(self) -> StatCache | None:
        """Where a file's digest may come from besides its bytes.

        Full verification takes only what this run read itself (a stat cache that does not
        trust earlier runs): a key looked up again, as a model served under 16 profiles is,
        was read 16 times, most of a check at 128 artifacts.
        """
        if not self.full_verify:
            return self.stat_cache
        return None if self.stat_cache.trust else self.stat_cache

    def _check_files(self, data: Path, manifest: dict[str, Any], progress: Progress | None) -> str:
        expected = {f[0]: (f[1], f[2]) for f in manifest["files"]}
        present = dict(relative_files(data))
        if extra := sorted(set(present) - set(expected)):
            return f"unexpected file {extra[0]}"
        for rel, (size, digest) in expected.items():
            p = present.get(rel)
            if p is None:
                return f"missing file {rel}"
            if p.stat().st_size != size:
                return f"{rel} changed size"
            if hash_file(p, self._digests(), progress) != digest:
                return f"{rel} changed content"
        return ""

    @contextlib.contextmanager
    def claim(self, key: str, waiting: Callable[[], None] | None = None) -> Iterator[Lookup]:
        """Hold the key's lock and look it up again: built meanwhile by another process, or not.

        Only one process builds a key at a time; the others wait here (``waiting`` is called
        once if they have to) and then find the entry committed.
        """
        with locks.holding(locks.lock_file(self.root, "key", key), waiting):
            found = self._lookup_local(key)
            if found.entry is None and self.remote is not None and not self.readonly:
                found = self._pull(key, found, None)
            yield found

    def _pull(self, key: str, found: Lookup, progress: Progress | None) -> Lookup:
        """Fetch a missing key from the remote; the caller holds the key's lock."""
        again = self._lookup_local(key, progress)
        if again.entry is not None or key in self._remote_missed:
            return again  # another process committed it meanwhile, or asked already
        remote = self.remote
        assert remote is not None
        try:
            with self.staging(key) as tmp:
                pulled = self._remote_call(lambda r: r.pull(key, tmp / "data"), None)
                if pulled is None:
                    self._remote_missed.add(key)
                    return found
                record = {k: v for k, v in pulled.manifest.items() if k not in _OWN_FIELDS}
                entry = self.commit(key, tmp, record, progress, pulled=True)
        except RemoteDamaged as exc:
            self._remote_missed.add(key)
            self._warn(f"cache.remote: {remote.url}: entry {key[:12]} is damaged ({exc}); not used")
            return Lookup(None, f"damaged remote entry: {exc}")
        if entry.tree.digest != pulled.manifest["digest"]:
            # Checked file by file while pulled; a difference now is a change under our feet.
            self.evict(key)
            return Lookup(None, "damaged entry: changed while pulled")
        log.info("cache.remote: pulled %s", key)
        self._remote_has.add(key)
        return Lookup(entry)

    def _share(self, entry: Entry) -> None:
        """Push an entry found or built here that the remote lacks (build only)."""
        if self.remote is None or self.readonly or entry.key in self._remote_has:
            return
        key, path = entry.key, entry.path
        if not self._remote_call(lambda r: r.has(key), True) or key in self._remote_missed:
            self._remote_call(lambda r: r.push(key, path), None)
            self._remote_missed.discard(key)
        self._remote_has.add(key)

    def _remote_call(self, call: Callable[[Remote], Any], otherwise: Any) -> Any:
        """Run a call on the remote; with remote_required=false a failure warns and drops it."""
        if self.remote is None:
            return otherwise
        try:
            return call(self.remote)
        except RemoteError as exc:
            if self.remote_required:
                raise
            self._warn(f"{exc.message}; going on without it (cache.remote_required=false)")
            self.remote = None
            return otherwise

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        if self.notify is not None:
            self.notify(text)

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
        self,
        key: str,
        staged: Path,
        record: dict[str, Any],
        progress: Progress | None = None,
        pulled: bool = False,
    ) -> Entry:
        """Hash the staged data, write its manifest and rename it into the store (and push it
        to the remote, unless it was ``pulled`` from there)."""
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
        entry = Entry(key, final, manifest, pulled=pulled)
        if not pulled:
            self._share(entry)
        return entry

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
