"""Plan the identity stage of every served version: the built artifact run on sample inputs.

Its record (the artifact's own outputs, signature and SavedModel fingerprint) goes into the
bundle beside the version, so ``tftrt-verify`` and ``tftrt-bench`` can establish that a server
answers with this artifact and not with another one. The stage is keyed by the artifact's
convert key, the sample inputs and what runs it, and cached like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tftrt_build.config.paths import find_file
from tftrt_build.config.request import ArtifactSpec, BuildRequest
from tftrt_build.emit.spec import BundleSpec
from tftrt_build.execute.task import Executor
from tftrt_build.plan.keys import stage_key
from tftrt_build.plan.records import IdentityPlan, StagePlan
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import Progress, hash_file

# Bump when the identity stage writes something different for the same inputs.
IDENTITY_FORMAT = 1


def identity_rows(artifact: ArtifactSpec) -> int:
    """Rows of the sample batch: the model's sample count, within what the version serves."""
    return min(artifact.model.samples.count, artifact.profile.max_batch_size)


def sample_inputs(
    artifact: ArtifactSpec, request: BuildRequest, store: Store
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Path]]:
    """The samples config a task carries, the form its key takes, and the file it reads."""
    samples = artifact.model.samples.to_params()
    key_samples = dict(samples)
    files: dict[str, Path] = {}
    if artifact.model.samples.path:
        path = find_file(
            artifact.model.samples.path,
            request.project,
            "model.samples.path",
            artifact.model_option.file,
        )
        files["samples"] = path
        key_samples["path"] = hash_file(path, store.stat_cache)
    return samples, key_samples, files


def plan_identities(
    spec: BundleSpec,
    request: BuildRequest,
    store: Store,
    executor: Executor,
    progress: Progress | None,
) -> list[IdentityPlan]:
    """One identity stage per served version (versions of one artifact share its key)."""
    by_id = {a.id: a for a in request.artifacts}
    found = executor.toolchain()
    toolchain: dict[str, Any] = {
        **executor.identity(),
        **{k: found[k] for k in ("tensorflow", "keras") if k in found},
    }
    plans = []
    for model in spec.models:
        for v in model.versions:
            artifact = by_id[v.artifact]
            m = artifact.model
            samples, key_samples, files = sample_inputs(artifact, request, store)
            params = {
                "signature": m.signature,
                "tags": list(m.tags),
                "inputs": m.input_specs(),
                "rows": identity_rows(artifact),
            }
            key_inputs = {
                **params,
                "artifact": v.key,
                "samples": key_samples,
                "format": IDENTITY_FORMAT,
            }
            key = stage_key("identity", key_inputs, toolchain)
            lookup = store.lookup(key, progress)
            stage = StagePlan(
                "identity", key_inputs, toolchain, key, lookup, "cached" if lookup.entry else "new"
            )
            plans.append(
                IdentityPlan(
                    model.name,
                    v.version,
                    v.artifact,
                    stage,
                    {**params, "samples": samples},
                    files,
                )
            )
    return plans
