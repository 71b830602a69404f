"""The converter for each ``profile.converter`` kind."""

from __future__ import annotations

from tftrt_build.config.schema import ConverterKind, ProfileConf
from tftrt_build.stages.convert import Converter
from tftrt_build.stages.native import NativeConverter
from tftrt_build.stages.tftrt import TftrtConverter

_REGISTRY: dict[ConverterKind, Converter] = {
    ConverterKind.native: NativeConverter(),
    ConverterKind.tftrt: TftrtConverter(),
}


def converter_for(profile: ProfileConf) -> Converter:
    return _REGISTRY[profile.converter]
