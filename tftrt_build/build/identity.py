"""Build the identity records of a bundle's versions and render them as bundle files.

Each is a cached stage run by the build's executor on the built artifact (the same machine kind
that converted it: a TF-TRT artifact runs on its GPU); a record that fails leaves nothing in the
cache, like every stage.
"""

from __future__ import annotations

import json
import logging

from tftrt_build.build.artifacts import ArtifactResult, waiting
from tftrt_build.build.ui import UI
from tftrt_build.emit import identity
from tftrt_build.execute.task import IDENTITY_FILE, Executor, Task
from tftrt_build.plan.records import IdentityPlan
from tftrt_build.store.cache import Entry, Store

log = logging.getLogger(__name__)


def build_identity(
    p: IdentityPlan, artifact: Entry, store: Store, executor: Executor, ui: UI
) -> Entry:
    if p.stage.entry is not None:
        log.info("%s/%s identity: cache hit %s", p.model, p.version, p.stage.key)
        return p.stage.entry
    title = f"{p.model}/{p.version} identity record"
    # Like every stage: one process runs a key, others that need it meanwhile wait and reuse it
    # (without this, each of N builds of one model ran TensorFlow for the same record).
    with store.claim(p.stage.key, waiting(ui, title, "", p.stage.key)) as found:
        if found.entry is not None:
            ui.note(f"{title}: built meanwhile by another process {p.stage.key[:12]}")
            return found.entry
        log.info("%s: building %s", title, p.stage.key)
        with ui.stage(f"{title}: {p.stage.reason}") as s, store.staging(p.stage.key) as tmp:
            inputs = {**p.files, "model": artifact.data}
            result = executor.run(Task("identity", p.params, inputs, tmp / "data", title), s.log)
            return store.commit(
                p.stage.key,
                tmp,
                {
                    "stage": "identity",
                    "artifact": p.artifact,
                    "inputs": p.stage.inputs,
                    "toolchain": p.stage.toolchain,
                    "report": result,
                },
                s.advance,
            )


def build_identities(
    plans: list[IdentityPlan],
    artifacts: list[ArtifactResult],
    store: Store,
    executor: Executor,
    ui: UI,
) -> dict[str, str]:
    """The bundle files ``verify/<model>/<version>.json``, building what the cache lacks."""
    by_id = {a.plan.id: a for a in artifacts}
    built: dict[str, Entry] = {}
    files = {}
    for p in plans:
        art = by_id[p.artifact]
        if p.stage.key not in built:
            built[p.stage.key] = build_identity(p, art.entry, store, executor, ui)
        record = json.loads((built[p.stage.key].data / IDENTITY_FILE).read_text())
        files[identity.path(p.model, p.version)] = identity.render(
            record,
            {
                "model": p.model,
                "version": p.version,
                "artifact": p.artifact,
                "profile": art.plan.artifact.profile.name,
                "converter": art.plan.artifact.profile.converter.value,
                "key": art.plan.key,
                "digest": art.entry.tree.digest,
            },
        )
    return files
