"""tftrt.lock: what was built from what, for review in pull requests.

YAML in a fixed order (schema, hash, artifacts by id, bundles by folder), no times, hosts or
absolute paths, so two clean builds of the same configs write the same file anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tftrt_build.config.paths import display_path
from tftrt_build.config.yamlguard import yaml_problem
from tftrt_build.errors import LockError
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
        return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)

    @classmethod
    def from_yaml(cls, text: str, where: str) -> Lock:
        """The lock in ``text``; a ``LockError`` naming ``where`` for anything out of shape."""
        problem = yaml_problem(text.encode("utf-8"))
        if problem:
            raise damaged(where, problem)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise damaged(where, f"not valid YAML ({exc.__class__.__name__}{at})") from exc
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


def damaged(where: str, problem: str) -> LockError:
    return LockError(
        f"{where}: {problem} (restore it from version control, or delete it and run "
        "tftrt-build to write it again)"
    )


class _Dumper(yaml.SafeDumper):
    """Block style for mappings (a diff line per key), flow style for lists of scalars."""


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float | bool) or v is None for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def read_lock(path: Path) -> Lock:
    """The lock at ``path`` (empty when there is none yet), checked whole."""
    where = display_path(path)
    if not path.exists() and not path.is_symlink():
        return Lock()
    if not path.is_file():
        raise damaged(where, "is a folder, not a file" if path.is_dir() else "is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LockError(f"{where}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(where, yaml_problem(data) or "is not UTF-8 text") from exc
    return Lock.from_yaml(text, where)


@contextlib.contextmanager
def holding_lock(path: Path, cache_dir: Path) -> Iterator[Lock]:
    """Hold the lock file's inter-process lock and read it: the start of a read-merge-write.

    Jobs of a parallel sweep each update their own entries; the lock (``filelock``, in the
    cache's ``locks/``) keeps their read-merge-write cycles from interleaving. The caller
    writes the result with ``BundleCommit.write_lock`` and ``rename_lock`` before leaving.
    """
    with holding(lock_file_lock(cache_dir, path)):
        yield read_lock(path)


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
