"""Plan the bundle: what it serves (with batching and warm-up resolved), its files and its key."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

from tftrt_build.config.paths import find_file, lock_key, relative
from tftrt_build.config.profiles import engine_batch_sizes, precision
from tftrt_build.config.request import BuildRequest, ServedVersion
from tftrt_build.config.schema import ConverterKind, TargetConf
from tftrt_build.emit import manifest, render_all
from tftrt_build.emit.manifest import file_digests
from tftrt_build.emit.spec import Batching, BundleModel, BundleSpec, BundleVersion
from tftrt_build.errors import ConfigError
from tftrt_build.execute.task import Executor
from tftrt_build.plan.batching import resolve_batching
from tftrt_build.plan.identity import plan_identities
from tftrt_build.plan.integrity import WARMUP_DIR, bundle_edits, version_files
from tftrt_build.plan.keys import KEY_SALT, stage_key
from tftrt_build.plan.reasons import bundle_reason
from tftrt_build.plan.records import BundlePlan, StagePlan, WarmupPlan
from tftrt_build.store.cache import Entry, Store
from tftrt_build.store.digest import Progress, digest_json, hash_file
from tftrt_build.store.lock import Lock

# Bump when the warm-up stage writes something different for the same inputs.
WARMUP_FORMAT = 1


def bundle_spec(request: BuildRequest, keys: dict[str, str]) -> BundleSpec:
    """What the bundle serves, with batching resolved against the artifacts' engines."""

    def version(v: ServedVersion) -> BundleVersion:
        profile = v.artifact.profile
        tftrt = profile.converter is ConverterKind.tftrt
        return BundleVersion(
            version=v.version,
            artifact=v.artifact.id,
            profile=profile.name,
            key=keys[v.artifact.id],
            converter=profile.converter.value,
            precision=precision(profile) if tftrt else "FP32 (as exported)",
            max_batch_size=profile.max_batch_size,
            engine_batch_sizes=tuple(engine_batch_sizes(profile)) if tftrt else (),
        )

    served = {
        m.name: [version(v) for v in sorted(m.versions, key=lambda v: v.version)]
        for m in request.served
    }
    target = request.target
    batching = resolve_batching(
        target, [v for vs in served.values() for v in vs], request.target_option.file
    )
    models = []
    for m in request.served:
        model = m.versions[0].artifact.model
        versions = tuple(
            dataclasses.replace(v, warmup_batch_sizes=warmup_sizes(target, v, batching))
            for v in served[m.name]
        )
        models.append(
            BundleModel(m.name, model.signature, versions, tuple(sorted(m.labels.items())))
        )
    command = f"tftrt-build target={request.target_option.name}"
    if not target.models:
        (only,) = request.artifacts
        command += f" model={only.model_option.name} profile={only.profile_option.name}"
    if request.experiment:
        # The command line's values are part of what this bundle is.
        command += " " + " ".join(shlex.quote(o) for o in request.experiment)
        command += " record=true" if request.record else ""
    return BundleSpec(
        target,
        request.target_option.name,
        request.bundle_dir.name,
        tuple(models),
        batching,
        command,
    )


def warmup_sizes(
    target: TargetConf, version: BundleVersion, batching: Batching | None
) -> tuple[int, ...]:
    """Batch sizes the warm-up requests of a version use: what will be served."""
    if not target.warmup.enabled:
        return ()
    if target.warmup.batch_sizes:
        return tuple(target.warmup.batch_sizes)
    if batching is not None and batching.allowed_batch_sizes:
        return batching.allowed_batch_sizes
    return version.engine_batch_sizes or (1,)


def plan_warmups(
    spec: BundleSpec,
    request: BuildRequest,
    store: Store,
    executor: Executor,
    progress: Progress | None,
) -> list[WarmupPlan]:
    """The warm-up stage of every served version that carries warm-up records."""
    by_name = {m.name: m.versions[0].artifact for m in request.served}
    plans = []
    found = executor.toolchain() if spec.warmup else {}
    toolchain: dict[str, Any] = {
        **(executor.identity() if spec.warmup else {}),
        **{k: found[k] for k in ("tensorflow", "tensorflow-serving-api") if k in found},
    }
    for model in spec.models:
        artifact = by_name[model.name]
        m = artifact.model
        for v in model.versions:
            if not v.warmup_batch_sizes:
                continue
            samples = m.samples.to_params()
            key_samples = dict(samples)
            files: dict[str, Path] = {}
            if m.samples.path:
                path = find_file(
                    m.samples.path,
                    request.project,
                    "model.samples.path",
                    artifact.model_option.file,
                )
                files["samples"] = path
                key_samples["path"] = hash_file(path, store.stat_cache)
            params = {
                "model": model.name,
                "signature": model.signature,
                "inputs": m.input_specs(),
                "batch_sizes": list(v.warmup_batch_sizes),
                "requests": request.target.warmup.requests,
            }
            key_inputs = {**params, "samples": key_samples, "format": WARMUP_FORMAT}
            key = stage_key("warmup", key_inputs, toolchain)
            lookup = store.lookup(key, progress)
            stage = StagePlan(
                "warmup", key_inputs, toolchain, key, lookup, "cached" if lookup.entry else "new"
            )
            plans.append(
                WarmupPlan(model.name, v.version, stage, {**params, "samples": samples}, files)
            )
    return plans


def bundle_id(request: BuildRequest) -> str:
    return lock_key(request.bundle_dir, request.project)


def plan_bundle(
    request: BuildRequest,
    keys: dict[str, str],
    store: Store,
    executor: Executor,
    lock: Lock,
    progress: Progress | None,
    entries: dict[str, Entry | None] | None = None,
) -> BundlePlan:
    """The bundle's spec, rendered files, warm-up stages and key, and why it would be written.

    ``entries`` are the cached artifacts by id (None where not cached), which let the hand
    edits of a model file be named.
    """
    check_bundle_dir(request)
    spec = bundle_spec(request, keys)
    files = render_all(spec)
    warmups = plan_warmups(spec, request, store, executor, progress)
    identities = plan_identities(spec, request, store, executor, progress)
    key = digest_json(
        {
            "salt": KEY_SALT,
            "files": file_digests(files),
            "versions": [[m.name, v.version, v.key] for m in spec.models for v in m.versions],
            "warmups": [[w.model, w.version, w.stage.key] for w in warmups],
            "identities": [[i.model, i.version, i.stage.key] for i in identities],
        }
    )
    reason = bundle_reason(lock.bundles.get(bundle_id(request)), key, file_digests(files))
    expected = {}
    for m in spec.models:
        for v in m.versions:
            entry = (entries or {}).get(v.artifact)
            warm = next((w for w in warmups if (w.model, w.version) == (m.name, v.version)), None)
            if entry is None or (warm is not None and warm.stage.entry is None):
                continue
            layers = [(entry, "")]
            if warm is not None and warm.stage.entry is not None:
                layers.append((warm.stage.entry, WARMUP_DIR))
            expected[f"{m.name}/{v.version}"] = version_files(layers)
    edits = bundle_edits(request.bundle_dir, store.stat_cache, expected)
    if edits and reason == "unchanged":
        more = f" (+{len(edits) - 3} more)" if len(edits) > 3 else ""
        reason = "hand edits: " + "; ".join(str(e) for e in edits[:3]) + more
    return BundlePlan(
        spec, files, key, reason=reason, warmups=warmups, edits=edits, identities=identities
    )


def check_bundle_dir(request: BuildRequest) -> None:
    """The bundle's folder must be a folder (or not exist yet), under folders."""
    folder = request.bundle_dir
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                what = "is a file" if path == folder else f"is below the file {path}"
                raise ConfigError(
                    f"'{relative(folder, request.project)}' {what}; a bundle needs a folder",
                    key="target.bundle_dir",
                    file=request.target_option.file,
                )
            break
    check_replaceable(request)


def check_replaceable(request: BuildRequest) -> None:
    """Refuse to replace a folder that tftrt-build did not write (one without a bundle.json).

    Checked when the build is planned, before any work, and again under the bundle's lock
    before it is replaced: another process may have put a folder there meanwhile.
    """
    folder = request.bundle_dir
    if folder.is_dir() and not (folder / manifest.PATH).is_file() and any(folder.iterdir()):
        raise ConfigError(
            f"'{relative(folder, request.project)}' exists and is not a tftrt-build bundle; "
            "refusing to replace it",
            key="target.bundle_dir",
            file=request.target_option.file,
            hint="move it away, or set target.bundle_dir to another folder",
        )
