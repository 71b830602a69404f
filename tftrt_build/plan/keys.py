"""Cache keys: a hash of canonical JSON of what decides a stage's output, salted.

Keys are input-addressed: a stage's key is made of content digests and normalised parameters,
its toolchain and ``KEY_SALT``, and the convert key takes the source key as an input. So the
whole plan, and ``mode=check``, need no building and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from tftrt_build.store.digest import digest_json

# Bump when the recipe of any key changes: every key changes with it.
KEY_SALT = "tftrt-build/key/1"


def stage_key(stage: str, inputs: dict[str, Any], toolchain: dict[str, Any]) -> str:
    return digest_json({"salt": KEY_SALT, "stage": stage, "inputs": inputs, "toolchain": toolchain})


# Values that are already plain: exactly these types (never a dataclass or an enum).
_ATOMS = frozenset({str, int, float, bool, type(None)})
# A dataclass's field names, by class (its fields are fixed when the class is made).
_FIELDS: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """Dataclasses and enums as JSON/YAML-friendly data, dict keys sorted."""
    kind = type(value)
    if kind in _ATOMS:
        return value  # most calls: the leaves, spared the checks below
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(kind):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
