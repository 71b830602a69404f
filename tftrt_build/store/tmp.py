"""Temporary paths: named for their owner, kept in one place per file system, cleaned on start.

Every temporary path tftrt-build makes (a cache entry being built, an evicted entry being
deleted, a stage's task folder, a bundle and lock being committed, the stat cache being saved)
is named ``<kind>.<host>.<pid>.<start>.<random>`` by ``Scratch.path``: the owner's host, its
process id and the process's start time (so a recycled pid is not mistaken for the owner),
and a random part (so one process's paths never collide). They live in ``<cache>/tmp/``; only
a destination that a rename from there cannot reach gets its temporary paths in ``.tftrt-tmp/``
beside it, which holds a ``.gitignore`` of ``*``. Which destinations those are is found by
trying the rename (once per folder and process): a rename cannot cross mounts, and a bind mount
has the device number of its source, so comparing ``st_dev`` says "same" where the final
rename would fail with EXDEV.

``Scratch.clean`` runs when a build starts: it removes what processes that are gone left
behind, and never touches a path of a process that is still alive. A commit that a kill
interrupted is recovered first (``store.commit.recover``), so the bundle and the lock always
make a pair.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tftrt_build.store.fs import process_alive

# The folder of temporary paths inside the cache, and beside a destination on another mount.
CACHE_TMP = "tmp"
SIDE_TMP = ".tftrt-tmp"
# A file moved from the cache's tmp/ into a destination folder to learn whether renames reach it.
PROBE = ".tftrt-probe"
# A folder of another host cannot be checked for liveness: removed only when this old.
FOREIGN_MAX_AGE_S = 7 * 24 * 3600
_NAME = re.compile(
    r"^(?P<kind>[a-z-]+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.(?P<start>\d+)\.(?P<rand>[0-9a-f]+)"
)
# Names of releases before owner-named paths: <key16>.<pid>.<hex8> and trash.<key16>.<hex8>.
_LEGACY = re.compile(r"^[0-9a-f]{16}\.(?P<pid>\d+)\.[0-9a-f]{8}$")
# Whether a rename from a cache's tmp/ reaches a folder, found once per process:
# (tmp folder, folder, the folder's device and inode, so a mount made later is asked again).
_REACHES: dict[tuple[str, str, int, int], bool] = {}


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def process_start(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (Linux); None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: int  # 0 where the start time cannot be read

    @classmethod
    def me(cls) -> Owner:
        return cls(_host(), os.getpid(), process_start(os.getpid()) or 0)

    def tag(self) -> str:
        return f"{self.host}.{self.pid}.{self.start}"

    def alive(self) -> bool:
        if self.host != _host():
            return True  # cannot be checked from here; see FOREIGN_MAX_AGE_S
        if not process_alive(self.pid):
            return False
        # A pid reused by a later process is not the owner.
        return not self.start or process_start(self.pid) in (None, self.start)


def owner_of(name: str) -> Owner | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return Owner(match["host"], int(match["pid"]), int(match["start"]))


class Scratch:
    """The temporary space of one cache: where temporary paths are made and cleaned."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.root = cache_dir / CACHE_TMP
        self.owner = Owner.me()

    def place(self, near: Path | None = None) -> Path:
        """The temporary folder on the file system of ``near`` (a folder), created if needed."""
        self.root.mkdir(parents=True, exist_ok=True)
        if near is None:
            return self.root
        near.mkdir(parents=True, exist_ok=True)
        if self._reaches(near):
            return self.root
        side = near / SIDE_TMP
        side.mkdir(exist_ok=True)
        # Git ignores the folder by itself, wherever the project's .gitignore stands.
        ignore = side / ".gitignore"
        if not ignore.is_file() or ignore.read_text() != "*\n":
            ignore.write_text("*\n")
        return side

    def _reaches(self, near: Path) -> bool:
        st = os.stat(near)
        key = (str(self.root.absolute()), str(near.absolute()), st.st_dev, st.st_ino)
        if key not in _REACHES:
            _REACHES[key] = self._probe(near)
        return _REACHES[key]

    def _probe(self, near: Path) -> bool:
        """Try the rename a commit makes: a file from tmp/ into ``near`` (then removed).

        Only EXDEV says "no": another error (a read-only folder) is left for the write itself
        to report, naming its step. A kill in between leaves the probe in ``near``, named for
        its owner, for ``clean`` to remove.
        """
        name = f"{PROBE}.{self.owner.tag()}.{uuid.uuid4().hex[:12]}"
        here, there = self.root / name, near / name
        here.touch(exist_ok=False)
        try:
            os.rename(here, there)
        except OSError as exc:
            return exc.errno != errno.EXDEV
        finally:
            here.unlink(missing_ok=True)
        there.unlink(missing_ok=True)
        return True

    def path(self, kind: str, near: Path | None = None, suffix: str = "") -> Path:
        """A fresh, owner-named path (not created) for a temporary file or folder."""
        name = f"{kind}.{self.owner.tag()}.{uuid.uuid4().hex[:12]}{suffix}"
        return self.place(near) / name

    def places(self, nears: list[Path]) -> list[Path]:
        """The temporary folders that exist for this cache and these destination folders."""
        found = [self.root] if self.root.is_dir() else []
        found += [n / SIDE_TMP for n in nears if (n / SIDE_TMP).is_dir()]
        return found

    def clean(self, nears: list[Path], recover: Callable[[Path], None]) -> list[Path]:
        """Remove what dead owners left in the temporary folders; returns what was removed.

        ``recover`` is called first for each dead owner's commit journal, before anything is
        removed (a journal names a lock file that may sit in another temporary folder), so
        that an interrupted bundle swap is undone or finished before its folders go.
        """
        places = self.places(nears)
        dead = [
            child
            for place in places
            for child in sorted(place.iterdir())
            if child.name != ".gitignore" and _abandoned(child)
        ]
        dead += [
            probe
            for near in nears
            if near.is_dir()
            for probe in sorted(near.glob(f"{PROBE}.*"))
            if _abandoned(probe)
        ]
        for child in dead:
            if child.name.startswith("commit."):
                recover(child)
        for child in dead:
            remove(child)
        for place in places:
            if place.name == SIDE_TMP and not any(p.name != ".gitignore" for p in place.iterdir()):
                shutil.rmtree(place, ignore_errors=True)
        return dead


def _abandoned(path: Path) -> bool:
    # A probe is hidden in the user's folder: its owner-named part follows the dot.
    owner = owner_of(path.name[1:] if path.name.startswith(f"{PROBE}.") else path.name)
    if owner is not None:
        if owner.host != _host():
            return _age(path) > FOREIGN_MAX_AGE_S
        return not owner.alive()
    legacy = _LEGACY.match(path.name)
    if legacy is not None:
        return not process_alive(int(legacy["pid"]))
    # Not a name tftrt-build makes (trash of old releases, a stray file): nobody owns it.
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def remove(path: Path) -> None:
    """Remove a file or folder tree (read-only files in writable folders included)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def task_dir(cache_dir: Path | None, kind: str = "task") -> Iterator[Path]:
    """A folder for one stage's task and result files, removed afterwards (and after a kill).

    Without a cache (tests that run an executor alone) it is a folder of the system's.
    """
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix=f"tftrt-{kind}-") as tmp:
            yield Path(tmp)
        return
    folder = Scratch(cache_dir).path(kind)
    folder.mkdir()
    try:
        yield folder
    finally:
        remove(folder)
