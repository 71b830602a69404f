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


def plain(value: Any) -> Any:
    """Dataclasses and enums as JSON/YAML-friendly data, dict keys sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
