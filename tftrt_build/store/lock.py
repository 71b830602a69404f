"""tftrt.lock: what was built from what, for review in pull requests.

YAML in a fixed order (schema, hash, artifacts by id, bundles by folder), no times, hosts or
absolute paths, so two clean builds of the same configs write the same file anywhere.

Read and written through libyaml (PyYAML's C loader and emitter) where it is installed: a lock of
128 artifacts is some 13,000 lines, which the pure-Python loader takes seconds to read. The two
emitters break long double-quoted strings (those with escapes: non-ASCII, control characters) at
different places, so a lock holding such a string is written by the pure-Python emitter, and
every lock is the same bytes with or without libyaml (tests/test_lock.py compares them).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tftrt_build.config.paths import display_path
from tftrt_build.config.yamlguard import yaml_problem
from tftrt_build.errors import LockError
from tftrt_build.store import lockcache
from tftrt_build.store.commit import lock_file_lock
from tftrt_build.store.digest import ALGORITHM
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.lockcheck import shape_problem
from tftrt_build.store.locks import holding
from tftrt_build.store.steps import step
from tftrt_build.store.tmp import Scratch

SCHEMA = 1
HEADER = (
    "# tftrt.lock: written by tftrt-build. Commit it; review its changes in pull requests;\n"
    "# `tftrt-build mode=check` fails when it is out of date with conf/ and the inputs.\n"
)


@dataclass
class Lock:
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_yaml(self) -> str:
        data = {
            "schema": SCHEMA,
            "hash": ALGORITHM,
            "artifacts": {k: self.artifacts[k] for k in sorted(self.artifacts)},
            "bundles": {k: self.bundles[k] for k in sorted(self.bundles)},
        }
        return HEADER + yaml.dump(data, Dumper=_dumper_for(data), sort_keys=False, width=100)

    @classmethod
    def from_yaml(cls, text: str, where: str) -> Lock:
        """The lock in ``text``; a ``LockError`` naming ``where`` for anything out of shape."""
        return cls.from_data(load_yaml(text, where), where)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Lock:
        """The lock in a file's bytes, which need not be UTF-8 (the error then says so)."""
        return cls.from_yaml(decode(data, where), where)

    @classmethod
    def from_data(cls, data: Any, where: str) -> Lock:
        """The lock a loaded file holds, checked whole: shape, schema and digest algorithm."""
        problem = shape_problem(data)
        if problem:
            raise damaged(where, problem)
        if data.get("schema") != SCHEMA:
            raise damaged(
                where,
                f"schema {data.get('schema')!r} is not the supported {SCHEMA} "
                "(written by another version of tftrt-build)",
            )
        if data.get("hash") != ALGORITHM:
            raise damaged(where, f"digests are {data.get('hash')!r}, expected {ALGORITHM}")
        return cls(dict(data.get("artifacts") or {}), dict(data.get("bundles") or {}))


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(where, yaml_problem(data) or "is not UTF-8 text") from exc


def load_yaml(text: str, where: str) -> Any:
    """What a lock's text holds, loaded safely; a ``LockError`` naming ``where`` if it cannot."""
    problem = yaml_problem(text.encode("utf-8"))
    if problem:
        raise damaged(where, problem)
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise damaged(where, f"not valid YAML ({exc.__class__.__name__}{at})") from exc


def damaged(where: str, problem: str) -> LockError:
    return LockError(
        f"{where}: {problem} (restore it from version control, or delete it and run "
        "tftrt-build to write it again)"
    )


_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float | bool) or v is None for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def lock_dumper(base: type[yaml.SafeDumper]) -> type[yaml.SafeDumper]:
    """Block style for mappings (a diff line per key), flow style for lists of scalars."""
    dumper: type[yaml.SafeDumper] = type("LockDumper", (base,), {})
    dumper.add_representer(list, _represent_list)
    return dumper


_FAST_DUMPER = lock_dumper(_BASE_DUMPER)
_PURE_DUMPER = lock_dumper(yaml.SafeDumper)


def _dumper_for(data: dict[str, Any]) -> type[yaml.SafeDumper]:
    """libyaml's emitter where it writes what PyYAML's does: every string printable ASCII.

    JSON with ``ensure_ascii`` escapes exactly the characters that make a YAML string need
    escapes (and quotes and backslashes too, which only sends more locks the slow way).
    """
    try:
        text = json.dumps(data, ensure_ascii=True)
        escaped = "\\" in text or "\x7f" in text
    except (TypeError, ValueError):
        escaped = True
    return _PURE_DUMPER if escaped else _FAST_DUMPER


def read_lock(path: Path, cache_dir: Path | None = None) -> Lock:
    """The lock at ``path`` (empty when there is none yet), checked whole.

    With ``cache_dir``, an unchanged lock is taken from its parsed form there (``lockcache``).
    """
    where = display_path(path)
    if not path.exists() and not path.is_symlink():
        return Lock()
    if not path.is_file():
        raise damaged(where, "is a folder, not a file" if path.is_dir() else "is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LockError(f"{where}: cannot be read: {exc.strerror or exc}") from exc
    key = path.absolute()
    seen = _READ.get(key)
    if seen is None or seen[0] != data:
        seen = (data, _parse(path, data, where, cache_dir))
        _READ[key] = seen
    # Fresh top-level maps: a build replaces whole entries (build.merge), never edits one.
    return Lock(dict(seen[1].artifacts), dict(seen[1].bundles))


def _parse(path: Path, data: bytes, where: str, cache_dir: Path | None) -> Lock:
    if cache_dir is not None and (kept := lockcache.recall(cache_dir, path, data)) is not None:
        # The same bytes as before: their data, checked again as a new version would.
        return Lock.from_data(kept, where)
    loaded = load_yaml(decode(data, where), where)
    lock = Lock.from_data(loaded, where)
    if cache_dir is not None:
        lockcache.keep(cache_dir, path, data, loaded)
    return lock


# The last lock read from each path, with its bytes. A build reads the lock to plan and again
# under the lock file's lock to merge; the second read parses only if the bytes changed since.
_READ: dict[Path, tuple[bytes, Lock]] = {}


@contextlib.contextmanager
def holding_lock(path: Path, cache_dir: Path) -> Iterator[Lock]:
    """Hold the lock file's inter-process lock and read it: the start of a read-merge-write.

    Jobs of a parallel sweep each update their own entries; the lock (``filelock``, in the
    cache's ``locks/``) keeps their read-merge-write cycles from interleaving. The caller
    writes the result with ``BundleCommit.write_lock`` and ``rename_lock`` before leaving.
    """
    with holding(lock_file_lock(cache_dir, path)):
        yield read_lock(path, cache_dir)


@contextlib.contextmanager
def updating(path: Path, cache_dir: Path) -> Iterator[Lock]:
    """Read, let the caller change, and write the lock, one process at a time."""
    with holding_lock(path, cache_dir) as lock:
        before = lock.to_yaml()
        yield lock
        after = lock.to_yaml()
        if after != before or not path.exists():
            tmp = Scratch(cache_dir).path("lock", near=path.parent, suffix=".tmp")
            with step("lock", path):
                atomic_write_text(path, after, tmp)
