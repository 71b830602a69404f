"""The TF-TRT converter: a profile becomes ``TrtGraphConverterV2`` arguments and build shapes.

Everything up to the conversion itself is pure and runs anywhere: checking a profile, mapping it
to converter arguments and the shapes ``build()`` pre-builds engines for, the cache key, what
``mode=plan`` shows, and judging a conversion report (engines found, outputs close enough).
The conversion runs in a stage process (``tfops/trt.py``) on a machine with a GPU and TensorRT.

TF1-era flags keep their documented TF2 meaning: ``precision_mode`` is ``precision``;
``is_dynamic_op: true`` leaves engines to be built at run time (``dynamic_op: true``, no
``build()``), ``false`` pre-builds them; ``max_batch_size`` is the largest batch ``build()`` is
given, and the ceiling of the server's batching.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tftrt_build.converters import ConvertContext
from tftrt_build.errors import CapabilityError, ConfigError, StageError, did_you_mean
from tftrt_build.executors import LogSink, Task
from tftrt_build.fs import under
from tftrt_build.schema import (
    CalibrationSource,
    ConverterKind,
    ModelConf,
    Precision,
    ProfileConf,
    SampleKind,
)

STRATEGIES = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")
# (atol, rtol) per precision, for outputs compared as max|d| <= atol + rtol * max|ref|.
# FP32 is not exact: TensorRT may run FP32 layers in TF32 on Ampere and newer GPUs.
DEFAULT_TOLERANCE = {"FP32": (1e-3, 1e-3), "FP16": (1e-2, 2e-2), "INT8": (5e-2, 1e-1)}
_CC = re.compile(r"^\d+\.\d+$")


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
    atol, rtol = DEFAULT_TOLERANCE[precision(profile)]
    t = profile.tolerance
    return (atol if t.atol is None else t.atol, rtol if t.rtol is None else t.rtol)


def check_profile(profile: ProfileConf, model: ModelConf, file: str | None) -> None:
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


def evaluate(report: dict[str, Any], profile: ProfileConf) -> list[str]:
    """Why a conversion report is not acceptable under this profile; empty when it is."""
    problems = []
    if not report.get("engines") and not profile.trt.allow_no_engines:
        converted = report.get("ops_converted", 0)
        total = report.get("ops_total", 0)
        problems.append(
            f"TF-TRT converted no segment ({converted}/{total} ops): the model would run as "
            "plain TensorFlow. Lower trt.minimum_segment_size, or set trt.allow_no_engines"
        )
    atol, rtol = tolerance(profile)
    correctness = report.get("correctness") or {}
    worst = None
    for name, stats in sorted(correctness.get("outputs", {}).items()):
        allowed = atol + rtol * stats["max_abs_reference"]
        excess = stats["max_abs_error"] / allowed if allowed else float("inf")
        if stats["max_abs_error"] > allowed and (worst is None or excess > worst[0]):
            worst = (excess, name, stats, allowed)
    if worst is not None:
        _, name, stats, allowed = worst
        problems.append(
            f"output '{name}' differs from the source model by {stats['max_abs_error']:.3g} "
            f"(sample {stats['worst_sample']}); allowed {allowed:.3g} "
            f"(atol {atol:g} + rtol {rtol:g} x {stats['max_abs_reference']:.3g})"
        )
    floor = profile.tolerance.top1_agreement
    for name, stats in sorted(correctness.get("outputs", {}).items()):
        agreement = stats.get("top1_agreement")
        if floor is not None and agreement is not None and agreement < floor:
            problems.append(
                f"output '{name}': top-1 agreement {agreement:.2f} is below {floor:.2f}"
            )
    return problems


class TftrtConverter:
    kind = ConverterKind.tftrt
    format = 1

    def check(self, profile: ProfileConf, model: ModelConf, file: str | None) -> None:
        check_profile(profile, model, file)

    def key_inputs(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        calibration: dict[str, Any] | None = None
        cal = profile.calibration
        if converter_arguments(profile, model)["use_calibration"]:
            calibration = {"source": cal.source.value}
            if cal.source is CalibrationSource.files:
                calibration["files"] = {
                    f: context.hasher(f, f"profile.calibration.files[{i}]")
                    for i, f in enumerate(cal.files)
                }
            else:
                calibration.update(
                    batches=cal.batches,
                    batch_size=cal.batch_size,
                    samples=_samples_key(model, context),
                )
        return {
            "arguments": converter_arguments(profile, model),
            "build_shapes": build_shapes(profile, model),
            "save_gpu_specific_engines": profile.trt.save_gpu_specific_engines,
            "calibration": calibration,
        }

    def toolchain(self, context: ConvertContext) -> dict[str, Any]:
        caps = context.executor.probe()
        toolchain: dict[str, Any] = {
            **context.executor.identity(),
            "tensorflow": caps.tensorflow,
            "tensorrt": caps.tensorrt_linked,
        }
        if context.compute_capability is not None:
            toolchain["compute_capability"] = context.compute_capability
        return toolchain

    def describe(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        args = converter_arguments(profile, model)
        shapes = build_shapes(profile, model)
        atol, rtol = tolerance(profile)
        details: dict[str, Any] = {"converter": "TF-TRT (TrtGraphConverterV2)"}
        details.update({f"TrtGraphConverterV2({k})": v for k, v in args.items()})
        details["engines"] = (
            "built by the server at run time (dynamic_op: true)"
            if not shapes
            else "pre-built with build() for "
            + "; ".join(", ".join(f"{n}{s}" for n, s in shape.items()) for shape in shapes)
        )
        details["save(save_gpu_specific_engines)"] = profile.trt.save_gpu_specific_engines
        if gpu_specific(profile):
            details["compute capability"] = (
                context.compute_capability or "that of the converting GPU"
            )
        if args["use_calibration"]:
            cal = profile.calibration
            details["calibration"] = (
                f"{cal.batches} batches of {cal.batch_size} from model.samples"
                if cal.source is CalibrationSource.samples
                else ", ".join(cal.files)
            )
        details["tolerance"] = f"atol {atol:g}, rtol {rtol:g}"
        return details

    def preflight(self, context: ConvertContext, profile: ProfileConf) -> None:
        caps = context.executor.probe()
        missing = caps.missing(context.compute_capability)
        if missing:
            trt = caps.tensorrt_linked or "8.6.1"
            remedy = (
                f"Convert on a GPU host with TensorRT {trt}: executor=docker (README, 'GPU hosts')"
                if context.executor.identity() == {}
                else f"Use an image with TensorRT {trt} on an engine with NVIDIA GPUs "
                "(executor.image, executor.host; README, 'GPU hosts')"
            )
            raise CapabilityError(
                f"profile '{profile.name}' needs TF-TRT, which {context.executor.name} cannot "
                f"run: {'; '.join(missing)}. {remedy}"
            )

    def convert(
        self,
        source: Path,
        output: Path,
        profile: ProfileConf,
        model: ModelConf,
        context: ConvertContext,
        log: LogSink,
    ) -> dict[str, Any]:
        cal = profile.calibration
        # Files the stage reads travel as task inputs, so a container gets them too.
        files: dict[str, Path] = {"model": source}
        calibration: dict[str, Any] | None = None
        if converter_arguments(profile, model)["use_calibration"]:
            calibration = {
                "source": cal.source.value,
                "batches": cal.batches,
                "batch_size": cal.batch_size,
                "files": len(cal.files),
            }
            for i, f in enumerate(cal.files):
                files[f"calibration_{i}"] = under(context.project, f)
        samples = {k: v.value if hasattr(v, "value") else v for k, v in vars(model.samples).items()}
        if model.samples.path:
            files["samples"] = under(context.project, model.samples.path)
        params = {
            "arguments": converter_arguments(profile, model),
            "build_shapes": build_shapes(profile, model),
            "save_gpu_specific_engines": profile.trt.save_gpu_specific_engines,
            "calibration": calibration,
            "inputs": [
                {"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in model.inputs
            ],
            "samples": samples,
            "max_batch_size": profile.max_batch_size,
            "compute_capability": context.compute_capability,
        }
        task = Task("tftrt", params, files, output, f"TF-TRT {precision(profile)} conversion")
        report = context.executor.run(task, log)
        report["precision"] = precision(profile)
        report["prebuilt_batch_sizes"] = engine_batch_sizes(profile)
        return report

    def accept(self, report: dict[str, Any], profile: ProfileConf) -> None:
        problems = evaluate(report, profile)
        if problems:
            raise StageError(f"profile '{profile.name}': " + "; ".join(problems))


def _samples_key(model: ModelConf, context: ConvertContext) -> dict[str, Any]:
    s = model.samples
    key: dict[str, Any] = {"kind": s.kind.value, "seed": s.seed, "low": s.low, "high": s.high}
    if s.kind is SampleKind.file and s.path:
        key["file"] = context.hasher(s.path, "model.samples.path")
    return key
