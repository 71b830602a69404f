"""TF-TRT conversion in the stage process: convert, pre-build engines, save, report, compare.

Runs where TensorFlow 2.17 with TensorRT 8.6.1 and a GPU exist (a GPU host, or the Docker
executor's image). Before touching the converter it probes the machine, so that on a machine
without TensorRT or a GPU it stops with the reasons instead of TensorFlow's misleading
"has not been built with TensorRT support".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tftrt_build.execute.capabilities import Capabilities, CapabilityMissing
from tftrt_build.tfops.inspect import describe
from tftrt_build.tfops.probe import describe as probe


def _batches(task: dict[str, Any], shapes: list[dict[str, list[int]]]) -> list[dict[str, Any]]:
    """Inputs of the given shapes, filled from the model's sample generator."""
    from tftrt_build.stages.samples import from_task, make

    samples = from_task(task)
    batches = []
    for i, shape in enumerate(shapes):
        rows = next(iter(shape.values()))[0]
        batches.append(make(task["params"]["inputs"], samples, rows=rows, seed_offset=i))
    return batches


def _calibration(task: dict[str, Any]) -> list[dict[str, Any]]:
    import numpy as np

    from tftrt_build.stages.samples import from_task, make

    params = task["params"]
    cal = params["calibration"]
    if cal["source"] == "files":
        names = [spec["name"] for spec in params["inputs"]]
        batches = []
        for i in range(cal["files"]):
            with np.load(task["inputs"][f"calibration_{i}"]) as data:
                batches.append({name: np.asarray(data[name]) for name in names})
        return batches
    samples = from_task(task)
    return [
        make(params["inputs"], samples, rows=cal["batch_size"], seed_offset=1000 + i)
        for i in range(cal["batches"])
    ]


def _summary(converter: Any) -> dict[str, Any]:
    """Engines and share of ops converted, from the converter's own summary()."""
    lines: list[str] = []
    converter.summary(line_length=160, detailed=False, print_fn=lines.append)
    text = "\n".join(lines)
    engines = re.search(r"Total number of TensorRT engines: (\d+)", text)
    share = re.search(r"% of OPs Converted: [\d.]+% \[(\d+)/(\d+)\]", text)
    print(text, flush=True)
    return {
        "engines": int(engines.group(1)) if engines else 0,
        "ops_converted": int(share.group(1)) if share else 0,
        "ops_total": int(share.group(2)) if share else 0,
    }


def _compare(source: Path, converted: Path, task: dict[str, Any]) -> dict[str, Any]:
    """Run both models on the same samples; per output, the largest differences."""
    import numpy as np
    import tensorflow as tf

    from tftrt_build.stages.samples import from_task, make

    params = task["params"]
    samples = from_task(task)
    rows = min(int(samples["count"]), int(params["max_batch_size"]))
    batch = make(params["inputs"], samples, rows=rows, seed_offset=7)
    key = params["arguments"]["input_saved_model_signature_key"]
    tags = params["arguments"]["input_saved_model_tags"]
    feed = {name: tf.constant(value) for name, value in batch.items()}
    reference = tf.saved_model.load(str(source), tags=tags).signatures[key](**feed)
    result = tf.saved_model.load(str(converted), tags=tags).signatures[key](**feed)
    outputs = {}
    for name in sorted(reference):
        ref = np.asarray(reference[name], dtype=np.float64)
        out = np.asarray(result[name], dtype=np.float64)
        diff = np.abs(out - ref)
        per_sample = diff.reshape(len(diff), -1).max(axis=1) if diff.ndim else diff.reshape(1)
        stats: dict[str, Any] = {
            "max_abs_error": float(diff.max()) if diff.size else 0.0,
            "max_abs_reference": float(np.abs(ref).max()) if ref.size else 0.0,
            "worst_sample": int(per_sample.argmax()) if per_sample.size else 0,
        }
        if ref.ndim == 2 and ref.shape[1] > 1:
            stats["top1_agreement"] = float((ref.argmax(1) == out.argmax(1)).mean())
        outputs[name] = stats
    return {"samples": rows, "outputs": outputs}


def run(task: dict[str, Any]) -> dict[str, Any]:
    params = task["params"]
    source, output = Path(task["inputs"]["model"]), Path(task["output"])
    caps = Capabilities.from_dict(probe())
    missing = caps.missing(params.get("compute_capability"))
    if missing:
        raise CapabilityMissing("; ".join(missing))

    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    converter = trt.TrtGraphConverterV2(input_saved_model_dir=str(source), **params["arguments"])
    calibration = None
    if params["calibration"]:
        batches = _calibration(task)

        def calibration(batches: list[dict[str, Any]] = batches) -> Any:
            yield from batches

    converter.convert(calibration_input_fn=calibration)
    report: dict[str, Any] = {"converter": "tftrt", **_summary(converter)}
    report["converted_share"] = (
        round(report["ops_converted"] / report["ops_total"], 4) if report["ops_total"] else 0.0
    )
    shapes = params["build_shapes"]
    if shapes:
        build_inputs = _batches(task, shapes)

        def input_fn(batches: list[dict[str, Any]] = build_inputs) -> Any:
            yield from batches

        converter.build(input_fn=input_fn)
    converter.save(str(output), save_gpu_specific_engines=params["save_gpu_specific_engines"])
    engine_files = sorted(p.name for p in (output / "assets").glob("trt-serialized-engine*"))
    report.update(
        prebuilt_shapes=shapes,
        engine_files=len(engine_files),
        tensorrt={"linked": caps.tensorrt_linked, "loaded": caps.tensorrt_loaded},
        gpu=[{"name": g.name, "compute_capability": g.compute_capability} for g in caps.gpus],
        correctness=_compare(source, output, task),
        signature=describe(output),
    )
    return report
