"""The named steps of a commit: one-line errors for each, and test-only pause and fault hooks.

Each write that makes a build's result durable is a named step, in this order: a cache entry's
data is complete (``staging-done``), its manifest written (``manifest-written``), the entry
renamed into place (``entry-renamed``); the bundle assembled (``bundle-staged``), the new
lock written to its temporary file (``lock-temp-written``), the bundle swapped in
(``bundle-swapped``), the lock renamed into place (``lock-renamed``). A push to cache.remote
uploads an entry's files (``remote-files-pushed``), then publishes it
(``remote-entry-published``).

An ``OSError`` inside a step (a full disk, a read-only folder) becomes one ``CacheError`` line
naming the step and the path: ``writing the new lock file /p/tftrt.lock: [Errno 28] No space
left on device``.

Test-only hooks, read from the environment (the reliability tests use them; never set them
otherwise):

- ``TFTRT_PAUSE_AT=<point>``: when the process reaches that point it writes the file
  ``TFTRT_PAUSE_MARKER`` names (the point's name) and sleeps, so a test can kill it there.
- ``TFTRT_FAIL_AT=<step>[:<errno>]``: the step of that name fails with that ``OSError``
  (default 28, ENOSPC), as a full disk would, where a small file system cannot be mounted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tftrt_build.errors import CacheError

PAUSE_ENV = "TFTRT_PAUSE_AT"
MARKER_ENV = "TFTRT_PAUSE_MARKER"
FAIL_ENV = "TFTRT_FAIL_AT"

# Points after which a commit can be interrupted, in the order a build passes them.
POINTS = (
    "staging-done",
    "manifest-written",
    "entry-renamed",
    "bundle-staged",
    "lock-temp-written",
    "bundle-swapped",
    "lock-renamed",
    # A push to cache.remote: every file uploaded, then the entry published.
    "remote-files-pushed",
    "remote-entry-published",
)
# Steps (the writes between the points) and what the error line calls them.
STEPS = {
    "manifest": "writing a cache entry's manifest",
    "entry": "renaming a cache entry into place",
    "bundle": "assembling the bundle",
    "lock-temp": "writing the new lock file",
    "swap": "swapping the bundle into place",
    "lock": "renaming the lock file into place",
    "statcache": "saving the stat cache",
    "staging": "building a cache entry",
    "remote-blob": "uploading a file to cache.remote",
    "remote-entry": "publishing an entry in cache.remote",
}


def reached(point: str) -> None:
    """Test hook: pause here if ``TFTRT_PAUSE_AT`` names this point."""
    assert point in POINTS, point
    if os.environ.get(PAUSE_ENV) != point:
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(point)
    while True:  # until the test kills the process
        time.sleep(60)


@contextlib.contextmanager
def step(name: str, path: Path | str) -> Iterator[None]:
    """Run one write step towards ``path`` (what the user knows: the bundle, the lock).

    Its OSError becomes one line naming the step and the path, and the file it was writing
    when that was another (a temporary file): ``assembling the bundle /p/bundles/x: [Errno
    28] No space left on device (writing /p/.tftrt-cache/tmp/commit.../saved_model.pb)``.
    """
    title = STEPS[name]
    try:
        _inject(name, path)
        yield
    except OSError as exc:
        code = f"[Errno {exc.errno}] " if exc.errno is not None else ""
        text = f"{title} {path}: {code}{exc.strerror or exc}"
        if exc.filename is not None and str(exc.filename) != str(path):
            text += f" (writing {exc.filename})"
        raise CacheError(text) from exc


def _inject(name: str, path: Path | str) -> None:
    wanted = os.environ.get(FAIL_ENV)
    if not wanted:
        return
    step_name, _, number = wanted.partition(":")
    if step_name == name:
        code = int(number) if number else errno.ENOSPC
        raise OSError(code, os.strerror(code), str(path))
