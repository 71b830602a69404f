"""The native converter: the SavedModel served as-is, the baseline for every TF-TRT profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tftrt_build.errors import ConfigError
from tftrt_build.executors import Executor, LogSink
from tftrt_build.fs import link_tree
from tftrt_build.schema import ConverterKind, ModelConf, Precision, ProfileConf


class NativeConverter:
    kind = ConverterKind.native
    format = 1

    def check(self, profile: ProfileConf, model: ModelConf, file: str | None) -> None:
        precision = profile.precision_mode or profile.precision.value
        if precision != Precision.FP32.value:
            raise ConfigError(
                f"the native converter serves the SavedModel as-is; {precision} needs "
                "converter: tftrt",
                key="profile.precision",
                file=file,
            )
        if profile.calibration is not None:
            raise ConfigError(
                "calibration is for converter: tftrt with precision INT8",
                key="profile.calibration",
                file=file,
            )

    def key_inputs(self, profile: ProfileConf, model: ModelConf) -> dict[str, Any]:
        return {}

    def toolchain(self, executor: Executor) -> dict[str, str]:
        return {}

    def describe(self, profile: ProfileConf, model: ModelConf) -> dict[str, Any]:
        return {"converter": "native (SavedModel served as-is)"}

    def preflight(self, executor: Executor) -> None:
        return None

    def convert(
        self,
        source: Path,
        output: Path,
        profile: ProfileConf,
        model: ModelConf,
        executor: Executor,
        log: LogSink,
    ) -> dict[str, Any]:
        link_tree(source, output)
        return {"converter": "native"}
