"""What a profile means: TF-TRT converter arguments, engine shapes, tolerances, and its checks.

Pure functions of a ``ProfileConf`` (and the model it converts), shared by every step that needs
them: the checks here refuse a profile before any work, the plan puts the arguments into the
convert key and shows them, the TF-TRT stage hands them to ``TrtGraphConverterV2``, the bundle
derives batching from the engine sizes, and verify compares with the same tolerances.

TF1-era flags keep their documented TF2 meaning: ``precision_mode`` is ``precision``;
``is_dynamic_op: true`` leaves engines to be built at run time (``dynamic_op: true``, no
``build()``), ``false`` pre-builds them; ``max_batch_size`` is the largest batch ``build()`` is
given, and the ceiling of the server's batching.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tftrt_build.config.applies import check_profile_applies
from tftrt_build.config.names import check_name
from tftrt_build.config.schema import (
    CalibrationSource,
    ConverterKind,
    ModelConf,
    Precision,
    ProfileConf,
    SampleKind,
)
from tftrt_build.errors import ConfigError, did_you_mean

STRATEGIES = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")
# (atol, rtol) per precision, for outputs compared as max|d| <= atol + rtol * max|ref|.
# FP32 is not exact: TensorRT may run FP32 layers in TF32 on Ampere and newer GPUs.
DEFAULT_TOLERANCE = {"FP32": (1e-3, 1e-3), "FP16": (1e-2, 2e-2), "INT8": (5e-2, 1e-1)}
# A native version is the same SavedModel run elsewhere: it differs only by rounding.
NATIVE_TOLERANCE = (1e-5, 1e-5)
_CC = re.compile(r"^\d+\.\d+$")
INT32_MAX = 2**31 - 1


def precision(profile: ProfileConf) -> str:
    return (profile.precision_mode or profile.precision.value).upper()


def dynamic_op(profile: ProfileConf) -> bool:
    return profile.dynamic_op if profile.is_dynamic_op is None else profile.is_dynamic_op


def engine_batch_sizes(profile: ProfileConf) -> list[int]:
    """Batch sizes whose engines are pre-built; empty when engines are built at run time."""
    if dynamic_op(profile):
        return []
    if profile.batch_sizes:
        return list(profile.batch_sizes)
    if profile.trt.use_dynamic_shape and profile.max_batch_size > 1:
        return [1, profile.max_batch_size]  # the ends of the optimisation profile's range
    return [profile.max_batch_size]


def gpu_specific(profile: ProfileConf) -> bool:
    """Whether the artifact holds engines, which only load on one GPU architecture."""
    return bool(engine_batch_sizes(profile)) and profile.trt.save_gpu_specific_engines


def converter_arguments(profile: ProfileConf, model: ModelConf) -> dict[str, Any]:
    """Keyword arguments of TrtGraphConverterV2 (the input folder is added by the stage)."""
    trt = profile.trt
    calibration = profile.calibration
    return {
        "input_saved_model_tags": list(model.tags),
        "input_saved_model_signature_key": model.signature,
        "use_dynamic_shape": trt.use_dynamic_shape,
        "dynamic_shape_profile_strategy": (
            (trt.dynamic_shape_profile_strategy or "Range") if trt.use_dynamic_shape else None
        ),
        "max_workspace_size_bytes": trt.max_workspace_size_bytes,
        "precision_mode": precision(profile),
        "minimum_segment_size": trt.minimum_segment_size,
        "maximum_cached_engines": trt.maximum_cached_engines,
        "use_calibration": precision(profile) == "INT8"
        and calibration.source in (CalibrationSource.samples, CalibrationSource.files),
        "allow_build_at_runtime": trt.allow_build_at_runtime,
    }


def build_shapes(profile: ProfileConf, model: ModelConf) -> list[dict[str, list[int]]]:
    """The input shapes passed to build(), one dict per call, in batch-size order."""
    return [
        {spec.name: [batch, *spec.shape[1:]] for spec in model.inputs}
        for batch in engine_batch_sizes(profile)
    ]


def tolerance(profile: ProfileConf) -> tuple[float, float]:
    """(atol, rtol): the profile's own, else its converter's and precision's default."""
    if profile.converter is ConverterKind.native:
        atol, rtol = NATIVE_TOLERANCE
    else:
        atol, rtol = DEFAULT_TOLERANCE[precision(profile)]
    t = profile.tolerance
    return (atol if t.atol is None else t.atol, rtol if t.rtol is None else t.rtol)


def check_profile(profile: ProfileConf, model: ModelConf, file: str | None) -> None:
    """Refuse a profile its converter cannot honour for this model."""
    check_name(profile.name, "profile.name", file)
    if profile.max_batch_size < 1:
        raise ConfigError("must be at least 1", key="profile.max_batch_size", file=file)
    if profile.max_batch_size > INT32_MAX:
        raise ConfigError(
            f"{profile.max_batch_size} is above {INT32_MAX} (TensorRT's dimensions are 32-bit)",
            key="profile.max_batch_size",
            file=file,
        )
    if profile.converter is ConverterKind.native:
        _check_native(profile, file)
    else:
        _check_tftrt(profile, model, file)
    check_profile_applies(profile, precision(profile), file)


def _check_native(profile: ProfileConf, file: str | None) -> None:
    mode = profile.precision_mode or profile.precision.value
    if mode != Precision.FP32.value:
        raise ConfigError(
            f"the native converter serves the SavedModel as-is; {mode} needs converter: tftrt",
            key="profile.precision_mode" if profile.precision_mode else "profile.precision",
            file=file,
        )
    if profile.calibration.source is not CalibrationSource.off:
        raise ConfigError(
            "calibration is for converter: tftrt with precision INT8",
            key="profile.calibration.source",
            file=file,
        )


def _check_tftrt(profile: ProfileConf, model: ModelConf, file: str | None) -> None:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"profile.{key}", file=file, hint=hint)

    trt = profile.trt
    if profile.precision_mode is not None:
        modes = [p.value for p in Precision]
        if profile.precision_mode.upper() not in modes:
            raise fail(
                "precision_mode",
                f"'{profile.precision_mode}' is not one of {', '.join(modes)}",
                did_you_mean(profile.precision_mode.upper(), modes),
            )
        if profile.precision is not Precision.FP32 and profile.precision.value != precision(
            profile
        ):
            raise fail(
                "precision_mode",
                f"says {precision(profile)} but profile.precision says "
                f"{profile.precision.value}; keep one of them",
            )
    if profile.is_dynamic_op is not None and profile.dynamic_op and not profile.is_dynamic_op:
        raise fail("is_dynamic_op", "is false but profile.dynamic_op is true; keep one of them")
    sizes = list(profile.batch_sizes)
    if dynamic_op(profile) and sizes:
        raise fail(
            "batch_sizes",
            "engines are built at run time (dynamic_op: true), so there "
            "are no batch sizes to pre-build; remove them or set dynamic_op: false",
        )
    if any(b < 1 for b in sizes) or sizes != sorted(set(sizes)):
        raise fail("batch_sizes", f"{sizes} must be positive and increasing")
    if sizes and sizes[-1] > profile.max_batch_size:
        raise fail("batch_sizes", f"{sizes[-1]} is above max_batch_size {profile.max_batch_size}")
    if trt.dynamic_shape_profile_strategy is not None:
        if not trt.use_dynamic_shape:
            raise fail(
                "trt.dynamic_shape_profile_strategy",
                "needs trt.use_dynamic_shape: true "
                "(optimisation profiles exist only with dynamic shapes)",
            )
        if trt.dynamic_shape_profile_strategy not in STRATEGIES:
            raise fail(
                "trt.dynamic_shape_profile_strategy",
                f"'{trt.dynamic_shape_profile_strategy}' is not one of {', '.join(STRATEGIES)}",
                did_you_mean(trt.dynamic_shape_profile_strategy, STRATEGIES),
            )
    if trt.minimum_segment_size < 1 and trt.minimum_segment_size != -1:
        raise fail("trt.minimum_segment_size", "must be positive, or -1 to convert nothing")
    if trt.max_workspace_size_bytes < 1:
        raise fail("trt.max_workspace_size_bytes", "must be positive")
    if trt.maximum_cached_engines < 1:
        raise fail("trt.maximum_cached_engines", "must be at least 1")
    built = engine_batch_sizes(profile)
    if not trt.use_dynamic_shape and len(built) > trt.maximum_cached_engines:
        raise fail(
            "trt.maximum_cached_engines",
            f"{trt.maximum_cached_engines} cannot hold the "
            f"{len(built)} engines pre-built for batch sizes {built} (without dynamic "
            "shapes each batch size has its own engine)",
        )
    if dynamic_op(profile) and not trt.allow_build_at_runtime:
        raise fail(
            "trt.allow_build_at_runtime",
            "is false and no engine is pre-built "
            "(dynamic_op: true): the model would never use TensorRT",
        )
    if built and not trt.save_gpu_specific_engines:
        raise fail(
            "trt.save_gpu_specific_engines",
            "is false, so the engines pre-built for "
            f"{built} would be thrown away; set it true or dynamic_op: true",
        )
    for i, spec in enumerate(model.inputs):
        if built and any(d < 0 for d in spec.shape[1:]):
            raise ConfigError(
                f"input '{spec.name}' has a dimension of unknown size {list(spec.shape)}; "
                f"profile '{profile.name}' pre-builds engines and needs every size but the batch "
                "(or use dynamic_op: true)",
                key=f"model.inputs[{i}].shape",
                file=file,
            )
    _check_calibration(profile, model, fail)
    t = profile.tolerance
    for key, value in (("atol", t.atol), ("rtol", t.rtol)):
        if value is not None and value < 0:
            raise fail(f"tolerance.{key}", "must not be negative")
    if t.top1_agreement is not None and not 0 <= t.top1_agreement <= 1:
        raise fail("tolerance.top1_agreement", "is a share between 0 and 1")
    if profile.compute_capability is not None and not _CC.match(profile.compute_capability):
        raise fail("compute_capability", f"'{profile.compute_capability}' is not like 8.6")


def _check_calibration(
    profile: ProfileConf, model: ModelConf, fail: Callable[..., ConfigError]
) -> None:
    calibration = profile.calibration
    if precision(profile) != "INT8":
        if calibration.source is not CalibrationSource.off:
            raise fail(
                "calibration.source",
                f"calibration is for INT8; this profile is {precision(profile)}",
            )
        return
    if calibration.source is CalibrationSource.off:
        raise fail(
            "calibration.source",
            "INT8 needs calibration data (samples or files), or qat for a quantization-aware model",
        )
    if calibration.source is CalibrationSource.files and not calibration.files:
        raise fail("calibration.files", "calibration.source=files needs .npz files")
    if calibration.source is CalibrationSource.samples:
        if calibration.batches < 1:
            raise fail("calibration.batches", "must be at least 1")
        if not 1 <= calibration.batch_size <= profile.max_batch_size:
            raise fail(
                "calibration.batch_size",
                f"{calibration.batch_size} must be between 1 "
                f"and max_batch_size {profile.max_batch_size}",
            )
        if (
            any(spec.dtype == "string" for spec in model.inputs)
            and model.samples.kind is not SampleKind.file
        ):
            raise fail(
                "calibration.source", "string inputs cannot be generated; calibrate from files"
            )
