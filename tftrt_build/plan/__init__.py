"""plan: a checked request becomes a ``Plan``: every stage's key, what the cache holds, and why.

Owns cache keys (``keys``), the typed plan records (``records``), planning an artifact's
source and convert stages (``artifacts``), the bundle spec with batching and warm-up resolved
(``bundle``, ``batching``), which serving images can load TF-TRT models (``serving``) and the
reasons a stage would run or the lock is stale (``reasons``). Checks that need the plan's
findings (a serving image against the converter's TensorRT, batching against engines) refuse
here, before any work; nothing is built or written.

May import: ``config``, ``store``, ``execute``, ``stages``, ``emit``, ``errors``.
"""

from __future__ import annotations

from tftrt_build.config.request import BuildRequest, Option
from tftrt_build.execute.task import Executor
from tftrt_build.plan.artifacts import plan_artifact
from tftrt_build.plan.bundle import bundle_id, plan_bundle
from tftrt_build.plan.records import (
    ArtifactPlan,
    BundlePlan,
    IdentityPlan,
    Plan,
    StagePlan,
    WarmupPlan,
)
from tftrt_build.plan.serving import check_serving
from tftrt_build.stages.source import Source
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import Progress
from tftrt_build.store.lock import Lock

__all__ = [
    "ArtifactPlan",
    "BundlePlan",
    "IdentityPlan",
    "Plan",
    "StagePlan",
    "WarmupPlan",
    "make_plan",
]


def make_plan(
    request: BuildRequest,
    store: Store,
    executor: Executor,
    lock: Lock,
    building: bool = False,
    progress: Progress | None = None,
) -> Plan:
    """Plan every artifact the request serves, then its bundle."""
    origins: dict[Option, Source] = {}
    artifacts = [
        plan_artifact(a, request, store, executor, lock, building, progress, origins)
        for a in request.artifacts
    ]
    check_serving(request, artifacts)
    bundle = plan_bundle(
        request,
        {a.id: a.key for a in artifacts},
        store,
        executor,
        lock,
        progress,
        {a.id: a.convert.entry for a in artifacts},
    )
    return Plan(request, artifacts, bundle, lock, bundle_id(request))
