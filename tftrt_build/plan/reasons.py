"""Why a stage would run, and what in the lock disagrees with the configs: the words users read.

Every rebuild names its cause: the config key or input that moved, with old -> new values,
computed by comparing the stage's inputs with what ``tftrt.lock`` recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tftrt_build.plan.records import Plan, StagePlan
from tftrt_build.store.cache import Lookup


@dataclass(frozen=True)
class Change:
    """One value that moved between two records, at its dotted path."""

    path: str
    before: Any = None
    after: Any = None
    # added or removed: the key exists on one side only.
    kind: str = "changed"

    def __str__(self) -> str:
        if self.kind != "changed":
            return f"{self.path}: {self.kind}"
        return f"{self.path}: {short(self.before)} -> {short(self.after)}"


def moves(before: Any, after: Any, prefix: str = "") -> list[Change]:
    """Every dotted path whose value differs between two plain records, in key order."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Change] = []
        for k in sorted(set(before) | set(after), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in before:
                found.append(Change(path, None, after[k], "added"))
            elif k not in after:
                found.append(Change(path, before[k], None, "removed"))
            else:
                found.extend(moves(before[k], after[k], path))
        return found
    if before == after:
        return []
    return [Change(prefix, before, after)]


def changes(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ, with old -> new values: 'args.classes: 10 -> 12'."""
    return [str(c) for c in moves(before, after, prefix)]


def short(value: Any) -> str:
    """A value as one short token: digests and long values cut to 12 characters."""
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:12] + "…"


def why(stage: StagePlan, locked: dict[str, Any] | None) -> str:
    """Why a stage would run (or 'cached'), against its entry in the lock."""
    if stage.lookup.entry is not None:
        return "cached"
    if stage.lookup.problem.startswith("damaged"):
        return stage.lookup.problem
    if locked is None:
        return "new: not in tftrt.lock"
    if locked.get("key") == stage.key:
        return "not in the cache (the lock is up to date)"
    diff = changes(
        {"inputs": locked.get("inputs"), "toolchain": locked.get("toolchain")},
        {"inputs": stage.inputs, "toolchain": stage.toolchain},
    )
    diff = [d.removeprefix("inputs.") for d in diff]
    if not diff:
        return "key recipe changed"
    more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
    return "changed: " + "; ".join(diff[:3]) + more


def bundle_reason(locked: dict[str, Any] | None, key: str, files: dict[str, str]) -> str:
    """Why the bundle would be written, against its entry in the lock."""
    if locked is None:
        return "new: not in tftrt.lock"
    if locked.get("key") == key:
        return "unchanged"
    moved = changes(locked.get("files"), files)[:3]
    return "changed: " + "; ".join(moved) if moved else "changed: served versions"


def stale(plan: Plan) -> list[tuple[str, str]]:
    """What in tftrt.lock disagrees with the configs and inputs: (item, reason) pairs."""
    found: list[tuple[str, str]] = []
    for art in plan.artifacts:
        locked = plan.lock.artifacts.get(art.id)
        if locked is None:
            found.append((art.id, "not in tftrt.lock"))
            continue
        for stage in art.stages:
            entry = locked.get(stage.name) or {}
            if entry.get("key") != stage.key:
                found.append((f"{art.id} {stage.name}", why(_unlocked(stage), entry)))
        if locked.get("config") != art.config():
            diff = changes(locked.get("config"), art.config())
            found.append((art.id, "config changed: " + "; ".join(diff[:3])))
    locked_bundle = plan.lock.bundles.get(plan.bundle_id)
    if locked_bundle is None:
        found.append((plan.bundle_id, "bundle not in tftrt.lock"))
    elif locked_bundle.get("key") != plan.bundle.key:
        found.append((plan.bundle_id, f"bundle {plan.bundle.reason}"))
    return found


def _unlocked(stage: StagePlan) -> StagePlan:
    # Compare against the lock as if nothing were cached, so the reason names the change.
    return StagePlan(stage.name, stage.inputs, stage.toolchain, stage.key, Lookup(None, "absent"))
