"""Converters turn a source SavedModel into the artifact a profile asks for.

Each converter is pure up to ``convert``: the parameters that go into the cache key and what
``mode=plan`` shows never touch TensorFlow. ``convert`` does the work, through an executor when
it needs TensorFlow; ``accept`` judges its report (and re-judges a cached one when the
profile's tolerances change). Whether a profile is acceptable at all is decided earlier, by
``tftrt_build.config.profiles``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tftrt_build.config.schema import ConverterKind, ModelConf, ProfileConf
from tftrt_build.execute.task import Executor, LogSink

# (path as a config names it, key path that names it) -> the file it means.
Locate = Callable[[str, str], Path]
# A file -> its content digest.
Hash = Callable[[Path], str]


@dataclass(frozen=True)
class ConvertContext:
    """What a conversion needs besides the profile and the model."""

    executor: Executor
    # The one lookup for files a profile or model names: hashed into the key, handed to the stage.
    locate: Locate
    hash: Hash
    # GPU architecture pre-built engines are for; None when engines are not GPU-specific.
    compute_capability: str | None = None
    # The toolchain the lock recorded for this stage, when only planning or checking: a
    # converter may take from it what only a capability probe (TensorFlow in a child) could
    # tell, once what can be read cheaply agrees with it. None when building.
    recorded: dict[str, Any] | None = None

    def digest(self, path: str, key: str) -> str:
        return self.hash(self.locate(path, key))


class Converter(Protocol):
    kind: ConverterKind
    # Bump when the converter writes something different for the same inputs.
    format: int

    def key_inputs(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        """The normalised parameters that decide the converted artifact."""
        ...

    def toolchain(self, context: ConvertContext) -> dict[str, Any]:
        """What the output depends on beyond its inputs (TensorFlow, TensorRT, GPU)."""
        ...

    def describe(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        """What mode=plan shows about the conversion."""
        ...

    def preflight(self, context: ConvertContext, profile: ProfileConf) -> None:
        """Raise CapabilityError before any work when the executor cannot convert."""
        ...

    def convert(
        self,
        source: Path,
        output: Path,
        profile: ProfileConf,
        model: ModelConf,
        context: ConvertContext,
        log: LogSink,
    ) -> dict[str, Any]:
        """Write the artifact into ``output`` and return its conversion report."""
        ...

    def accept(self, report: dict[str, Any], profile: ProfileConf) -> None:
        """Raise StageError when the report shows a conversion this profile must not ship."""
        ...
