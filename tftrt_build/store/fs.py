"""File-system primitives: atomic writes, folder copies that share no inode, atomic swaps."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import uuid
from pathlib import Path

# ioctl FICLONE (linux/fs.h): the destination shares the source's blocks copy-on-write, as a
# separate inode, so a later write to either leaves the other as it was.
_FICLONE = 0x40049409
# renameat2 flag: swap two paths in one step (linux/fs.h).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def write_file(path: Path, text: str) -> None:
    """Write and flush a file to disk (the caller renames it into place)."""
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str, tmp: Path | None = None) -> None:
    """Write a file under a temporary name, then rename it into place.

    ``tmp`` is the temporary path (on the same file system); by default a hidden sibling.
    """
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        write_file(tmp, text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def clone_or_copy(source: Path, target: Path) -> None:
    """Copy a file into a new inode: a reflink where the file system can, bytes otherwise."""
    with source.open("rb") as src, target.open("xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError as exc:
            # No reflinks here (ext4, tmpfs) or across devices: copy the bytes.
            if exc.errno not in (
                errno.EOPNOTSUPP,
                errno.ENOTTY,
                errno.EXDEV,
                errno.EINVAL,
                errno.EBADF,
                errno.ENOSYS,
                errno.EPERM,
            ):
                raise
        shutil.copyfileobj(src, dst, 1 << 20)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder's regular files, each into a new inode (``clone_or_copy``)."""
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            clone_or_copy(Path(dirpath, name), dst / rel / name)


def link_tree(src: Path, dst: Path, hardlink: bool = True) -> None:
    """Copy a folder inside the cache, hard-linking files where the file system allows it.

    Only for one cache entry made from another (both read-only and checked on use); what
    leaves the cache (a bundle) is copied with ``copy_tree``.
    """
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


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system cannot.

    Linux's renameat2(RENAME_EXCHANGE): a reader of either path sees the old or the new
    folder, never none. Other systems, old kernels and some file systems (EINVAL, ENOSYS)
    answer False and the caller uses two renames instead.
    """
    libc = _libc()
    func = getattr(libc, "renameat2", None) if libc is not None else None
    if func is None:
        return False
    result = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(staged: Path, final: Path) -> None:
    """Put the complete folder ``staged`` at ``final``, replacing a folder there.

    For results a reader may look at while they are replaced (bench runs): one atomic exchange
    where the system has it, else two renames. Not a commit step; bundles use store.commit.
    """
    if not final.exists():
        staged.rename(final)
        return
    if exchange(staged, final):
        shutil.rmtree(staged)
        return
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def process_alive(pid: int) -> bool:
    """Whether a process of this host is still there."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
