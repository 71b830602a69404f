"""build: a plan becomes built artifacts, a bundle on disk and an updated ``tftrt.lock``.

Owns running the stages the plan says are missing (``artifacts``, through an executor and
the store's staging and commit), making the bundle's content (``bundle``, the one place a
bundle is assembled) and the order of the writes that make them durable (``commit`` below):
cache entries first, then, holding the bundle's lock, the bundle staged, the new lock written
to a temporary file, the bundle swapped in and the lock renamed (``store.commit``). Progress
goes through the ``UI`` protocol (``ui``), which the CLI implements.

May import: ``plan``, ``emit``, ``stages``, ``execute``, ``store``, ``config``, ``errors``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.build.artifacts import ArtifactResult, build_artifact, build_warmup
from tftrt_build.build.bundle import BundleWrite, is_current, stage_bundle
from tftrt_build.build.identity import build_identities
from tftrt_build.build.ui import UI
from tftrt_build.emit import readme
from tftrt_build.errors import ConfigError
from tftrt_build.execute.task import Executor
from tftrt_build.plan.bundle import check_replaceable
from tftrt_build.plan.integrity import WARMUP_DIR, bundle_edits, version_files
from tftrt_build.plan.reasons import lock_edits
from tftrt_build.plan.records import Plan
from tftrt_build.store.cache import Entry, Store
from tftrt_build.store.commit import BundleCommit, bundle_lock
from tftrt_build.store.lock import Lock, holding_lock, read_lock
from tftrt_build.store.locks import holding

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    plan: Plan
    artifacts: list[ArtifactResult]
    bundle_written: bool

    @property
    def bundle_dir(self) -> Path:
        return self.plan.request.bundle_dir


def run_build(plan: Plan, store: Store, executor: Executor, ui: UI) -> BuildResult:
    check_destinations(plan)
    # Every converter that will run checks this machine first: nothing starts that cannot end.
    for art in plan.todo:
        art.converter.preflight(art.context, art.artifact.profile)
    results = [build_artifact(art, store, ui) for art in plan.artifacts]
    warmups = {
        (w.model, w.version): build_warmup(w, store, executor, ui) for w in plan.bundle.warmups
    }
    by_id = {r.plan.id: r.entry for r in results}
    spec = plan.bundle.spec
    layers: dict[tuple[str, int], list[tuple[Entry, str]]] = {}
    for m in spec.models:
        for v in m.versions:
            layers[(m.name, v.version)] = [(by_id[v.artifact], "")]
            if (m.name, v.version) in warmups:
                layers[(m.name, v.version)].append((warmups[(m.name, v.version)], WARMUP_DIR))
    reports = {r.plan.id: r.entry.report for r in results}
    files = {**plan.bundle.files, readme.PATH: readme.render(spec, plan.bundle.key, reports)}
    # What each version must answer, for tftrt-verify and tftrt-bench (build.identity).
    files.update(build_identities(plan.bundle.identities, results, store, executor, ui))
    write = BundleWrite(spec=spec, key=plan.bundle.key, files=files, layers=layers)
    written = commit(plan, write, results, store, ui)
    return BuildResult(plan, results, written)


def check_destinations(plan: Plan) -> None:
    """Refuse, before any work, what the commit could not write."""
    request = plan.request
    if request.lock_path.is_dir():
        raise ConfigError(f"'{request.lock_path}' is a folder; the lock is a file", key="lock")


def commit(
    plan: Plan, write: BundleWrite, results: list[ArtifactResult], store: Store, ui: UI
) -> bool:
    """Write the bundle (where it is not current) and the lock as one unit; True if written."""
    request = plan.request
    bundle_dir, lock_path = request.bundle_dir, request.lock_path
    if _nothing_to_write(plan, write, results, store):
        log.info("bundle %s: up to date; lock unchanged", plan.bundle_id)
        ui.note(f"bundle {plan.bundle_id}: up to date")
        return False
    with holding(
        bundle_lock(store.root, bundle_dir),
        lambda: ui.note(f"bundle {plan.bundle_id}: waiting for another process writing it"),
    ):
        # Judged again under the lock: another process may have written it meanwhile.
        current = is_current(bundle_dir, plan.bundle.key, write, store.stat_cache)
        staged = BundleCommit(store.root, bundle_dir, lock_path)
        try:
            if not current:
                check_replaceable(request)
                expected = {f"{n}/{v}": version_files(ls) for (n, v), ls in write.layers.items()}
                for edit in bundle_edits(bundle_dir, store.stat_cache, expected):
                    ui.note(f"bundle {plan.bundle_id}: replacing hand edit: {edit}")
                    log.warning("bundle %s: replacing hand edit: %s", plan.bundle_id, edit)
                reason = plan.bundle.reason
                if reason == "unchanged":
                    reason = "folder differs"
                log.info("bundle %s: writing (%s)", plan.bundle_id, reason)
                with ui.stage(f"bundle {plan.bundle_id}: {reason}"):
                    stage_bundle(staged.staged, write, bundle_dir)
            else:
                log.info("bundle %s: up to date", plan.bundle_id)
                ui.note(f"bundle {plan.bundle_id}: up to date")
            if not request.records:
                # An experiment: the lock stays as committed (config.schema's `record`).
                if not current:
                    staged.swap()
                log.info("experiment (%s): lock not updated", " ".join(request.experiment))
                return not current
            with holding_lock(lock_path, store.root) as lock:
                before = lock.to_yaml()
                for note in merge(lock, plan, results):
                    ui.note(note)
                    log.warning("%s", note)
                after = lock.to_yaml()
                if after != before or not lock_path.exists():
                    staged.write_lock(after)
                if not current:
                    staged.swap()
                staged.rename_lock()
        finally:
            staged.close()
    log.info("lock %s updated", lock_path)
    return not current


def _nothing_to_write(
    plan: Plan, write: BundleWrite, results: list[ArtifactResult], store: Store
) -> bool:
    """Whether the bundle on disk and the lock are already what this build would write.

    Judged without the inter-process locks, which a no-op build then never takes (nor imports
    ``filelock`` for): both files change only by atomic renames, so what is read here is the
    state before or after another process's commit, never a mix, and a state that needs no
    write is a correct answer as of that moment. Anything short of "both current" goes the
    locked way, which judges again.
    """
    request = plan.request
    if not request.records or not request.lock_path.is_file():
        # An experiment goes the locked way: its bundle on disk may be another process's,
        # swapped in and not yet committed with its lock, and the lock would not tell.
        return False
    if not is_current(request.bundle_dir, plan.bundle.key, write, store.stat_cache):
        return False
    lock = read_lock(request.lock_path, store.root)
    before = lock.to_yaml()
    merge(lock, plan, results)
    return lock.to_yaml() == before


def merge(lock: Lock, plan: Plan, results: list[ArtifactResult]) -> list[str]:
    """Put this build's entries into the lock; say where it corrects a recorded digest."""
    notes = []
    for result in results:
        entry = result.to_lock()
        notes += corrections(lock.artifacts.get(result.plan.id), entry, result.plan.id)
        lock.artifacts[result.plan.id] = entry
    lock.bundles[plan.bundle_id] = plan.bundle.to_lock()
    return notes


def corrections(old: dict[str, Any] | None, new: dict[str, Any], item: str) -> list[str]:
    """What the lock recorded for a stage of the same key that differs from this build."""
    notes = []
    for stage in ("source", "convert"):
        before, after = (old or {}).get(stage) or {}, new.get(stage) or {}
        if before.get("key") != after.get("key"):
            continue  # a changed stage, not a correction
        if edited := lock_edits(before, after):
            notes.append(
                f"tftrt.lock: correcting {item} {stage}: {edited} (the lock was edited, or "
                "this build is not reproducible)"
            )
    return notes
