"""The plan's records: named, typed, and each able to say what the lock keeps of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tftrt_build.config.request import ArtifactSpec, BuildRequest
from tftrt_build.emit.manifest import file_digests, served_models
from tftrt_build.emit.spec import BundleSpec
from tftrt_build.plan.integrity import Edit
from tftrt_build.plan.keys import plain
from tftrt_build.stages.convert import ConvertContext, Converter
from tftrt_build.stages.source import Source
from tftrt_build.store.cache import Entry, Lookup
from tftrt_build.store.lock import Lock


@dataclass
class StagePlan:
    """One cached stage: what decides it, its key, what the cache has, and why it would run."""

    name: str  # source, convert or warmup
    inputs: dict[str, Any]
    toolchain: dict[str, Any]
    key: str
    lookup: Lookup
    reason: str = ""

    @property
    def hit(self) -> bool:
        return self.lookup.entry is not None

    @property
    def entry(self) -> Entry | None:
        return self.lookup.entry

    def to_lock(self) -> dict[str, Any]:
        return {"key": self.key, "inputs": plain(self.inputs), "toolchain": plain(self.toolchain)}


@dataclass
class ArtifactPlan:
    """One model built with one profile: its source stage, then its convert stage."""

    artifact: ArtifactSpec
    # How the source SavedModel is obtained (export, archive, local folder).
    origin: Source
    converter: Converter
    context: ConvertContext
    source: StagePlan
    convert: StagePlan
    # What mode=plan shows about the conversion.
    details: dict[str, Any]

    @property
    def id(self) -> str:
        return self.artifact.id

    @property
    def key(self) -> str:
        return self.convert.key

    @property
    def stages(self) -> tuple[StagePlan, StagePlan]:
        """The stages in the order they run."""
        return (self.source, self.convert)

    @property
    def todo(self) -> bool:
        return not self.convert.hit

    def config(self) -> dict[str, Any]:
        return {"model": plain(self.artifact.model), "profile": plain(self.artifact.profile)}

    def to_lock(self) -> dict[str, Any]:
        """The lock entry, without output digests (those come from the built entries)."""
        return {
            "model": self.artifact.model_option.name,
            "profile": self.artifact.profile_option.name,
            "config": self.config(),
            "source": self.source.to_lock(),
            "convert": self.convert.to_lock(),
        }


@dataclass
class WarmupPlan:
    """Warm-up records of one served version: a cached stage of their own."""

    model: str
    version: int
    stage: StagePlan
    params: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class IdentityPlan:
    """The identity record of one served version: its artifact run on the sample inputs."""

    model: str
    version: int
    artifact: str  # artifact id
    stage: StagePlan
    params: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class BundlePlan:
    spec: BundleSpec
    files: dict[str, str]
    key: str
    reason: str = ""
    warmups: list[WarmupPlan] = field(default_factory=list)
    # Files of the bundle on disk that differ from what tftrt-build wrote there.
    edits: list[Edit] = field(default_factory=list)
    identities: list[IdentityPlan] = field(default_factory=list)

    def warmup_key(self, model: str, version: int) -> str | None:
        return next(
            (w.stage.key for w in self.warmups if (w.model, w.version) == (model, version)),
            None,
        )

    def identity_key(self, model: str, version: int) -> str | None:
        return next(
            (i.stage.key for i in self.identities if (i.model, i.version) == (model, version)),
            None,
        )

    def to_lock(self) -> dict[str, Any]:
        def warmup(m: Any, v: Any) -> dict[str, Any]:
            key = self.warmup_key(m.name, v.version)
            identity = self.identity_key(m.name, v.version)
            return {
                **({"warmup": key} if key else {}),
                **({"identity": identity} if identity else {}),
            }

        return {
            "target": self.spec.target_option,
            "key": self.key,
            "serving": serving_record(self.spec),
            "files": file_digests(self.files),
            "models": served_models(self.spec, warmup),
        }


def serving_record(spec: BundleSpec) -> dict[str, Any]:
    """What the server runs with, as the lock keeps it for review (mode=diff, a raw git diff).

    The rendered files' digests say that something changed; these say what. Batching is the
    resolved one (defaults filled from the profiles), as written to batching.config.
    """
    target = spec.target
    batching = {"enabled": spec.batching is not None, **(plain(spec.batching) or {})}
    return {
        "kind": target.kind.value,
        "image": target.image,
        "gpus": plain(target.gpus),
        "ports": plain(target.ports),
        "batching": batching,
        "monitoring": plain(target.monitoring),
    }


@dataclass
class Plan:
    request: BuildRequest
    artifacts: list[ArtifactPlan]
    bundle: BundlePlan
    lock: Lock
    # The bundle folder as the lock names it (relative to the project).
    bundle_id: str
    notes: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[ArtifactPlan]:
        return [a for a in self.artifacts if a.todo]
