"""GPU slots (``executor.gpu_pool``): each stage of a parallel sweep on a GPU of its own.

TensorFlow takes memory on every GPU it can see, and two TF-TRT conversions on one GPU can
exhaust it or build engines against each other's load. With a pool, every stage holds one
device of the pool for as long as it runs: a lock file per device in ``<cache>/locks/gpu/``
(named for the host and the device), taken without waiting on the first free one; when all
are held the stage waits and tries again. The kernel releases a dead holder's lock, so a
killed job frees its GPU. The local executor then shows the stage only that device
(``CUDA_VISIBLE_DEVICES``), the Docker executor asks the engine for it (``device_ids``).

Unverified on real GPUs here (this machine has none): the slots and the environment a stage
gets are tested with fake device lists and concurrent processes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tftrt_build.store.locks import lock_file

# How often a stage waiting for a GPU looks again.
POLL_S = 0.5


def pool_devices(pool: object, visible: Callable[[], int]) -> list[str]:
    """The devices of ``executor.gpu_pool``: its list, or for ``auto`` every GPU ``visible``
    counts (0..n-1, as the stage process numbers them); [] for no pool."""
    if pool is None:
        return []
    if pool == "auto":
        return [str(i) for i in range(visible())]
    assert isinstance(pool, Sequence) and not isinstance(pool, str), pool
    return [str(d) for d in pool]


@contextlib.contextmanager
def gpu_slot(
    cache_dir: Path,
    scope: str,
    devices: list[str],
    waiting: Callable[[], None] | None = None,
    poll_s: float = POLL_S,
) -> Iterator[str]:
    """Hold one device of ``devices`` that no other process holds; wait while all are held.

    ``scope`` names whose devices they are (this host, or a Docker engine), so two hosts that
    share a cache folder do not take turns on each other's GPUs.
    """
    if not devices:
        raise ValueError("an empty GPU pool")
    told = False
    while True:
        from filelock import FileLock, Timeout  # only a build that runs a stage takes a GPU

        for device in devices:
            path = lock_file(cache_dir, "gpu", f"{scope}:{device}")
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(path)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield device
            finally:
                lock.release()
            return
        if waiting is not None and not told:
            waiting()
            told = True
        time.sleep(poll_s)


def host_scope() -> str:
    return f"host:{socket.gethostname()}"


def visible_devices(device: str, parent: str | None = None) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a stage given pool device ``device``.

    The pool numbers devices as this process sees them: if it runs with its own
    ``CUDA_VISIBLE_DEVICES`` (a CI runner given GPUs 2,3), device 1 is the second of those.
    """
    parent = os.environ.get("CUDA_VISIBLE_DEVICES") if parent is None else parent
    listed = [d.strip() for d in (parent or "").split(",") if d.strip()]
    if listed and device.isdigit() and int(device) < len(listed):
        return listed[int(device)]
    return device
