"""Build the stages a plan says are missing: an artifact's source and conversion, warm-up records.

Each stage is made in a staging folder of the store and committed only once it is complete and
judged; a stage that fails or is refused leaves nothing in the cache.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tftrt_build.build.ui import UI
from tftrt_build.execute.task import Executor, Task
from tftrt_build.plan.keys import plain
from tftrt_build.plan.records import ArtifactPlan, StagePlan, WarmupPlan
from tftrt_build.store.cache import Entry, Store, tree_record

log = logging.getLogger(__name__)


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


def build_artifact(art: ArtifactPlan, store: Store, ui: UI) -> ArtifactResult:
    source, convert = art.source, art.convert
    started = time.monotonic()
    if convert.entry is not None:
        where = "pulled from cache.remote" if convert.entry.pulled else "cached"
        ui.note(f"{art.id} convert: {where} {convert.key[:12]} (source not needed)")
        log.info("%s convert: cache hit %s", art.id, convert.key)
        return ArtifactResult(art, convert.entry, built=False, seconds=0.0)
    # One process builds a key; others that need it at the same time wait and reuse it.
    with store.claim(convert.key, waiting(ui, art.id, "convert", convert.key)) as found:
        if found.entry is not None:
            ui.note(f"{art.id} convert: built meanwhile by another process {convert.key[:12]}")
            log.info("%s convert: committed by another process %s", art.id, convert.key)
            return ArtifactResult(art, found.entry, built=False, seconds=0.0)
        src_entry = source.entry or _build_source(art, store, ui)
        entry = _build_convert(art, src_entry, store, ui)
    seconds = time.monotonic() - started
    log.info("%s: built in %.1f s", art.id, seconds)
    return ArtifactResult(art, entry, built=True, seconds=seconds)


def waiting(ui: UI, what: str, stage: str, key: str) -> Callable[[], None]:
    """What a stage says, once, when another process holds its key: ``Store.claim``'s hook."""
    label = f"{what} {stage}".strip()

    def note() -> None:
        ui.note(f"{label}: waiting for another process that builds {key[:12]}")

    return note


def _build_source(art: ArtifactPlan, store: Store, ui: UI) -> Entry:
    source = art.source
    with store.claim(source.key, waiting(ui, art.id, "source", source.key)) as found:
        if found.entry is not None:
            ui.note(f"{art.id} source: built meanwhile by another process {source.key[:12]}")
            return found.entry
        log.info("%s source: building %s (%s)", art.id, source.key, source.reason)
        with ui.stage(f"{art.id} source: {source.reason}") as s, store.staging(source.key) as tmp:
            report = art.origin.obtain(tmp / "data", s.log, s.advance)
            return store.commit(
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


def _build_convert(art: ArtifactPlan, src_entry: Entry, store: Store, ui: UI) -> Entry:
    convert = art.convert
    if art.source.entry is not None:
        ui.note(f"{art.id} source: cached {art.source.key[:12]}")
        log.info("%s source: cache hit %s", art.id, art.source.key)
    profile, model = art.artifact.profile, art.artifact.model
    log.info("%s convert: building %s (%s)", art.id, convert.key, convert.reason)
    with ui.stage(f"{art.id} convert: {convert.reason}") as s, store.staging(convert.key) as tmp:
        report = art.converter.convert(
            src_entry.data, tmp / "data", profile, model, art.context, s.log
        )
        # A conversion that must not ship (no engine, wrong outputs) never reaches the cache.
        art.converter.accept(report, profile)
        return store.commit(
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


def build_warmup(w: WarmupPlan, store: Store, executor: Executor, ui: UI) -> Entry:
    if w.stage.entry is not None:
        log.info("%s/%s warm-up: cache hit %s", w.model, w.version, w.stage.key)
        return w.stage.entry
    title = f"{w.model}/{w.version} warm-up records"
    task = Task("warmup", w.params, w.files, None, title)
    return build_task_stage(w.stage, task, {}, store, executor, ui)


def build_task_stage(
    stage: StagePlan,
    task: Task,
    record: dict[str, Any],
    store: Store,
    executor: Executor,
    ui: UI,
) -> Entry:
    """A stage that is one executor task (warm-up or identity records): one process runs its
    key while others that need it wait and reuse it; the task writes into a staging folder,
    committed with ``record`` beside the stage's inputs, toolchain and the task's report.
    ``task`` has no output folder yet: it gets the staging folder."""
    with store.claim(stage.key, waiting(ui, task.title, "", stage.key)) as found:
        if found.entry is not None:
            ui.note(f"{task.title}: built meanwhile by another process {stage.key[:12]}")
            return found.entry
        log.info("%s: building %s", task.title, stage.key)
        with ui.stage(f"{task.title}: {stage.reason}") as s, store.staging(stage.key) as tmp:
            result = executor.run(dataclasses.replace(task, output=tmp / "data"), s.log)
            return store.commit(
                stage.key,
                tmp,
                {
                    "stage": task.op,
                    **record,
                    "inputs": stage.inputs,
                    "toolchain": stage.toolchain,
                    "report": result,
                },
                s.advance,
            )
