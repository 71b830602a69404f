"""Which keys apply to which kind: a key the chosen kind ignores is refused, not dropped.

A model's source (export, archive, local) and samples (random, zeros, file), a profile's
converter and precision, a target's kind and an executor's kind each read only some of their
keys. A key another kind reads counts as written when its value differs from the schema's
default (``written``): the value a key has when no file and no override sets it. So a file that
spells a default out (``seed: 0`` on an archive) is accepted, and any other value is refused
with the kind it applies to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tftrt_build.config.schema import (
    ExecutorConf,
    ModelConf,
    ProfileConf,
    TargetConf,
)
from tftrt_build.errors import ConfigError

# key -> the kinds that read it.
SOURCE_KEYS = {
    "script": ("export",),
    "args": ("export",),
    "deps": ("export",),
    "seed": ("export",),
    "url": ("archive",),
    "sha256": ("archive",),
    "subdir": ("archive",),
    "path": ("archive", "local"),
}
SAMPLE_KEYS = {"seed": ("random",), "low": ("random",), "high": ("random",), "path": ("file",)}
TFTRT_KEYS = {
    name: ("tftrt",)
    for name in (
        "dynamic_op",
        "batch_sizes",
        "trt",
        "calibration",
        "compute_capability",
        "precision_mode",
        "is_dynamic_op",
    )
}
TARGET_KEYS = {
    "restart": ("compose",),
    "services": ("compose",),
    "port_step": ("compose",),
    "k8s": ("k8s",),
}
EXECUTOR_KEYS = {
    "python": ("local",),
    "worker": ("local",),
    "host": ("docker",),
    "image": ("docker",),
    "gpus": ("docker",),
    "transfer": ("docker",),
}
CALIBRATION_KEYS = {"files": ("files",), "batches": ("samples",), "batch_size": ("samples",)}

Kinds = Mapping[str, tuple[str, ...]]


def written(value: object, default: object, key: str) -> list[str]:
    """The keys at or under ``key`` whose value is not the schema's default."""
    if dataclasses.is_dataclass(value) and type(value) is type(default):
        found: list[str] = []
        for f in dataclasses.fields(value):
            found += written(getattr(value, f.name), getattr(default, f.name), f"{key}.{f.name}")
        return found
    return [] if value == default else [key]


def _check(
    obj: object, default: object, keys: Kinds, prefix: str, field: str, kind: str, file: str | None
) -> None:
    """Refuse the first key of ``keys`` that ``kind`` does not read and that is written."""
    for name, kinds in keys.items():
        if kind in kinds:
            continue
        found = written(getattr(obj, name), getattr(default, name), f"{prefix}{name}")
        if found:
            wanted = " or ".join(f"{field}={k}" for k in kinds)
            raise ConfigError(
                f"applies only to {wanted}, not {field}={kind}", key=found[0], file=file
            )


def check_model_applies(model: ModelConf, file: str | None) -> None:
    src, samples = model.source, model.samples
    default = ModelConf()
    _check(src, default.source, SOURCE_KEYS, "model.source.", "source.kind", src.kind.value, file)
    _check(
        samples,
        default.samples,
        SAMPLE_KEYS,
        "model.samples.",
        "samples.kind",
        samples.kind.value,
        file,
    )


def check_profile_applies(profile: ProfileConf, precision: str, file: str | None) -> None:
    default = ProfileConf()
    _check(profile, default, TFTRT_KEYS, "profile.", "converter", profile.converter.value, file)
    cal = profile.calibration
    if precision != "INT8":
        _check(
            profile, default, {"calibration": ("INT8",)}, "profile.", "precision", precision, file
        )
    else:
        _check(
            cal,
            default.calibration,
            CALIBRATION_KEYS,
            "profile.calibration.",
            "calibration.source",
            cal.source.value,
            file,
        )


def check_target_applies(target: TargetConf, file: str | None) -> None:
    _check(target, TargetConf(), TARGET_KEYS, "target.", "kind", target.kind.value, file)


def check_executor_applies(executor: ExecutorConf, file: str | None) -> None:
    _check(executor, ExecutorConf(), EXECUTOR_KEYS, "executor.", "kind", executor.kind.value, file)


def check_gpu_pool(executor: ExecutorConf, file: str | None) -> None:
    """executor.gpu_pool: null, "auto", or distinct device indices (0, 1, ...)."""
    pool = executor.gpu_pool
    if pool is None or pool == "auto":
        return
    items = list(pool) if isinstance(pool, (list, tuple)) else None
    bad = items is None or not items or any(not str(d).isdigit() for d in items)
    if bad or len({str(d) for d in items or []}) != len(items or []):
        raise ConfigError(
            f"{pool!r} is not a GPU pool",
            key="executor.gpu_pool",
            file=file,
            hint="null, auto, or distinct device indices such as [0,1]",
        )
