"""Inter-process locks (``filelock``): one per cache key, per bundle, per lock file, per stat cache.

Processes that build the same key, write the same bundle or update the same ``tftrt.lock``
take turns instead of racing; the kernel releases a lock when its holder dies, even on
``kill -9``. The lock files live in ``<cache>/locks/``, named for what they guard, so nothing
appears in the project. Locks are always taken in one order (a convert key, then its source
key; a bundle, then the lock file), so two processes never wait for each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

LOCKS = "locks"


def lock_file(cache_dir: Path, kind: str, what: str) -> Path:
    """The lock file guarding ``what`` (a cache key, or an absolute path) of a kind."""
    name = what if kind == "key" else hashlib.sha256(what.encode()).hexdigest()[:24]
    return cache_dir / LOCKS / kind / f"{name}.lock"


def for_path(cache_dir: Path, kind: str, path: Path) -> Path:
    """The lock file of a file or folder, by its real absolute path."""
    return lock_file(cache_dir, kind, os.path.realpath(path))


@contextlib.contextmanager
def holding(path: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock at ``path``; call ``waiting`` once if another process holds it now."""
    from filelock import FileLock, Timeout  # mode=plan and mode=check never take one

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting is not None:
            waiting()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
