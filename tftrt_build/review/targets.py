"""Which targets a diff covers, how each is paired with its bundle in the base, and the result.

With no target chosen, a diff covers every bundle either lock names: a pull request is reviewed
as a whole, as a raw ``git diff tftrt.lock`` would show it. Each bundle is planned again from
the working tree's configs by its target option (and, for a target that serves the command
line's model and profile, by the model and profile options its one artifact was built with).
A bundle whose target option is gone is removed; one whose ``bundle_dir`` moved is paired with
its old folder when that is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

from tftrt_build.config.schema import DiffWarning
from tftrt_build.plan.reasons import stale
from tftrt_build.plan.records import Plan
from tftrt_build.review.base import Base
from tftrt_build.review.checks import find_warnings, mark
from tftrt_build.review.compare import compare_artifacts, compare_serving
from tftrt_build.review.records import ADDED, CHANGED, REMOVED, UNCHANGED, Review, TargetDiff
from tftrt_build.review.sides import Side
from tftrt_build.store.lock import Lock


@dataclass(frozen=True)
class Selection:
    """A target to plan again: its option, and the lock bundles it was found through."""

    target: str
    # For a target that serves the command line's model and profile (no target.models): the
    # model and profile options of the one artifact its bundle was built with.
    model: str | None = None
    profile: str | None = None
    bundles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    """A selection planned from the working tree's configs, or why it could not be."""

    selection: Selection
    plan: Plan | None
    # Why there is no plan: the target, model or profile option no longer exists.
    missing: str = ""


def from_locks(*locks: Lock) -> list[Selection]:
    """One selection per distinct target (and model/profile) of the bundles the locks name."""
    found: dict[tuple[str, str | None, str | None], list[str]] = {}
    for lock in locks:
        for bundle_id, entry in sorted(lock.bundles.items()):
            served = [v for m in entry.get("models") or [] for v in m.get("versions") or []]
            model = profile = None
            if len(served) == 1 and "/" in str(served[0].get("artifact", "")):
                model, profile = str(served[0]["artifact"]).split("/", 1)
            ids = found.setdefault((str(entry.get("target")), model, profile), [])
            if bundle_id not in ids:
                ids.append(bundle_id)
    return [Selection(t, m, p, tuple(ids)) for (t, m, p), ids in found.items()]


def assemble(
    base: Base,
    planned: list[Planned],
    head_lock: Lock,
    blocking: set[DiffWarning],
) -> Review:
    """Pair every planned target with its base bundle, compare, and gather the warnings."""
    review = Review(base, [], [])
    claimed: set[str] = set()
    seen: set[str] = set()
    for p in planned:
        if p.plan is None or p.plan.bundle_id in seen:
            continue
        seen.add(p.plan.bundle_id)
        base_id = _pair(base.lock, p.plan.bundle_id, p.selection, claimed)
        old = Side.from_lock(base.lock, base_id) if base_id else None
        _add(review, old, Side.from_plan(p.plan), p.plan, head_lock, blocking)
    for p in planned:
        if p.plan is not None:
            continue
        for bundle_id in p.selection.bundles:
            if bundle_id in base.lock.bundles and bundle_id not in claimed | seen:
                claimed.add(bundle_id)
                old = Side.from_lock(base.lock, bundle_id)
                _add(review, old, None, None, head_lock, blocking).notes.append(p.missing)
            elif bundle_id in head_lock.bundles and bundle_id not in base.lock.bundles:
                review.notes.append(
                    f"tftrt.lock lists bundle {bundle_id}, but {p.missing}: "
                    "remove its entry from tftrt.lock"
                )
    # Blocking warnings first, each kind in the order checks finds them.
    review.warnings.sort(key=lambda w: not w.blocking)
    return review


def _pair(lock: Lock, bundle_id: str, selection: Selection, claimed: set[str]) -> str | None:
    """The base bundle of a planned target: the same folder, else its one former folder."""
    if bundle_id in lock.bundles and bundle_id not in claimed:
        claimed.add(bundle_id)
        return bundle_id
    candidates = selection.bundles or tuple(
        b for b, e in sorted(lock.bundles.items()) if e.get("target") == selection.target
    )
    free = [b for b in candidates if b in lock.bundles and b not in claimed]
    if len(free) != 1:
        return None
    claimed.add(free[0])
    return free[0]


def _add(
    review: Review,
    base: Side | None,
    head: Side | None,
    plan: Plan | None,
    head_lock: Lock,
    blocking: set[DiffWarning],
) -> TargetDiff:
    """Compare one target's two sides; add it and its warnings to the review."""
    either = head or base
    assert either is not None
    moved = base is not None and head is not None and base.bundle_id != head.bundle_id
    target = TargetDiff(
        bundle=either.bundle_id,
        target=either.target,
        status=ADDED if base is None else REMOVED if head is None else UNCHANGED,
        bundle_before=base.bundle_id if base is not None and moved else None,
        key_before=base.key if base else None,
        key_after=head.key if head else None,
        artifacts=compare_artifacts(base, head),
    )
    target.serving, target.notes = compare_serving(base, head)
    if target.bundle_before:
        target.notes.append(f"the bundle moved from {target.bundle_before} (target.bundle_dir)")
    if base is not None:
        for v in base.versions().values():
            if v.artifact not in base.artifacts:
                target.notes.append(f"the base lock has no entry for artifact {v.artifact}")
    changed = any(a.status != UNCHANGED for a in target.artifacts) or bool(target.serving)
    if target.status == UNCHANGED and (changed or target.key_before != target.key_after):
        target.status = CHANGED
    command = plan.bundle.spec.command if plan is not None else "tftrt-build"
    found = find_warnings(base, head, head_lock, stale(plan) if plan else [], command)
    review.targets.append(target)
    review.warnings += mark(target.bundle, found, blocking)
    return target
