"""The TensorFlow, Keras and TF Serving API versions of this Python, remembered in the cache.

They go into cache keys (an export's toolchain), so every run needs them; asking
``importlib.metadata`` costs a tenth of a second (its import, and a walk over every folder on
``sys.path``), a twentieth of a warm run. Installing, upgrading or removing a package adds or
removes a ``*.dist-info`` folder, which changes the modification time of the folder on
``sys.path`` that holds it; so the versions are kept (``<cache>/packages.json``) with the
(mtime, inode) of every ``sys.path`` folder, this interpreter and the packages asked about,
and used again only while all of them are unchanged. As in the stat cache, a folder changed
within a second of the moment the versions were read is "racily clean" and not trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tftrt_build.execute.task import TOOLCHAIN_PACKAGES, package_versions
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.tmp import Scratch

FILE = "packages.json"
# A folder modified this close to the reading may have changed in the same clock tick.
_RACY_NS = 1_000_000_000


def _stamps() -> list[list[Any]]:
    found: list[list[Any]] = []
    for entry in sys.path:
        try:
            st = os.stat(entry or ".")
        except OSError:
            found.append([entry, None, None])
            continue
        found.append([entry, st.st_mtime_ns, st.st_ino])
    return found


def installed_versions(cache_dir: Path | None) -> dict[str, str]:
    """``package_versions()`` of this interpreter, from the cache while nothing was installed."""
    if cache_dir is None:
        return package_versions()
    path = cache_dir / FILE
    stamps = _stamps()
    try:
        kept = json.loads(path.read_text())
        newest = max((s[1] for s in stamps if s[1] is not None), default=0)
        if (
            kept["python"] == sys.executable
            and kept["packages"] == list(TOOLCHAIN_PACKAGES)
            and kept["stamps"] == stamps
            and newest + _RACY_NS <= kept["read_at"]
        ):
            return {str(k): str(v) for k, v in kept["versions"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: read the versions again
    read_at = time.time_ns()
    versions = package_versions()
    record = {
        "python": sys.executable,
        "packages": list(TOOLCHAIN_PACKAGES),  # what this version of tftrt-build asks about
        "stamps": stamps,
        "read_at": read_at,
        "versions": versions,
    }
    # A speed-up only, kept in a cache that exists: a run refused for bad input leaves no cache.
    if cache_dir.is_dir():
        with contextlib.suppress(OSError):
            tmp = Scratch(cache_dir).path("packages", suffix=".tmp")
            atomic_write_text(path, json.dumps(record), tmp)
    return versions
