"""The parsed form of a tftrt.lock, kept in the cache so an unchanged lock is not parsed again.

A lock of 128 artifacts is some 13,000 lines of YAML; even libyaml's parser, with PyYAML
building the Python objects, takes a few hundred milliseconds on it, and every plan, check and
build reads the lock. The same data as JSON loads in a few milliseconds. One file per lock path
(``<cache>/parsed/<digest of the path>.json``), overwritten when the lock changes, so it never
grows beyond one per project:

    {"format": 2, "lock": <digest of the lock's bytes>, "body": <digest of the body>}\\n<body>

The body is the JSON of what the YAML loaded (schema and hash included), checked again by
``Lock.from_data`` as the YAML would be. It is used only when the format is this one, the
lock's bytes have the recorded digest and the body has its own: anything else (another lock,
an older format, a torn or edited file) is ignored and the YAML parsed.
Data JSON cannot carry as it is (keys that are not text, dates, NaN) is not kept at all. A
speed-up only: failing to write it is not an error.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from tftrt_build.store.digest import digest_bytes
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.tmp import Scratch

FOLDER = "parsed"
# Bump when what is kept changes: a file of another format is ignored, never misread.
FORMAT = 2


def _place(cache_dir: Path, lock_path: Path) -> Path:
    name = digest_bytes(str(lock_path.absolute()).encode("utf-8"))[:32]
    return cache_dir / FOLDER / f"{name}.json"


def recall(cache_dir: Path, lock_path: Path, data: bytes) -> dict[str, Any] | None:
    """The parsed lock whose bytes are ``data``, if the cache holds it intact; else None."""
    try:
        header, body = _place(cache_dir, lock_path).read_bytes().split(b"\n", 1)
        digests = json.loads(header)
        if (
            digests.get("format") != FORMAT
            or digests.get("lock") != digest_bytes(data)
            or digests.get("body") != digest_bytes(body)
        ):
            return None
        parsed = json.loads(body)
    except (OSError, ValueError, AttributeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def keep(cache_dir: Path, lock_path: Path, data: bytes, parsed: dict[str, Any]) -> None:
    """Keep the parsed form of the lock whose bytes are ``data``, when JSON holds it exactly."""
    try:
        body = json.dumps(parsed, allow_nan=False)
    except (TypeError, ValueError):
        return
    if json.loads(body) != parsed:  # keys that were not text, say: read the YAML every time
        return
    header = json.dumps(
        {"format": FORMAT, "lock": digest_bytes(data), "body": digest_bytes(body.encode("utf-8"))}
    )
    path = _place(cache_dir, lock_path)
    if not cache_dir.is_dir():
        return  # a run refused for bad input must leave no cache behind
    with contextlib.suppress(OSError):
        path.parent.mkdir(exist_ok=True)
        tmp = Scratch(cache_dir).path("parsed", suffix=".tmp")
        atomic_write_text(path, f"{header}\n{body}", tmp)
