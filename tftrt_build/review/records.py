"""What a diff found, as typed records: per target its artifacts, its serving changes, its notes.

Every record turns into plain data (``to_json``) for ``diff.format=json``; the text and Markdown
renderings (``render``) read the same records, so the three can never disagree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tftrt_build.config.schema import DiffWarning
from tftrt_build.plan.reasons import Change
from tftrt_build.review.base import Base

# Artifact and target states, in the order tables list them.
ADDED, REMOVED, REBUILT, CHANGED, UNCHANGED = "added", "removed", "rebuilt", "changed", "unchanged"
ORDER = {ADDED: 0, REMOVED: 1, REBUILT: 2, CHANGED: 3, UNCHANGED: 4}
# A label that points at another version.
MOVED = "moved"


def change_json(c: Change) -> dict[str, Any]:
    return {"path": c.path, "kind": c.kind, "before": c.before, "after": c.after}


@dataclass
class ArtifactDiff:
    """One artifact a target serves (``<model option>/<profile option>``), before and after."""

    id: str
    status: str  # added, removed, rebuilt (its key moved), changed (config, same key), unchanged
    before: str | None  # convert key in the base
    after: str | None  # convert key the configs give now
    precision: str | None  # as served (FP32, FP16, INT8); None when unreadable
    # Config keys that moved: model.source.args.classes, profile.tolerance.atol, ...
    config: list[Change] = field(default_factory=list)
    # Input files whose content moved (the export script, deps, calibration files), by path.
    files: list[Change] = field(default_factory=list)
    # Versions of what ran the stages (TensorFlow, Keras, TensorRT, GPU architecture, image).
    toolchain: list[Change] = field(default_factory=list)
    # Stage inputs that moved with no config key or file behind them (a new key recipe).
    inputs: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "key": {"before": self.before, "after": self.after},
            "precision": self.precision,
            "config": [change_json(c) for c in self.config],
            "files": [change_json(c) for c in self.files],
            "toolchain": [change_json(c) for c in self.toolchain],
            "inputs": [change_json(c) for c in self.inputs],
        }


@dataclass
class ServingChange:
    """One change in what TF Serving loads or how it runs."""

    # model, version, label, warmup (records of a version), parameter (image, batching, ...),
    # file (a rendered config file of the bundle)
    what: str
    # demo, demo:2, demo:stable, batching.max_batch_size, docker-compose.yml
    item: str
    change: str  # added, removed, changed; moved for a label
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Finding:
    """A warning a reviewer must see; blocking ones make mode=diff exit 1."""

    kind: DiffWarning
    bundle: str
    message: str
    blocking: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "bundle": self.bundle,
            "message": self.message,
            "blocking": self.blocking,
        }


@dataclass
class TargetDiff:
    """One bundle: its artifacts and serving side in the base and now."""

    bundle: str  # the bundle folder, as the lock names it
    target: str  # target option
    status: str  # added, removed, changed, unchanged
    # The bundle's folder in the base when it moved (target.bundle_dir changed).
    bundle_before: str | None = None
    key_before: str | None = None
    key_after: str | None = None
    artifacts: list[ArtifactDiff] = field(default_factory=list)
    serving: list[ServingChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for a in self.artifacts:
            found[a.status] = found.get(a.status, 0) + 1
        return dict(sorted(found.items(), key=lambda kv: ORDER[kv[0]]))

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "bundle_before": self.bundle_before,
            "target": self.target,
            "status": self.status,
            "key": {"before": self.key_before, "after": self.key_after},
            "artifacts": [a.to_json() for a in self.artifacts],
            "serving": [s.to_json() for s in self.serving],
            "notes": list(self.notes),
        }


@dataclass
class Review:
    """The whole diff: the base, every target compared, the warnings."""

    base: Base
    targets: list[TargetDiff]
    warnings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [w for w in self.warnings if w.blocking]

    @property
    def changed(self) -> list[TargetDiff]:
        return [t for t in self.targets if t.status != UNCHANGED]

    @property
    def code(self) -> int:
        """0 with or without changes; 1 when a blocking warning was found."""
        return 1 if self.blocking else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "base": self.base.to_json(),
            "changed": bool(self.changed),
            "blocking": len(self.blocking),
            "targets": [t.to_json() for t in self.targets],
            "warnings": [w.to_json() for w in self.warnings],
            "notes": list(self.notes),
        }
