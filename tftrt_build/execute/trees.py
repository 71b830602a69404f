"""Folders that enter the cache hold folders and regular files only: no link survives.

A SavedModel from an archive, a local folder or a stage's output folder may hold symbolic or
hard links. Left in place, the cache would chmod the file a link points at, hash and serve
host files (a link inside an archive that points above the cache once the SavedModel folder is
moved up), and the bundle would hard-link them. So a link is resolved to a copy of its target
only when that target is a regular file inside the root being kept (the SavedModel folder,
not the archive's unpack folder), checked on the real paths; any other link is refused,
naming it. Hard links are broken into private copies, so nothing in the cache shares an inode
with a file outside it. Nothing here ever writes, chmods or links through a link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from tftrt_build.errors import StageError

# (path relative to the root, what is wrong with it) -> the error to raise.
Refuse = Callable[[str, str], Exception]


def _entries(root: Path, rel: str = "") -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry under root, without following links, in a fixed order."""
    with os.scandir(root / rel if rel else root) as found:
        entries = sorted(found, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield name, Path(entry.path), st
        if stat.S_ISDIR(st.st_mode):
            yield from _entries(root, name)


def _link_target(link: Path, real_root: str, rel: str, refuse: Refuse) -> Path:
    """The regular file inside the root that a symbolic link resolves to, or refuse it."""
    text = os.readlink(link)
    real = os.path.realpath(link)
    if os.path.commonpath([real, real_root]) != real_root:
        raise refuse(rel, f"is a link to '{text}', outside the folder kept")
    try:
        st = os.stat(real, follow_symlinks=False)
    except OSError:
        raise refuse(rel, f"is a link to '{text}', which does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        raise refuse(rel, f"is a link to the folder '{text}' (only links to files are resolved)")
    if not stat.S_ISREG(st.st_mode):
        raise refuse(rel, f"is a link to '{text}', which is not a regular file")
    return Path(real)


def _other(rel: str, st: os.stat_result, refuse: Refuse) -> Exception:
    return refuse(rel, f"is not a regular file or folder (mode {stat.filemode(st.st_mode)})")


def make_plain(root: Path, refuse: Refuse) -> None:
    """Turn the tree under ``root`` into folders and regular files, in place.

    Every link is checked before anything is changed, so a refused tree is left as it was
    (it is a staging folder the caller removes).
    """
    real_root = os.path.realpath(root)
    copies: list[tuple[Path, Path]] = []
    for rel, path, st in _entries(root):
        if stat.S_ISLNK(st.st_mode):
            copies.append((path, _link_target(path, real_root, rel, refuse)))
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                copies.append((path, path))
        elif not stat.S_ISDIR(st.st_mode):
            raise _other(rel, st, refuse)
    for path, source in copies:
        _replace_with_copy(path, source)


def plain_copy_plan(src: Path, refuse: Refuse) -> list[tuple[str, Path | None]]:
    """What ``copy_plain`` would copy: (relative path, file to copy or None for a folder).

    Raises the first link that does not resolve to a file inside ``src``.
    """
    real_root = os.path.realpath(src)
    plan: list[tuple[str, Path | None]] = []
    for rel, path, st in _entries(src):
        if stat.S_ISDIR(st.st_mode):
            plan.append((rel, None))
        elif stat.S_ISLNK(st.st_mode):
            plan.append((rel, _link_target(path, real_root, rel, refuse)))
        elif stat.S_ISREG(st.st_mode):
            plan.append((rel, path))
        else:
            raise _other(rel, st, refuse)
    return plan


def copy_plain(src: Path, dest: Path, refuse: Refuse) -> None:
    """Copy the tree under ``src`` into ``dest`` as folders and regular files only.

    Files are copied, never linked, so the copy shares no inode with ``src``; a link inside
    ``src`` becomes a copy of its target when that is a file inside ``src``, else is refused
    before anything is copied.
    """
    plan = plain_copy_plan(src, refuse)
    dest.mkdir(parents=True, exist_ok=True)
    for rel, source in plan:
        if source is None:
            (dest / rel).mkdir()
        else:
            shutil.copyfile(source, dest / rel, follow_symlinks=False)


def plain_output(folder: Path, title: str) -> None:
    """A stage's output folder, made plain in place; a link out of it fails the stage."""

    def refuse(rel: str, problem: str) -> StageError:
        return StageError(f"{title}: its output '{rel}' {problem}; a stage output holds files")

    make_plain(folder, refuse)


def is_plain(root: Path) -> str:
    """The first entry under root that is not a folder or a singly linked file; '' if none."""
    for rel, _, st in _entries(root):
        if not stat.S_ISDIR(st.st_mode) and not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
            return rel
    return ""


def _replace_with_copy(path: Path, source: Path) -> None:
    # Copy under a temporary name, then rename over the link (rename never follows it).
    tmp = path.with_name(f".{path.name}.plain-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(source, tmp, follow_symlinks=False)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
