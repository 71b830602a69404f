"""Commit a bundle and ``tftrt.lock`` together: the bundle on disk always matches a lock.

The order, each step named in ``store.steps``: the new bundle is assembled in a commit folder
(``bundle-staged``); the new lock is written to a temporary file (``lock-temp-written``); a
journal records both; the bundle is swapped in, in one atomic step where Linux allows it
(``renameat2(RENAME_EXCHANGE)``), so its path is never missing (``bundle-swapped``); then the
lock is renamed into place (``lock-renamed``). If the lock cannot be renamed (a read-only
folder, a full disk), the old bundle is swapped back.

A process killed in between leaves its commit folder with the journal. The next build's
clean-up (``recover``) reads it: if the lock was renamed, the new bundle is put in place (it
is what the lock describes); if not, the old bundle is put back (it is what the old lock
describes). Either way the pair is whole again before anything is removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tftrt_build.store import locks
from tftrt_build.store.fs import exchange, write_file
from tftrt_build.store.steps import reached, step
from tftrt_build.store.tmp import Scratch, remove

JOURNAL = "journal.json"


def bundle_lock(cache_dir: Path, bundle_dir: Path) -> Path:
    """The lock file that one process at a time holds to write this bundle."""
    return locks.for_path(cache_dir, "bundle", bundle_dir)


def lock_file_lock(cache_dir: Path, lock_path: Path) -> Path:
    """The lock file held while ``tftrt.lock`` is read, merged and written."""
    return locks.for_path(cache_dir, "lockfile", lock_path)


class BundleCommit:
    """One commit of a bundle (optional) and a lock file (optional), for the caller to drive.

    The caller holds the bundle's lock throughout and the lock file's lock from reading the
    lock to ``rename_lock``. ``close`` removes the commit folder (the old bundle with it).
    """

    def __init__(self, cache_dir: Path, bundle_dir: Path, lock_path: Path) -> None:
        self.scratch = Scratch(cache_dir)
        self.bundle_dir = bundle_dir.absolute()
        self.lock_path = lock_path.absolute()
        self.lock_tmp: Path | None = None
        self.swapped = False
        with step("bundle", self.bundle_dir):
            self.folder = self.scratch.path("commit", near=self.bundle_dir.parent)
            self.folder.mkdir()

    @property
    def staged(self) -> Path:
        """Where the new bundle is assembled (the caller fills it)."""
        return self.folder / "bundle"

    def write_lock(self, text: str) -> None:
        with step("lock-temp", self.lock_path):
            self.lock_tmp = self.scratch.path("lock", near=self.lock_path.parent, suffix=".tmp")
            write_file(self.lock_tmp, text)
        reached("lock-temp-written")

    def swap(self) -> None:
        """Put the staged bundle at the bundle's path; the old one goes into the commit folder."""
        staged, final = self.staged, self.bundle_dir
        journal = {
            "bundle": str(final),
            "lock": str(self.lock_path),
            "lock_tmp": str(self.lock_tmp) if self.lock_tmp else None,
            "new_inode": os.stat(staged).st_ino,
        }
        with step("swap", final):
            write_file(self.folder / JOURNAL, json.dumps(journal))
            final.parent.mkdir(parents=True, exist_ok=True)
            if not final.exists():
                staged.rename(final)
            elif not exchange(staged, final):
                # No atomic exchange here: two renames; ``recover`` closes the gap after a kill.
                final.rename(self.folder / "old")
                staged.rename(final)
        self.swapped = True
        reached("bundle-swapped")

    def rename_lock(self) -> None:
        if self.lock_tmp is None:
            return
        try:
            with step("lock", self.lock_path):
                os.replace(self.lock_tmp, self.lock_path)
        except BaseException:
            if self.swapped:
                settle(self.folder, lock_renamed=False)
            raise
        reached("lock-renamed")

    def close(self) -> None:
        remove(self.folder)
        if self.lock_tmp is not None:
            remove(self.lock_tmp)


def recover(cache_dir: Path, folder: Path) -> None:
    """Make whole a commit whose process died: called by the clean-up before removing it."""
    try:
        journal = json.loads((folder / JOURNAL).read_text())
        bundle = Path(journal["bundle"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # no journal: the process died before swapping anything
    with locks.holding(bundle_lock(cache_dir, bundle)):
        lock_tmp = journal.get("lock_tmp")
        settle(folder, lock_renamed=not (lock_tmp and Path(lock_tmp).exists()))


def settle(folder: Path, lock_renamed: bool) -> None:
    """Leave at the bundle's path the folder that the lock on disk describes.

    The new bundle is told apart from the old by the inode the journal recorded: a rename or
    an exchange keeps a folder's inode.
    """
    journal = json.loads((folder / JOURNAL).read_text())
    final = Path(journal["bundle"])
    new_inode = int(journal["new_inode"])

    def inode(path: Path) -> int | None:
        try:
            return os.lstat(path).st_ino
        except OSError:
            return None

    final.parent.mkdir(parents=True, exist_ok=True)
    places = [final, folder / "bundle", folder / "old"]
    new = next((p for p in places if inode(p) == new_inode), None)
    old = next((p for p in places[1:] if inode(p) not in (None, new_inode)), None)
    if lock_renamed:
        if new is not None and new != final:
            _put(new, final, folder)
        return
    if new == final:
        if old is not None:
            _put(old, final, folder)
        else:
            # There was no bundle before this commit: the old state is no bundle.
            final.rename(folder / "undone")
    elif not final.exists() and old is not None:
        old.rename(final)


def _put(folder_in: Path, final: Path, commit: Path) -> None:
    """Put ``folder_in`` at ``final``, whatever is there going into the commit folder."""
    if not final.exists():
        folder_in.rename(final)
    elif not exchange(folder_in, final):
        final.rename(commit / "displaced")
        folder_in.rename(final)
