"""The shape of a tftrt.lock, checked whole before any of it is used.

A lock is edited by hand, merged by git and truncated by full disks, so what ``yaml.safe_load``
returns is checked against the shape ``Lock.to_yaml`` writes: a mapping from artifact ids to
entries whose stages carry a key, inputs, toolchain and output; bundles by folder with their
files and served versions. Keys that are paths (artifact ids, bundle folders, bundle files) are
relative and free of ``..``. The first thing out of shape is named by its path in the file.
Keys this version does not read are allowed, so a newer tftrt-build's additions do not break an
older one's reads of the same schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

Check = Callable[[Any, str], str | None]


def _mapping(values: Check | None = None, keys: Check | None = None) -> Check:
    def check(value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where}: expected a mapping, found {_kind(value)}"
        for k, v in value.items():
            inner = _at(where, str(k))
            if not isinstance(k, str):
                return f"{inner}: keys are text, found {_kind(k)}"
            problem = (keys(k, inner) if keys else None) or (values(v, inner) if values else None)
            if problem:
                return problem
        return None

    return check


def _record(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where}: expected a mapping, found {_kind(value)}"
        for name in required:
            if name not in value:
                return f"{where}: has no {name}"
        for name, field_check in fields.items():
            if name in value:
                problem = field_check(value[name], _at(where, name))
                if problem:
                    return problem
        return None

    return check


def _list(items: Check) -> Check:
    def check(value: Any, where: str) -> str | None:
        if not isinstance(value, list):
            return f"{where}: expected a list, found {_kind(value)}"
        for i, item in enumerate(value):
            problem = items(item, f"{where}[{i}]")
            if problem:
                return problem
        return None

    return check


def _scalar(*types: type) -> Check:
    def check(value: Any, where: str) -> str | None:
        # bool is an int in Python; a count or a version is never true or false.
        if isinstance(value, bool) and bool not in types:
            return f"{where}: expected {_names(types)}, found {_kind(value)}"
        if not isinstance(value, types):
            return f"{where}: expected {_names(types)}, found {_kind(value)}"
        return None

    return check


def _relative_path(value: str, where: str) -> str | None:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        return f"{where}: '{value}' is not a path inside the project"
    return None


_TEXT = _scalar(str)
_COUNT = _scalar(int)
_OUTPUT = _record({"bytes": _COUNT, "digest": _TEXT, "files": _COUNT})
_STAGE = _record(
    {
        "key": _TEXT,
        "inputs": _mapping(),
        "toolchain": _mapping(),
        "output": _OUTPUT,
        "report": _mapping(),
    },
    required=("key",),
)
_ARTIFACT = _record(
    {"model": _TEXT, "profile": _TEXT, "config": _mapping(), "source": _STAGE, "convert": _STAGE}
)
_VERSION = _record(
    {"version": _COUNT, "artifact": _TEXT, "key": _TEXT, "warmup": _TEXT}, required=("version",)
)
_SERVED = _record(
    {"name": _TEXT, "labels": _mapping(_COUNT), "versions": _list(_VERSION)}, required=("name",)
)
_BUNDLE = _record(
    {
        "target": _TEXT,
        "key": _TEXT,
        "files": _mapping(_TEXT, keys=_relative_path),
        "models": _list(_SERVED),
    },
    required=("key",),
)
LOCK = _record(
    {
        "schema": _COUNT,
        "hash": _TEXT,
        "artifacts": _mapping(_ARTIFACT, keys=_relative_path),
        "bundles": _mapping(_BUNDLE, keys=_relative_path),
    }
)


def shape_problem(data: Any) -> str | None:
    """Where a loaded lock departs from the shape tftrt-build writes, or None."""
    if data is None:
        return "is empty"
    if not isinstance(data, dict):
        return f"not a tftrt.lock (expected a mapping, found {_kind(data)})"
    return LOCK(data, "")


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    kinds = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "an integer"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _names(types: tuple[type, ...]) -> str:
    return " or ".join({str: "text", int: "an integer"}.get(t, t.__name__) for t in types)
