"""The native converter: the SavedModel served as-is, the baseline for every TF-TRT profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tftrt_build.converters import ConvertContext
from tftrt_build.errors import ConfigError
from tftrt_build.executors import LogSink
from tftrt_build.fs import link_tree
from tftrt_build.schema import (
    CalibrationSource,
    ConverterKind,
    ModelConf,
    Precision,
    ProfileConf,
)


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
        if profile.calibration.source is not CalibrationSource.off:
            raise ConfigError(
                "calibration is for converter: tftrt with precision INT8",
                key="profile.calibration",
                file=file,
            )

    def key_inputs(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        return {}

    def toolchain(self, context: ConvertContext) -> dict[str, Any]:
        return {}

    def describe(
        self, profile: ProfileConf, model: ModelConf, context: ConvertContext
    ) -> dict[str, Any]:
        return {"converter": "native (SavedModel served as-is)"}

    def preflight(self, context: ConvertContext, profile: ProfileConf) -> None:
        return None

    def convert(
        self,
        source: Path,
        output: Path,
        profile: ProfileConf,
        model: ModelConf,
        context: ConvertContext,
        log: LogSink,
    ) -> dict[str, Any]:
        link_tree(source, output)
        return {"converter": "native"}

    def accept(self, report: dict[str, Any], profile: ProfileConf) -> None:
        return None
