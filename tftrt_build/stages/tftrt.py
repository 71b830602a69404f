"""The TF-TRT converter: a profile's conversion, from cache key to judged report.

What a profile means (converter arguments, engine shapes, tolerances) and whether it is
acceptable is decided in ``tftrt_build.config.profiles``. Here it becomes the convert stage:
the key inputs and toolchain (TensorFlow, TensorRT, GPU architecture), what ``mode=plan``
shows, the capability check before any work, the task for the stage process
(``tfops/trt.py``, on a machine with a GPU and TensorRT) and the judgement of its report
(engines found, outputs close enough).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tftrt_build.config.profiles import (
    build_shapes,
    converter_arguments,
    engine_batch_sizes,
    gpu_specific,
    precision,
    tolerance,
)
from tftrt_build.config.schema import (
    CalibrationSource,
    ConverterKind,
    ModelConf,
    ProfileConf,
    SampleKind,
)
from tftrt_build.errors import CapabilityError, StageError
from tftrt_build.execute.task import LogSink, Task
from tftrt_build.stages.convert import ConvertContext


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

    def key_inputs(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        calibration: dict[str, Any] | None = None
        cal = profile.calibration
        if converter_arguments(profile, model)["use_calibration"]:
            calibration = {"source": cal.source.value}
            if cal.source is CalibrationSource.files:
                calibration["files"] = {
                    f: context.digest(f, f"profile.calibration.files[{i}]")
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
        recorded = context.recorded
        if recorded is not None:
            # Planning or checking against a lock: the TensorRT that TensorFlow links is fixed
            # by the TensorFlow build, so when the executor (image) and the TensorFlow version
            # read from package metadata are those recorded, the recorded TensorRT stands, and
            # no probe imports TensorFlow (20 s on a fresh cache). Anything else is probed.
            tensorflow = context.executor.toolchain().get("tensorflow")
            expected = self._toolchain(context, tensorflow, recorded.get("tensorrt"))
            if expected == recorded:
                return expected
        caps = context.executor.probe()
        return self._toolchain(context, caps.tensorflow, caps.tensorrt_linked)

    @staticmethod
    def _toolchain(
        context: ConvertContext, tensorflow: str | None, tensorrt: str | None
    ) -> dict[str, Any]:
        toolchain: dict[str, Any] = {
            **context.executor.identity(),
            "tensorflow": tensorflow,
            "tensorrt": tensorrt,
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
                files[f"calibration_{i}"] = context.locate(f, f"profile.calibration.files[{i}]")
        if model.samples.path:
            files["samples"] = context.locate(model.samples.path, "model.samples.path")
        params = {
            "arguments": converter_arguments(profile, model),
            "build_shapes": build_shapes(profile, model),
            "save_gpu_specific_engines": profile.trt.save_gpu_specific_engines,
            "calibration": calibration,
            "inputs": model.input_specs(),
            "samples": model.samples.to_params(),
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
        key["file"] = context.digest(s.path, "model.samples.path")
    return key
