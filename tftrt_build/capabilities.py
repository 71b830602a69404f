"""What a machine (or image) can do for TF-TRT, and which TF Serving images can serve it.

The probe itself runs in a child process (``tfops/probe.py``): in TensorFlow 2.17 without
TensorRT, ``get_loaded_tensorrt_version()`` aborts the whole process, so it is only called after
``is_tensorrt_enabled()`` says the library loaded, and never in the CLI process. This module
only interprets probe results, so it is pure and testable anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# TensorRT inside the tensorflow/serving GPU images (FACTS.md; 8.6.1 is 8.6.1.6).
SERVING_TENSORRT = (
    ((2, 12, 0), (2, 14, 1), "8.4.3"),
    ((2, 15, 1), (2, 19, 0), "8.6.1"),
)
# The first TF Serving release whose GPU image cannot load TF-TRT models (tensorflow/serving#4018).
SERVING_WITHOUT_TFTRT = (2, 18, 0)


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str


@dataclass(frozen=True)
class Capabilities:
    """A probe's findings: TensorFlow's TensorRT build, the library it loads, the GPUs."""

    tensorflow: str
    tensorrt_build: bool
    tensorrt_linked: str | None
    tensorrt_enabled: bool
    tensorrt_loaded: str | None
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    # Set when the probe itself could not run (crashed, or TensorFlow is missing).
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensorflow": self.tensorflow,
            "tensorrt_build": self.tensorrt_build,
            "tensorrt_linked": self.tensorrt_linked,
            "tensorrt_enabled": self.tensorrt_enabled,
            "tensorrt_loaded": self.tensorrt_loaded,
            "gpus": [
                {"name": g.name, "compute_capability": g.compute_capability} for g in self.gpus
            ],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        return cls(
            tensorflow=str(data.get("tensorflow", "absent")),
            tensorrt_build=bool(data.get("tensorrt_build")),
            tensorrt_linked=data.get("tensorrt_linked"),
            tensorrt_enabled=bool(data.get("tensorrt_enabled")),
            tensorrt_loaded=data.get("tensorrt_loaded"),
            gpus=tuple(Gpu(g["name"], g["compute_capability"]) for g in data.get("gpus", [])),
            error=str(data.get("error", "")),
        )

    def missing(self, compute_capability: str | None = None) -> list[str]:
        """Why TF-TRT conversion cannot run here; empty when it can."""
        if self.error:
            return [self.error]
        reasons = []
        if not self.tensorrt_build:
            reasons.append(
                f"TensorFlow {self.tensorflow} is built without TensorRT (TF-TRT needs "
                "TensorFlow <= 2.17 built with it, such as the PyPI wheel 2.17.1)"
            )
        elif not self.tensorrt_enabled:
            reasons.append(
                f"the TensorRT {self.tensorrt_linked} library is not installed "
                f"(TensorFlow loads libnvinfer.so.{self.tensorrt_linked} from its rpath or the "
                "system library folders)"
            )
        elif self.tensorrt_loaded != self.tensorrt_linked:
            reasons.append(
                f"TensorRT {self.tensorrt_loaded} is loaded but TensorFlow was built with "
                f"{self.tensorrt_linked}; engines would not load in a server built like "
                "TensorFlow"
            )
        if not self.gpus:
            reasons.append("no GPU is visible to TensorFlow")
        elif compute_capability and all(
            g.compute_capability != compute_capability for g in self.gpus
        ):
            have = ", ".join(f"{g.name} ({g.compute_capability})" for g in self.gpus)
            reasons.append(
                f"engines are to be built for compute capability {compute_capability}, but "
                f"this machine has {have}"
            )
        return reasons


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
