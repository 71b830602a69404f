"""Converters turn a source SavedModel into the artifact a profile asks for.

Each converter is pure up to ``convert``: checking a profile, the parameters that go into the
cache key and what ``mode=plan`` shows never touch TensorFlow. ``convert`` does the work, through
an executor when it needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tftrt_build.executors import Executor, LogSink
from tftrt_build.schema import ConverterKind, ModelConf, ProfileConf


class Converter(Protocol):
    kind: ConverterKind
    # Bump when the converter writes something different for the same inputs.
    format: int

    def check(self, profile: ProfileConf, model: ModelConf, file: str | None) -> None:
        """Raise ConfigError for a profile this converter cannot honour."""
        ...

    def key_inputs(self, profile: ProfileConf, model: ModelConf) -> dict[str, Any]:
        """The normalised parameters that decide the converted artifact."""
        ...

    def toolchain(self, executor: Executor) -> dict[str, str]:
        """What the converter's output depends on beyond its inputs (versions, GPU)."""
        ...

    def describe(self, profile: ProfileConf, model: ModelConf) -> dict[str, Any]:
        """What mode=plan shows about the conversion."""
        ...

    def preflight(self, executor: Executor) -> None:
        """Raise CapabilityError before any work when the executor cannot convert."""
        ...

    def convert(
        self,
        source: Path,
        output: Path,
        profile: ProfileConf,
        model: ModelConf,
        executor: Executor,
        log: LogSink,
    ) -> dict[str, Any]:
        """Write the artifact into ``output`` and return its conversion report."""
        ...


def converter_for(profile: ProfileConf) -> Converter:
    from tftrt_build.converters.native import NativeConverter

    registry: dict[ConverterKind, Converter] = {ConverterKind.native: NativeConverter()}
    return registry[profile.converter]
