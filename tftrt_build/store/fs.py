"""File-system helpers: atomic writes, folder swaps, hard-link copies."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file under a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def link_tree(src: Path, dst: Path, hardlink: bool = True) -> None:
    """Copy a folder, hard-linking files where the file system allows it."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames.sort()
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            source, target = Path(dirpath, name), dst / rel / name
            if hardlink:
                try:
                    os.link(source, target)
                    continue
                except OSError as exc:
                    # Other device, or no hard links here: fall back to copying.
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
            shutil.copy2(source, target)


def replace_dir(staged: Path, final: Path) -> None:
    """Put a complete folder at ``final``, replacing what is there with two renames.

    Readers see the old folder or the new one, never a mix. If the process dies between the
    renames, ``restore_dir`` puts the old folder back on the next run.
    """
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(final)


def restore_dir(final: Path) -> None:
    """Undo a replace_dir that was interrupted between its two renames."""
    if final.exists() or not final.parent.is_dir():
        return
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        olds[-1].rename(final)


def process_alive(pid: int) -> bool:
    """Whether a process of this host is still there (a zombie counts as gone soon enough)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
