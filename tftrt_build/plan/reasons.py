"""Why a stage would run, and what in the lock disagrees with the configs: the words users read.

Every rebuild names its cause: the config key or input that moved, with old -> new values,
computed by comparing the stage's inputs with what ``tftrt.lock`` recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tftrt_build.plan.integrity import artifact_digest_in_bundle, output_mismatch, read_manifest
from tftrt_build.plan.records import ArtifactPlan, Plan, StagePlan
from tftrt_build.store.cache import Lookup
from tftrt_build.store.digest import StatCache


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
    if stage.lookup.remote:
        return "only in cache.remote: pulled, not built"
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


def stale(plan: Plan, stat_cache: StatCache | None = None) -> list[tuple[str, str]]:
    """What in tftrt.lock disagrees with the configs, inputs, outputs and the bundle on disk:
    (item, reason) pairs."""
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
            elif edited := lock_edits(entry, stage.to_lock()):
                found.append((f"{art.id} {stage.name}", "tftrt.lock was edited: " + edited))
            if stage.lookup.problem.startswith("damaged"):
                # What the lock names is in the cache, but not as it was committed.
                found.append(
                    (f"{art.id} {stage.name}", f"{stage.lookup.problem} (a build rebuilds it)")
                )
        if locked.get("config") != art.config():
            diff = changes(locked.get("config"), art.config())
            found.append((art.id, "config changed: " + "; ".join(diff[:3])))
    locked_bundle = plan.lock.bundles.get(plan.bundle_id)
    if locked_bundle is None:
        found.append((plan.bundle_id, "bundle not in tftrt.lock"))
    elif locked_bundle.get("key") != plan.bundle.key:
        found.append((plan.bundle_id, f"bundle {plan.bundle.reason}"))
    else:
        if edited := lock_edits(locked_bundle, plan.bundle.to_lock()):
            found.append((plan.bundle_id, "tftrt.lock was edited: " + edited))
        doc = read_manifest(plan.request.bundle_dir)
        if doc is not None and doc.get("key") != plan.bundle.key:
            found.append(
                (
                    plan.bundle_id,
                    f"the bundle on disk ({str(doc.get('key'))[:12]}) is not the one tftrt.lock "
                    f"records ({plan.bundle.key[:12]}); run tftrt-build to write it",
                )
            )
    found += output_mismatches(plan, stat_cache or StatCache(None))
    found += [
        (f"{plan.bundle_id}/{e.path}", f"{e.what} by hand: the next build replaces it")
        for e in plan.bundle.edits
    ]
    return found


def lock_edits(recorded: dict[str, Any], fresh: dict[str, Any]) -> str:
    """What an entry of the lock says differently from the same entry made now ('' if nothing).

    Called only where the keys agree, so a difference is an edit of the lock, not a change.
    """
    diff = changes({k: recorded.get(k) for k in fresh}, fresh)
    more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
    return "; ".join(diff[:3]) + more


def output_mismatches(plan: Plan, stat_cache: StatCache) -> list[tuple[str, str]]:
    """Output digests in the lock that differ from the cache entry, or else the bundle.

    Only for stages whose key the lock has right: a stage with another key is stale anyway.
    """
    found: list[tuple[str, str]] = []
    doc = read_manifest(plan.request.bundle_dir)
    # The bundle stands in for the cache only when it is the bundle this plan would write.
    bundle_doc = doc if doc is not None and doc.get("key") == plan.bundle.key else None
    warmups = {(w.model, w.version) for w in plan.bundle.warmups}
    for art in plan.artifacts:
        locked = plan.lock.artifacts.get(art.id) or {}
        for stage in art.stages:
            recorded = locked.get(stage.name) or {}
            if recorded.get("key") != stage.key:
                continue
            actual, where = _output_at_hand(art, stage.name, bundle_doc, warmups, plan, stat_cache)
            hit = output_mismatch(art.id, stage.name, recorded.get("output"), actual, where)
            found += [hit] if hit else []
    return found


def _output_at_hand(
    art: ArtifactPlan,
    stage: str,
    bundle_doc: dict[str, Any] | None,
    warmups: set[tuple[str, int]],
    plan: Plan,
    stat_cache: StatCache,
) -> tuple[str | None, str]:
    """The digest of a stage's output where it can be had, and where that is."""
    if stage == "convert":
        if art.convert.entry is not None:
            return art.convert.entry.tree.digest, "the cache entry"
        if bundle_doc is not None:
            digest = artifact_digest_in_bundle(
                plan.request.bundle_dir, bundle_doc, art.id, art.key, warmups, stat_cache
            )
            return digest, "the bundle"
        return None, ""
    if art.source.entry is not None:
        return art.source.entry.tree.digest, "the cache entry"
    if art.convert.entry is not None:
        # The convert entry records the digest of the source it was made from.
        made_from = art.convert.entry.manifest.get("source_output") or {}
        return made_from.get("digest"), "the convert entry's record"
    return None, ""


def _unlocked(stage: StagePlan) -> StagePlan:
    # Compare against the lock as if nothing were cached, so the reason names the change.
    return StagePlan(stage.name, stage.inputs, stage.toolchain, stage.key, Lookup(None, "absent"))
