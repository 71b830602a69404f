"""GPU acceptance suite: the whole pipeline with real TF-TRT conversions.

Runs only where TensorFlow 2.17 with TensorRT 8.6.1 and a GPU are available (see the README,
"GPU hosts"); everywhere else each test is skipped with what the probe found missing.

    pytest -m gpu            # on a GPU host, or inside the image of docker/gpu.Dockerfile
"""

from __future__ import annotations

import functools

import pytest
import yaml
from conftest import Project

from tftrt_build.execute.capabilities import Capabilities
from tftrt_build.execute.local import LocalExecutor

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@functools.cache
def capabilities() -> Capabilities:
    return LocalExecutor().probe()


@pytest.fixture(autouse=True)
def needs_a_gpu_with_tensorrt() -> None:
    missing = capabilities().missing()
    if missing:
        pytest.skip("no TF-TRT here: " + "; ".join(missing))


@pytest.mark.parametrize("profile", ["fp32", "fp16", "int8"])
def test_conversion_with_prebuilt_engines(project: Project, profile: str) -> None:
    gpu = capabilities().gpus[0]
    result = project.run(
        f"profile={profile}",
        f"target.gpus.compute_capability={gpu.compute_capability}",
        "record=true",
    )
    assert result.code == 0, result.err
    entry = yaml.safe_load(project.lock.read_text())["artifacts"][f"demo/{profile}"]
    convert = entry["convert"]
    report = convert["report"]
    assert convert["toolchain"]["tensorrt"] == "8.6.1"
    assert convert["toolchain"]["compute_capability"] == gpu.compute_capability
    assert report["engines"] >= 1 and report["ops_converted"] > 0
    assert report["precision"] == profile.upper()
    assert report["prebuilt_batch_sizes"] == [1, 8]
    assert report["engine_files"] >= 1  # engines were built and saved with the model
    assert report["tensorrt"] == {"linked": "8.6.1", "loaded": "8.6.1"}
    assert report["gpu"][0]["compute_capability"] == gpu.compute_capability
    outputs = report["correctness"]["outputs"]
    assert set(outputs) == {"probabilities"}
    bundle = project.root / "bundles" / f"demo-{profile}" / "models" / "demo" / "1"
    assert any((bundle / "assets").glob("trt-serialized-engine*"))


def test_rebuild_is_a_cache_hit(project: Project) -> None:
    gpu = capabilities().gpus[0].compute_capability
    assert project.run("profile=fp16", f"target.gpus.compute_capability={gpu}").code == 0
    again = project.run("profile=fp16", f"target.gpus.compute_capability={gpu}")
    assert again.code == 0 and "demo/fp16 convert: cached" in again.err


def test_tight_tolerance_fails_the_build(project: Project) -> None:
    gpu = capabilities().gpus[0].compute_capability
    result = project.run(
        "profile=fp16",
        f"target.gpus.compute_capability={gpu}",
        "profile.tolerance.atol=0",
        "profile.tolerance.rtol=0",
    )
    # FP16 cannot match FP32 to the last bit: the build fails with the worst difference.
    assert result.code == 1
    assert "differs from the source model by" in result.error_line
    assert project.cache_entries() and not (project.root / "bundles" / "demo-fp16").exists()


def test_resnet50_fp16(project: Project) -> None:
    gpu = capabilities().gpus[0].compute_capability
    result = project.run(
        "model=resnet50", "profile=fp16", f"target.gpus.compute_capability={gpu}", "record=true"
    )
    assert result.code == 0, result.err
    report = yaml.safe_load(project.lock.read_text())["artifacts"]["resnet50/fp16"]["convert"][
        "report"
    ]
    assert report["converted_share"] > 0.5
