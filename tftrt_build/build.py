"""Build: run the stages a plan says are missing, emit the bundle, update the lock."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tftrt_build.cache import Entry, Store, tree_record
from tftrt_build.emit.bundle import BundleWrite, is_current, write_bundle
from tftrt_build.emit.readme import PATH as README
from tftrt_build.emit.readme import render as render_readme
from tftrt_build.executors import Executor, Task
from tftrt_build.lock import updating
from tftrt_build.plan import ArtifactPlan, Plan, WarmupPlan, plain
from tftrt_build.schema import LinkMode


class StageUI(Protocol):
    def log(self, line: str) -> None: ...

    def advance(self, n: int) -> None: ...


class UI(Protocol):
    def stage(self, title: str) -> contextlib.AbstractContextManager[StageUI]: ...

    def note(self, text: str) -> None: ...


@dataclass
class ArtifactResult:
    plan: ArtifactPlan
    entry: Entry
    built: bool
    seconds: float

    def to_lock(self) -> dict[str, Any]:
        entry = self.plan.to_lock()
        # plain() sorts keys: records read back from a manifest and fresh ones look the same.
        entry["source"]["output"] = plain(self.entry.manifest.get("source_output"))
        entry["convert"]["output"] = plain(tree_record(self.entry.tree))
        report = self.entry.report
        if report:
            entry["convert"]["report"] = plain(report)
        return entry


@dataclass
class BuildResult:
    plan: Plan
    artifacts: list[ArtifactResult]
    bundle_written: bool

    @property
    def bundle_dir(self) -> Path:
        return self.plan.request.bundle_dir


def build_artifact(art: ArtifactPlan, store: Store, ui: UI) -> ArtifactResult:
    source, convert = art.stages
    started = time.monotonic()
    if convert.entry is not None:
        ui.note(f"{art.id} convert: cached {convert.key[:12]} (source not needed)")
        return ArtifactResult(art, convert.entry, built=False, seconds=0.0)
    src_entry = source.entry
    if src_entry is not None:
        ui.note(f"{art.id} source: cached {source.key[:12]}")
    else:
        with ui.stage(f"{art.id} source: {source.reason}") as s, store.staging(source.key) as tmp:
            report = art.source.obtain(tmp / "data", s.log, s.advance)
            src_entry = store.commit(
                source.key,
                tmp,
                {
                    "stage": "source",
                    "artifact": art.id,
                    "inputs": source.inputs,
                    "toolchain": source.toolchain,
                    "report": report,
                },
                s.advance,
            )
    profile, model = art.artifact.profile, art.artifact.model
    with ui.stage(f"{art.id} convert: {convert.reason}") as s, store.staging(convert.key) as tmp:
        report = art.converter.convert(
            src_entry.data, tmp / "data", profile, model, art.context, s.log
        )
        # A conversion that must not ship (no engine, wrong outputs) never reaches the cache.
        art.converter.accept(report, profile)
        entry = store.commit(
            convert.key,
            tmp,
            {
                "stage": "convert",
                "artifact": art.id,
                "inputs": convert.inputs,
                "toolchain": convert.toolchain,
                "report": report,
                "source_output": tree_record(src_entry.tree),
                # What the served model looks like, for verify and for the bundle README.
                "signature": src_entry.report,
            },
            s.advance,
        )
    return ArtifactResult(art, entry, built=True, seconds=time.monotonic() - started)


def build_warmup(w: WarmupPlan, store: Store, executor: Executor, ui: UI) -> Entry:
    if w.stage.entry is not None:
        return w.stage.entry
    title = f"{w.model}/{w.version} warm-up records"
    with ui.stage(f"{title}: {w.stage.reason}") as s, store.staging(w.stage.key) as tmp:
        result = executor.run(Task("warmup", w.params, w.files, tmp / "data", title), s.log)
        return store.commit(
            w.stage.key,
            tmp,
            {
                "stage": "warmup",
                "inputs": w.stage.inputs,
                "toolchain": w.stage.toolchain,
                "report": result,
            },
            s.advance,
        )


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
                layers[(m.name, v.version)].append((warmups[(m.name, v.version)], "assets.extra"))
    reports = {r.plan.id: r.entry.report for r in results}
    files = {**plan.bundle.files, README: render_readme(spec, plan.bundle.key, reports)}
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
        with ui.stage(f"bundle {plan.bundle_id}: {reason}"):
            write_bundle(bundle_dir, write)
        written = True
    else:
        ui.note(f"bundle {plan.bundle_id}: up to date")
    with updating(plan.request.lock_path) as lock:
        for result in results:
            lock.artifacts[result.plan.id] = result.to_lock()
        lock.bundles[plan.bundle_id] = plan.bundle.to_lock()
    return BuildResult(plan, results, written)
