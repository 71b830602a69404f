"""Which TF Serving images can serve a TF-TRT artifact, and on which host: refused at plan time.

A TF-TRT SavedModel loads only in a GPU image of TF Serving 2.17 or older (2.18 and newer ship
no TRTEngineOp kernels, tensorflow/serving#4018) whose TensorRT is the one that converted it (a
mismatch crashes the server, tensorflow/serving#2205).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tftrt_build.config.request import BuildRequest
from tftrt_build.config.schema import ConverterKind, GpusConf
from tftrt_build.errors import ConfigError
from tftrt_build.plan.records import ArtifactPlan

# TensorRT inside the tensorflow/serving GPU images (FACTS.md; 8.6.1 is 8.6.1.6).
SERVING_TENSORRT = (
    ((2, 12, 0), (2, 14, 1), "8.4.3"),
    ((2, 15, 1), (2, 19, 0), "8.6.1"),
)
# The first TF Serving release whose GPU image cannot load TF-TRT models (tensorflow/serving#4018).
SERVING_WITHOUT_TFTRT = (2, 18, 0)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@dataclass(frozen=True)
class ServingImage:
    image: str
    version: tuple[int, ...] | None  # TF Serving version from the tag, when it says
    gpu: bool | None  # whether the tag names a GPU build
    tensorrt: str | None  # TensorRT version inside, when known


def serving_image(image: str, declared_tensorrt: str | None = None) -> ServingImage:
    """What a tensorflow/serving image tag tells about TF-TRT."""
    name = image.split("@", 1)[0]
    repo, tag = name, ""
    if ":" in name.rsplit("/", 1)[-1]:
        repo, _, tag = name.rpartition(":")
    official = repo in ("tensorflow/serving", "docker.io/tensorflow/serving")
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)(.*)$", tag) if official else None
    version = tuple(int(x) for x in match.groups()[:3]) if match else None
    gpu = ("gpu" in match.group(4)) if match else None
    tensorrt = declared_tensorrt
    if tensorrt is None and version is not None and gpu:
        for low, high, trt in SERVING_TENSORRT:
            if low <= version <= high:
                tensorrt = trt
    return ServingImage(image, version, gpu, tensorrt)


def serving_problem(image: ServingImage, converter_tensorrt: str | None) -> str:
    """Why this image cannot serve a TF-TRT model converted with that TensorRT; '' if it can."""
    if image.version is not None and image.version >= SERVING_WITHOUT_TFTRT:
        return (
            f"{image.image} cannot load TF-TRT models: TF Serving 2.18 and newer ship no "
            "TRTEngineOp kernels (tensorflow/serving#4018); use 2.17.1-gpu or older"
        )
    if image.gpu is False:
        return f"{image.image} is a CPU image; TF-TRT engines run only in a -gpu image"
    if image.tensorrt is None:
        return (
            f"cannot tell which TensorRT {image.image} carries; set target.image_tensorrt "
            "to its version"
        )
    if converter_tensorrt and version_tuple(image.tensorrt) != version_tuple(converter_tensorrt):
        return (
            f"{image.image} carries TensorRT {image.tensorrt}, but the model is converted with "
            f"TensorRT {converter_tensorrt}; a mismatch crashes the server "
            "(tensorflow/serving#2205)"
        )
    return ""


def host_problem(image: ServingImage, gpus: GpusConf) -> tuple[str, str]:
    """(key, why) when a GPU reservation and an official image disagree; ('', '') if they do not.

    A CPU image given GPUs reserves devices it never uses; a -gpu image given none cannot be
    served on the host the bundle README would describe. Neither is changed silently.
    """
    reserved = bool(gpus.device_ids) or gpus.asked() != 0
    if image.gpu is False and reserved:
        key = "gpus.device_ids" if gpus.device_ids else "gpus.count"
        return key, (
            f"{image.image} is a CPU image, so the GPUs reserved for it would sit idle; set "
            "target.gpus.count: 0 (the built-in compose_cpu target does)"
        )
    if image.gpu is True and not reserved:
        return "gpus.count", (
            f"0 GPUs for the GPU image {image.image}; reserve one, or serve on a CPU host with "
            f"tensorflow/serving:{'.'.join(map(str, image.version or ()))} (target=compose_cpu)"
        )
    return "", ""


def check_serving(request: BuildRequest, artifacts: list[ArtifactPlan]) -> None:
    """The image must suit the GPUs and load every artifact: refuse it at plan time."""
    image = serving_image(request.target.image, request.target.image_tensorrt)
    key, problem = host_problem(image, request.target.gpus)
    if problem:
        raise ConfigError(problem, key=f"target.{key}", file=request.target_option.file)
    for art in artifacts:
        if art.artifact.profile.converter is not ConverterKind.tftrt:
            continue
        problem = serving_problem(image, art.convert.toolchain.get("tensorrt"))
        if problem:
            raise ConfigError(
                f"cannot serve {art.id}: {problem}",
                key="target.image",
                file=request.target_option.file,
            )
