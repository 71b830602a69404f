"""emit: pure renderers of a bundle's files, each a function of a typed ``BundleSpec``.

Owns the spec (``spec``) and one module per file of the bundle: ``models_config``,
``server_config`` (batching, monitoring; messages from ``protos``), ``compose`` (with
``health``), ``k8s``, ``readme`` and ``manifest`` (bundle.json, and the served-models list the
lock shares with it). Rendering returns text and refuses nothing: every check that can refuse a
target runs in ``config`` or ``plan``. ``tftrt_build.build.bundle`` is the one place that writes
a bundle to disk.

May import: ``store`` (digests), ``config``, ``errors`` (and protobuf, PyYAML,
tensorflow-serving-api's protos).
"""

from __future__ import annotations

from typing import Protocol

from tftrt_build.config.schema import TargetKind
from tftrt_build.emit.compose import ComposeEmitter
from tftrt_build.emit.k8s import KubernetesEmitter
from tftrt_build.emit.models_config import ModelsConfigEmitter
from tftrt_build.emit.server_config import BatchingEmitter, MonitoringEmitter
from tftrt_build.emit.spec import BundleSpec


class Emitter(Protocol):
    def render(self, spec: BundleSpec) -> dict[str, str]: ...


def emitters_for(spec: BundleSpec) -> list[Emitter]:
    deployment: Emitter = (
        KubernetesEmitter() if spec.target.kind is TargetKind.k8s else ComposeEmitter()
    )
    return [ModelsConfigEmitter(), BatchingEmitter(), MonitoringEmitter(), deployment]


def render_all(spec: BundleSpec) -> dict[str, str]:
    files: dict[str, str] = {}
    for emitter in emitters_for(spec):
        files.update(emitter.render(spec))
    return dict(sorted(files.items()))
