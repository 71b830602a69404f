"""Emitters: each renders one part of a serving bundle from a ``BundleSpec``, as text.

Rendering is pure (a dict of relative path -> content); ``tftrt_build.emit.bundle`` is the one
place that writes a bundle to disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from tftrt_build.schema import TargetConf

# Folders inside the serving container.
CONFIG_DIR = "/config"


@dataclass(frozen=True)
class BundleVersion:
    version: int
    artifact: str  # artifact id, "<model option>/<profile option>"
    profile: str  # profile name
    key: str  # key of the artifact's convert stage


@dataclass(frozen=True)
class BundleModel:
    name: str  # served model name
    versions: tuple[BundleVersion, ...]
    labels: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BundleSpec:
    target: TargetConf
    target_option: str
    # Folder name of the bundle; also names the compose project.
    name: str
    models: tuple[BundleModel, ...]

    @property
    def project_name(self) -> str:
        return "tftrt-" + re.sub(r"[^a-z0-9_-]+", "-", self.name.lower()).strip("-")


class Emitter(Protocol):
    def render(self, spec: BundleSpec) -> dict[str, str]: ...


def emitters_for(spec: BundleSpec) -> list[Emitter]:
    from tftrt_build.emit.compose import ComposeEmitter
    from tftrt_build.emit.models_config import ModelsConfigEmitter

    return [ModelsConfigEmitter(), ComposeEmitter()]


def render_all(spec: BundleSpec) -> dict[str, str]:
    files: dict[str, str] = {}
    for emitter in emitters_for(spec):
        files.update(emitter.render(spec))
    return dict(sorted(files.items()))
