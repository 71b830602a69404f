"""The typed spec every emitter renders: what one bundle serves, resolved by the plan."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tftrt_build.config.schema import TargetConf

# Folder of the config files inside the serving container.
CONFIG_DIR = "/config"


@dataclass(frozen=True)
class BundleVersion:
    version: int
    artifact: str  # artifact id, "<model option>/<profile option>"
    profile: str  # profile name
    key: str  # key of the artifact's convert stage
    converter: str  # native | tftrt
    precision: str
    max_batch_size: int
    # Batch sizes whose TF-TRT engines are pre-built (empty: none, or built at run time).
    engine_batch_sizes: tuple[int, ...] = ()
    # Batch sizes of the warm-up requests written into the version; empty: no warm-up.
    warmup_batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class BundleModel:
    name: str  # served model name
    signature: str
    versions: tuple[BundleVersion, ...]
    labels: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Batching:
    """Server-side batching parameters, resolved from the target and the profiles."""

    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    num_batch_threads: int
    allowed_batch_sizes: tuple[int, ...]
    pad_variable_length_inputs: bool


@dataclass(frozen=True)
class BundleSpec:
    target: TargetConf
    target_option: str
    # Folder name of the bundle; also names the compose project.
    name: str
    models: tuple[BundleModel, ...]
    batching: Batching | None = None
    # The command that rebuilds this bundle.
    command: str = "tftrt-build"

    @property
    def project_name(self) -> str:
        # DNS-1123 (Kubernetes names) is the strictest rule of the places this name goes.
        return "tftrt-" + re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")

    @property
    def warmup(self) -> bool:
        return any(v.warmup_batch_sizes for m in self.models for v in m.versions)
