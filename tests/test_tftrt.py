"""TF-TRT profiles, up to the TensorRT call: validation, argument mapping, keys, capability.

Everything here runs on a CPU machine. The conversion itself is covered by tests/test_gpu.py,
which runs only where a GPU with TensorRT 8.6.1 exists.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project

from tftrt_build.config.profiles import (
    build_shapes,
    converter_arguments,
    engine_batch_sizes,
    tolerance,
)
from tftrt_build.errors import CapabilityError, ConfigError, StageError
from tftrt_build.execute.capabilities import Capabilities, Gpu
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import Task
from tftrt_build.plan import make_plan
from tftrt_build.plan.serving import serving_image, serving_problem
from tftrt_build.stages.tftrt import evaluate
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import Lock

NO_TENSORRT = Capabilities("2.17.1", True, "8.6.1", False, None)
GPU_HOST = Capabilities("2.17.1", True, "8.6.1", True, "8.6.1", (Gpu("NVIDIA A10G", "8.6"),))


def artifact(compose_request, p: Project, *overrides: str):  # type: ignore[no-untyped-def]
    (art,) = compose_request(p.root, *overrides).artifacts
    return art


# -- mapping a profile to TrtGraphConverterV2 ------------------------------------------------


def test_fp16_maps_field_by_field(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    art = artifact(compose_request, project, "profile=fp16")
    assert converter_arguments(art.profile, art.model) == {
        "input_saved_model_tags": ["serve"],
        "input_saved_model_signature_key": "serving_default",
        "use_dynamic_shape": True,
        "dynamic_shape_profile_strategy": "Range",
        "max_workspace_size_bytes": 1 << 30,
        "precision_mode": "FP16",
        "minimum_segment_size": 3,
        "maximum_cached_engines": 1,
        "use_calibration": False,
        "allow_build_at_runtime": True,
    }
    assert build_shapes(art.profile, art.model) == [
        {"image": [1, 64, 64, 3]},
        {"image": [8, 64, 64, 3]},
    ]
    assert tolerance(art.profile) == (1e-2, 2e-2)


@pytest.mark.parametrize(
    ("override", "argument", "value"),
    [
        ("profile.trt.minimum_segment_size=7", "minimum_segment_size", 7),
        ("profile.trt.max_workspace_size_bytes=2097152", "max_workspace_size_bytes", 2097152),
        ("profile.trt.maximum_cached_engines=4", "maximum_cached_engines", 4),
        ("profile.trt.allow_build_at_runtime=false", "allow_build_at_runtime", False),
        (
            "profile.trt.dynamic_shape_profile_strategy=Optimal",
            "dynamic_shape_profile_strategy",
            "Optimal",
        ),
        ("model.signature=predict", "input_saved_model_signature_key", "predict"),
        ("profile.precision=FP32", "precision_mode", "FP32"),
    ],
)
def test_each_field_reaches_its_argument(  # type: ignore[no-untyped-def]
    compose_request, project: Project, override: str, argument: str, value: object
) -> None:
    art = artifact(compose_request, project, "profile=fp16", override)
    assert converter_arguments(art.profile, art.model)[argument] == value


def test_implicit_batch_prebuilds_the_max_batch(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    art = artifact(
        compose_request,
        project,
        "profile=fp16",
        "profile.trt.use_dynamic_shape=false",
        "profile.trt.dynamic_shape_profile_strategy=null",
        "profile.batch_sizes=[]",
    )
    args = converter_arguments(art.profile, art.model)
    assert args["use_dynamic_shape"] is False and args["dynamic_shape_profile_strategy"] is None
    assert engine_batch_sizes(art.profile) == [8]


def test_seed_flags_keep_their_tf2_meaning(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    art = artifact(compose_request, project, "profile=seed_fp16")
    assert converter_arguments(art.profile, art.model)["precision_mode"] == "FP16"
    # is_dynamic_op=True: engines are left to the server, nothing is pre-built.
    assert engine_batch_sizes(art.profile) == [] and build_shapes(art.profile, art.model) == []


def test_int8_calibrates_from_samples(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    art = artifact(compose_request, project, "profile=int8")
    assert converter_arguments(art.profile, art.model)["use_calibration"] is True
    art = artifact(compose_request, project, "profile=int8", "profile.calibration.source=qat")
    assert converter_arguments(art.profile, art.model)["use_calibration"] is False


FP16 = "tftrt_build/conf/profile/fp16.yaml"
REJECTED = [
    (
        ["profile=fp16", "profile.calibration.source=samples"],
        "command line: profile.calibration.source: calibration is for INT8; this profile is FP16",
    ),
    (
        ["profile=int8", "profile.calibration.source=off"],
        "command line: profile.calibration.source: INT8 needs calibration data (samples or "
        "files), or qat for a quantization-aware model",
    ),
    (
        ["profile=fp16", "profile.batch_sizes=[1,16]"],
        "command line: profile.batch_sizes: 16 is above max_batch_size 8",
    ),
    (
        ["profile=fp16", "profile.batch_sizes=[8,1]"],
        "command line: profile.batch_sizes: [8, 1] must be positive and increasing",
    ),
    (
        ["profile=fp16", "profile.trt.use_dynamic_shape=false"],
        f"{FP16}: profile.trt.dynamic_shape_profile_strategy: needs "
        "trt.use_dynamic_shape: true (optimisation profiles exist only with dynamic shapes)",
    ),
    (
        ["profile=fp16", "profile.trt.dynamic_shape_profile_strategy=Ragne"],
        "command line: profile.trt.dynamic_shape_profile_strategy: 'Ragne' is not one of Range, "
        "Optimal, Range+Optimal, ImplicitBatchModeCompatible (did you mean 'Range'?)",
    ),
    (
        ["profile=fp16", "profile.dynamic_op=true"],
        f"{FP16}: profile.batch_sizes: engines are built at run time (dynamic_op: true), so "
        "there are no batch sizes to pre-build; remove them or set dynamic_op: false",
    ),
    (
        ["profile=seed_fp16", "profile.trt.allow_build_at_runtime=false"],
        "command line: profile.trt.allow_build_at_runtime: is false and no engine is pre-built "
        "(dynamic_op: true): the model would never use TensorRT",
    ),
    (
        ["profile=fp16", "profile.trt.save_gpu_specific_engines=false"],
        "command line: profile.trt.save_gpu_specific_engines: is false, so the engines pre-built "
        "for [1, 8] would be thrown away; set it true or dynamic_op: true",
    ),
    (
        [
            "profile=fp16",
            "profile.trt.use_dynamic_shape=false",
            "profile.trt.dynamic_shape_profile_strategy=null",
        ],
        f"{FP16}: profile.trt.maximum_cached_engines: 1 cannot hold the 2 engines pre-built "
        "for batch sizes [1, 8] (without dynamic shapes each batch size has its own engine)",
    ),
    (
        ["profile=fp16", "model.inputs.0.shape=[-1,-1,-1,3]"],
        "command line: model.inputs[0].shape: input 'image' has a dimension of unknown size "
        "[-1, -1, -1, 3]; profile 'fp16' pre-builds engines and needs every size but the batch "
        "(or use dynamic_op: true)",
    ),
    (
        ["profile=fp16", "+profile.precision_mode=FP61"],
        "command line: profile.precision_mode: 'FP61' is not one of FP32, FP16, INT8 "
        "(did you mean 'FP16'?)",
    ),
    (
        ["profile=fp16", "+profile.precision_mode=INT8"],
        "command line: profile.precision_mode: says INT8 but profile.precision says FP16; keep "
        "one of them",
    ),
    (
        ["profile=int8", "profile.calibration.batch_size=64"],
        "command line: profile.calibration.batch_size: 64 must be between 1 and max_batch_size 8",
    ),
    (
        ["profile=fp16", "profile.tolerance.atol=-1"],
        "command line: profile.tolerance.atol: must not be negative",
    ),
    (
        ["profile=fp16", "profile.compute_capability=sm86"],
        "command line: profile.compute_capability: 'sm86' is not like 8.6",
    ),
    (
        ["profile=fp16", "profile.trt.minimum_segment_size=0"],
        "command line: profile.trt.minimum_segment_size: must be positive, or -1 to convert "
        "nothing",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), REJECTED)
def test_rejected_combinations(  # type: ignore[no-untyped-def]
    compose_request, project: Project, overrides: list[str], message: str
) -> None:
    from tftrt_build.cli.app import from_command_line

    with pytest.raises(ConfigError) as info:
        compose_request(project.root, *overrides)
    assert str(from_command_line(info.value, overrides, {"profile": "", "model": ""})) == message


# -- capability detection --------------------------------------------------------------------


def test_missing_capabilities_are_named() -> None:
    assert NO_TENSORRT.missing() == [
        "the TensorRT 8.6.1 library is not installed (TensorFlow loads libnvinfer.so.8.6.1 from "
        "its rpath or the system library folders)",
        "no GPU is visible to TensorFlow",
    ]
    no_build = Capabilities("2.18.0", False, None, False, None)
    assert no_build.missing()[0].startswith("TensorFlow 2.18.0 is built without TensorRT")
    wrong = Capabilities("2.17.1", True, "8.6.1", True, "8.4.3", GPU_HOST.gpus)
    assert wrong.missing() == [
        "TensorRT 8.4.3 is loaded but TensorFlow was built with 8.6.1; engines would not load in "
        "a server built like TensorFlow"
    ]
    assert GPU_HOST.missing() == [] and GPU_HOST.missing("8.6") == []
    assert GPU_HOST.missing("7.5") == [
        "engines are to be built for compute capability 7.5, but this machine has NVIDIA A10G (8.6)"
    ]


@functools.cache
def tensorrt_present() -> bool:
    return LocalExecutor().probe().tensorrt_enabled


@pytest.mark.slow  # probes TensorFlow in a child process
def test_the_abort_hazard_is_real_and_the_probe_survives_it(tmp_path: Path) -> None:
    # Probed here, not at collection: collecting the tests must not start TensorFlow.
    if tensorrt_present():
        pytest.skip("TensorRT is installed here: nothing aborts")
    # Calling get_loaded_tensorrt_version() without TensorRT kills the process (SIGABRT)...
    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils "
            "as u; u.get_loaded_tensorrt_version()",
        ],
        capture_output=True,
        text=True,
    )
    assert crash.returncode == -6, crash.stderr[-500:]
    assert "getInferLibVersion symbol not found" in crash.stderr
    # ...while the probe, which asks is_tensorrt_enabled() first, reports instead.
    caps = LocalExecutor(cache_dir=tmp_path).probe()
    assert caps.tensorflow == "2.17.1" and caps.tensorrt_build
    assert caps.tensorrt_linked == "8.6.1" and not caps.tensorrt_enabled
    assert caps.tensorrt_loaded is None and caps.error == ""


@pytest.mark.slow  # probes TensorFlow in a child process
def test_probe_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = LocalExecutor(cache_dir=tmp_path).probe()
    assert len(list((tmp_path / "probes").iterdir())) == 1

    def no_run(*args: object) -> dict[str, object]:
        raise AssertionError("probed again")

    again = LocalExecutor(cache_dir=tmp_path)
    monkeypatch.setattr(again, "run", no_run)
    assert again.probe() == first


@pytest.mark.slow  # probes TensorFlow in a child process
def test_conversion_stage_stops_with_the_reasons_on_cpu(
    demo_build: Project, tmp_path: Path
) -> None:
    """The real stage process, up to the TensorRT call: it probes first and says what is missing."""
    if tensorrt_present():
        pytest.skip("TensorRT is installed here; tests/test_gpu.py converts for real")
    model = demo_build.root / "bundles" / "demo-native" / "models" / "demo" / "1"
    out = tmp_path / "out"
    out.mkdir()
    task = Task("tftrt", {"compute_capability": None}, {"model": model}, out, "TF-TRT FP16")
    with pytest.raises(CapabilityError) as info:
        LocalExecutor().run(task, lambda line: None)
    assert str(info.value) == (
        "TF-TRT FP16 failed: CapabilityMissing: the TensorRT 8.6.1 library is not installed "
        "(TensorFlow loads libnvinfer.so.8.6.1 from its rpath or the system library folders); "
        "no GPU is visible to TensorFlow"
    )
    assert list(out.iterdir()) == []


# -- serving images --------------------------------------------------------------------------


# With target.image_tensorrt declaring the image's TensorRT, a TensorRT question is settled, but
# a missing kernel or a CPU image is not ("same").
@pytest.mark.parametrize(
    ("image", "problem", "declared"),
    [
        ("tensorflow/serving:2.17.1-gpu", "", ""),
        ("tensorflow/serving:2.15.1-gpu", "", ""),
        (
            "tensorflow/serving:2.18.0-gpu",
            "tensorflow/serving:2.18.0-gpu cannot load TF-TRT "
            "models: TF Serving 2.18 and newer ship no TRTEngineOp kernels "
            "(tensorflow/serving#4018); use 2.17.1-gpu or older",
            "same",
        ),
        (
            "tensorflow/serving:2.14.1-gpu",
            "tensorflow/serving:2.14.1-gpu carries TensorRT 8.4.3, "
            "but the model is converted with TensorRT 8.6.1; a mismatch crashes the server "
            "(tensorflow/serving#2205)",
            "",
        ),
        (
            "tensorflow/serving:2.17.1",
            "tensorflow/serving:2.17.1 is a CPU image; TF-TRT engines run only in a -gpu image",
            "same",
        ),
        (
            "registry.local/serving:prod",
            "cannot tell which TensorRT registry.local/serving:prod "
            "carries; set target.image_tensorrt to its version",
            "",
        ),
    ],
)
def test_serving_images(image: str, problem: str, declared: str) -> None:
    assert serving_problem(serving_image(image), "8.6.1") == problem
    expected = problem if declared == "same" else declared
    assert serving_problem(serving_image(image, "8.6.1"), "8.6.1") == expected


# -- keys, plans, reports --------------------------------------------------------------------


def plan(compose_request, p: Project, *overrides: str):  # type: ignore[no-untyped-def]
    request = compose_request(p.root, *overrides)
    store = Store(p.cache, StatCache(None), readonly=True)
    return make_plan(request, store, LocalExecutor(cache_dir=p.cache), Lock())


@pytest.mark.slow  # probes TensorFlow in a child process
def test_key_holds_tensorrt_and_gpu_architecture(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    a10 = plan(compose_request, project, "profile=fp16", "target.gpus.compute_capability=8.6")
    t4 = plan(compose_request, project, "profile=fp16", "target.gpus.compute_capability=7.5")
    convert = a10.artifacts[0].convert
    assert convert.toolchain == {
        "tensorflow": "2.17.1",
        "tensorrt": "8.6.1",
        "compute_capability": "8.6",
    }
    assert convert.key != t4.artifacts[0].convert.key
    # Engines left to run time are not GPU-specific: the declared GPU does not enter the key.
    seed = plan(compose_request, project, "profile=seed_fp16", "target.gpus.compute_capability=8.6")
    assert "compute_capability" not in seed.artifacts[0].convert.toolchain
    # Pinned: a change to how TF-TRT keys are made must be deliberate.
    assert convert.key == "184412f5ecee3bd766e5644717b7018453d21a91417512488cbc5a4929ad21df"


def test_profile_and_target_must_agree_on_the_gpu(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        plan(
            compose_request,
            project,
            "profile=fp16",
            "profile.compute_capability=7.5",
            "target.gpus.compute_capability=8.6",
        )
    assert str(info.value) == (
        "tftrt_build/conf/profile/fp16.yaml: profile.compute_capability: profile 'fp16' builds "
        "engines for compute capability 7.5, but target 'compose' declares GPUs of 8.6; engines "
        "only load on the architecture they were built for"
    )


def test_report_judgement() -> None:
    from tftrt_build.config.schema import ConverterKind, Precision, ProfileConf

    profile = ProfileConf(name="fp16", converter=ConverterKind.tftrt, precision=Precision.FP16)
    good = {
        "engines": 2,
        "ops_converted": 90,
        "ops_total": 100,
        "correctness": {
            "outputs": {
                "probabilities": {
                    "max_abs_error": 0.004,
                    "max_abs_reference": 0.9,
                    "worst_sample": 1,
                    "top1_agreement": 1.0,
                }
            }
        },
    }
    assert evaluate(good, profile) == []
    none = {**good, "engines": 0, "ops_converted": 0}
    assert evaluate(none, profile) == [
        "TF-TRT converted no segment (0/100 ops): the model would run as plain TensorFlow. "
        "Lower trt.minimum_segment_size, or set trt.allow_no_engines"
    ]
    profile.trt.allow_no_engines = True
    assert evaluate(none, profile) == []
    profile.tolerance.atol, profile.tolerance.rtol = 0.001, 0.001
    assert evaluate(good, profile) == [
        "output 'probabilities' differs from the source model by 0.004 (sample 1); allowed "
        "0.0019 (atol 0.001 + rtol 0.001 x 0.9)"
    ]
    profile.tolerance.atol, profile.tolerance.top1_agreement = 0.01, 1.0
    good["correctness"]["outputs"]["probabilities"]["top1_agreement"] = 0.75  # type: ignore[index]
    assert evaluate(good, profile) == ["output 'probabilities': top-1 agreement 0.75 is below 1.00"]


@pytest.mark.slow  # probes TensorFlow in a child process
def test_cached_conversion_is_judged_again(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    """A stand-in cache entry (no GPU here to make a real one) with a recorded report."""
    first = plan(compose_request, project, "profile=fp16", "target.gpus.compute_capability=8.6")
    convert = first.artifacts[0].convert
    store = Store(project.cache, StatCache(None))
    with store.staging(convert.key) as tmp:
        (tmp / "data" / "saved_model.pb").write_bytes(b"stand-in")
        report = {
            "engines": 1,
            "ops_converted": 10,
            "ops_total": 10,
            "correctness": {
                "outputs": {
                    "probabilities": {
                        "max_abs_error": 0.02,
                        "max_abs_reference": 1.0,
                        "worst_sample": 0,
                    }
                }
            },
        }
        store.commit(convert.key, tmp, {"stage": "convert", "report": report})
    ok = plan(compose_request, project, "profile=fp16", "target.gpus.compute_capability=8.6")
    assert ok.artifacts[0].convert.hit
    with pytest.raises(StageError, match=r"differs from the source model by 0\.02"):
        plan(
            compose_request,
            project,
            "profile=fp16",
            "target.gpus.compute_capability=8.6",
            "profile.tolerance.atol=0.001",
            "profile.tolerance.rtol=0.001",
        )


# -- the command line ------------------------------------------------------------------------


@pytest.mark.slow  # probes TensorFlow in a child process
def test_tftrt_on_cpu_stops_before_any_work(project: Project) -> None:
    if tensorrt_present():
        pytest.skip("TensorRT is installed here")
    result = project.run("profile=fp16")
    assert result.code == 1
    assert result.error_line == (
        "profile 'fp16' needs TF-TRT, which this machine cannot run: the TensorRT 8.6.1 library "
        "is not installed (TensorFlow loads libnvinfer.so.8.6.1 from its rpath or the system "
        "library folders); no GPU is visible to TensorFlow. Convert on a GPU host with TensorRT "
        "8.6.1: executor=docker (README, 'GPU hosts')"
    )
    assert project.leftovers() == []


@pytest.mark.slow  # probes TensorFlow in a child process
def test_plan_shows_converter_arguments_and_engine_shapes(project: Project) -> None:
    result = project.run("profile=int8", "mode=plan")
    assert result.code == 0, result.err
    for text in (
        "TrtGraphConverterV2(precision_mode)",
        "INT8",
        "pre-built with build() for image[1, 64, 64, 3]; image[8, 64, 64, 3]",
        "8 batches of 8 from model.samples",
        "that of the converting GPU",
    ):
        assert text in result.out
    assert project.cache_entries() == []


@pytest.mark.slow  # builds the demo model and probes TensorFlow
@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("tensorflow/serving:2.18.0-gpu", "TF Serving 2.18 and newer ship no TRTEngineOp kernels"),
        ("tensorflow/serving:2.13.0-gpu", "carries TensorRT 8.4.3"),
    ],
)
def test_image_that_cannot_load_the_model_is_refused(
    project: Project, image: str, reason: str
) -> None:
    result = project.run("profile=fp16", f"target.image={image}", "mode=plan")
    assert result.code == 2
    assert result.error_line.startswith(
        f"command line: target.image: cannot serve demo/fp16: {image} "
    )
    assert reason in result.error_line
