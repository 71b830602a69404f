"""build: a plan becomes built artifacts, a bundle on disk and an updated ``tftrt.lock``.

Owns running the stages the plan says are missing (``artifacts``, through an executor and
the store's staging and commit), writing the bundle (``bundle``, the one place a bundle is
written) and the order of those writes. Progress goes through the ``UI`` protocol (``ui``),
which the CLI implements.

May import: ``plan``, ``emit``, ``stages``, ``execute``, ``store``, ``config``, ``errors``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tftrt_build.build.artifacts import ArtifactResult, build_artifact, build_warmup
from tftrt_build.build.bundle import BundleWrite, is_current, write_bundle
from tftrt_build.build.identity import build_identities
from tftrt_build.build.ui import UI
from tftrt_build.config.schema import LinkMode
from tftrt_build.emit import readme
from tftrt_build.execute.task import Executor
from tftrt_build.plan.records import Plan
from tftrt_build.store.cache import Entry, Store
from tftrt_build.store.lock import updating

log = logging.getLogger(__name__)
# Where a version's warm-up records go inside its folder.
WARMUP_DIR = "assets.extra"


@dataclass
class BuildResult:
    plan: Plan
    artifacts: list[ArtifactResult]
    bundle_written: bool

    @property
    def bundle_dir(self) -> Path:
        return self.plan.request.bundle_dir


def run_build(plan: Plan, store: Store, executor: Executor, ui: UI) -> BuildResult:
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
    write = BundleWrite(
        spec=spec,
        key=plan.bundle.key,
        files=files,
        layers=layers,
        hardlink=plan.request.target.link is LinkMode.hardlink,
    )
    bundle_dir = plan.request.bundle_dir
    written = False
    if not is_current(bundle_dir, plan.bundle.key, write, store.stat_cache):
        reason = plan.bundle.reason if plan.bundle.reason != "unchanged" else "folder differs"
        log.info("bundle %s: writing (%s)", plan.bundle_id, reason)
        with ui.stage(f"bundle {plan.bundle_id}: {reason}"):
            write_bundle(bundle_dir, write)
        written = True
    else:
        log.info("bundle %s: up to date", plan.bundle_id)
        ui.note(f"bundle {plan.bundle_id}: up to date")
    with updating(plan.request.lock_path) as lock:
        for result in results:
            lock.artifacts[result.plan.id] = result.to_lock()
        lock.bundles[plan.bundle_id] = plan.bundle.to_lock()
    log.info("lock %s updated", plan.request.lock_path)
    return BuildResult(plan, results, written)
