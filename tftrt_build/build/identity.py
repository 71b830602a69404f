"""Build the identity records of a bundle's versions and render them as bundle files.

Each is a cached stage run by the build's executor on the built artifact (the same machine kind
that converted it: a TF-TRT artifact runs on its GPU); a record that fails leaves nothing in the
cache, like every stage.
"""

from __future__ import annotations

import json
import logging

from tftrt_build.build.artifacts import ArtifactResult, build_task_stage
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
    inputs = {**p.files, "model": artifact.data}
    task = Task("identity", p.params, inputs, None, title)
    return build_task_stage(p.stage, task, {"artifact": p.artifact}, store, executor, ui)


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
