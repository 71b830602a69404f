"""One side of a target's comparison, in the lock's own shape, whichever side it comes from.

The base side is read from a lock; the working tree's side is what ``mode=build`` would write
into the lock for the current configs (``to_lock`` of the plan's records, without the output
digests a build adds). Comparing two records of one shape is what keeps the diff honest: a key
that moved in the diff is a key that moves in ``tftrt.lock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from tftrt_build.config.profiles import precision
from tftrt_build.config.schema import ProfileConf
from tftrt_build.plan.records import Plan
from tftrt_build.store.lock import Lock

# Higher is more exact; a native (as exported) version is FP32.
PRECISION_RANK = {"INT8": 1, "FP16": 2, "FP32": 3}


@dataclass(frozen=True)
class Served:
    """One served version: which artifact, under which key, with which warm-up records."""

    model: str
    version: int
    artifact: str
    key: str | None
    warmup: str | None


@dataclass(frozen=True)
class Side:
    """A target's bundle entry and the lock entries of the artifacts it serves."""

    bundle_id: str
    bundle: dict[str, Any]
    # Served artifact id -> its lock entry; an id the lock lacks is absent.
    artifacts: dict[str, dict[str, Any]]
    # Profiles read back from the entries' configs, filled as they are asked for.
    profiles: dict[str, ProfileConf | None] = field(default_factory=dict, compare=False)

    @classmethod
    def from_lock(cls, lock: Lock, bundle_id: str) -> Side:
        bundle = lock.bundles[bundle_id]
        ids = {v["artifact"] for m in bundle.get("models") or [] for v in m.get("versions") or []}
        return cls(bundle_id, bundle, {i: lock.artifacts[i] for i in ids if i in lock.artifacts})

    @classmethod
    def from_plan(cls, plan: Plan) -> Side:
        return cls(
            plan.bundle_id,
            plan.bundle.to_lock(),
            {a.id: a.to_lock() for a in plan.artifacts},
            {a.id: a.artifact.profile for a in plan.artifacts},
        )

    @property
    def target(self) -> str:
        return str(self.bundle.get("target", "?"))

    @property
    def key(self) -> str | None:
        key = self.bundle.get("key")
        return str(key) if key else None

    @property
    def serving(self) -> dict[str, Any] | None:
        """Image, GPUs, ports, batching, monitoring; None in a lock that predates them."""
        found = self.bundle.get("serving")
        return found if isinstance(found, dict) else None

    def versions(self) -> dict[tuple[str, int], Served]:
        found = {}
        for m in self.bundle.get("models") or []:
            for v in m.get("versions") or []:
                found[(m["name"], int(v["version"]))] = Served(
                    m["name"], int(v["version"]), v["artifact"], v.get("key"), v.get("warmup")
                )
        return found

    def labels(self) -> dict[tuple[str, str], int]:
        return {
            (m["name"], str(label)): int(version)
            for m in self.bundle.get("models") or []
            for label, version in (m.get("labels") or {}).items()
        }

    def models(self) -> list[str]:
        return [m["name"] for m in self.bundle.get("models") or []]

    def artifact_key(self, artifact: str) -> str | None:
        """The artifact's convert key: from its lock entry, else from the bundle's versions."""
        entry = self.artifacts.get(artifact)
        if entry is not None and (entry.get("convert") or {}).get("key"):
            return str(entry["convert"]["key"])
        return next((v.key for v in self.versions().values() if v.artifact == artifact), None)

    def profile(self, artifact: str) -> ProfileConf | None:
        """The artifact's profile as the lock recorded it; None when absent or unreadable."""
        if artifact not in self.profiles:
            self.profiles[artifact] = self._read_profile(artifact)
        return self.profiles[artifact]

    def _read_profile(self, artifact: str) -> ProfileConf | None:
        entry = self.artifacts.get(artifact)
        recorded = ((entry or {}).get("config") or {}).get("profile")
        if not isinstance(recorded, dict):
            return None
        try:
            merged = OmegaConf.merge(OmegaConf.structured(ProfileConf), recorded)
            profile = OmegaConf.to_object(merged)
        except Exception:
            # A lock written by another tftrt-build version, with keys this one does not know.
            return None
        return profile if isinstance(profile, ProfileConf) else None

    def precision(self, artifact: str) -> str | None:
        profile = self.profile(artifact)
        return precision(profile) if profile is not None else None


def lower(before: str | None, after: str | None) -> bool:
    """Whether ``after`` is a lower precision than ``before`` (unknown ones never are)."""
    if before not in PRECISION_RANK or after not in PRECISION_RANK:
        return False
    return PRECISION_RANK[after] < PRECISION_RANK[before]
