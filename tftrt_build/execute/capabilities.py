"""What a machine (or image) can do for TF-TRT, as a capability probe found it.

The probe itself runs in a child process (``tfops/probe.py``): in TensorFlow 2.17 without
TensorRT, ``get_loaded_tensorrt_version()`` aborts the whole process, so it is only called after
``is_tensorrt_enabled()`` says the library loaded, and never in the CLI process. This module
only interprets probe results, so it is pure and testable anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class CapabilityMissing(Exception):
    """Raised by a stage operation when this machine lacks what it needs (GPU, TensorRT).

    It lives here, not in the runner: the runner runs as ``__main__``, where a class of its own
    would not be the one operations raise.
    """


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
