"""The native converter: the SavedModel served as-is, the baseline for every TF-TRT profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tftrt_build.config.schema import ConverterKind, ModelConf, ProfileConf
from tftrt_build.execute.task import LogSink
from tftrt_build.stages.convert import ConvertContext
from tftrt_build.store.fs import link_tree


class NativeConverter:
    kind = ConverterKind.native
    format = 1

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
