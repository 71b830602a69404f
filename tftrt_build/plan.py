"""Plan: the stages a request needs, their cache keys, and why each one would run.

Keys are input-addressed: a stage's key is a hash of canonical JSON of its inputs (content
digests and normalised parameters), its toolchain and a salt, and the convert key takes the
source key as an input. So the whole plan, and ``mode=check``, need no building and no
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tftrt_build.cache import Entry, Lookup, Store
from tftrt_build.capabilities import serving_image, serving_problem
from tftrt_build.converters import ConvertContext, Converter, converter_for
from tftrt_build.converters.tftrt import engine_batch_sizes, gpu_specific, precision
from tftrt_build.digest import Progress, digest_json, hash_file
from tftrt_build.emit import BundleModel, BundleSpec, BundleVersion, render_all
from tftrt_build.emit.batching import resolve_batching, warmup_sizes
from tftrt_build.emit.bundle import file_digests
from tftrt_build.errors import ConfigError
from tftrt_build.executors import Executor
from tftrt_build.lock import Lock
from tftrt_build.resolve import ArtifactSpec, BuildRequest, ServedVersion
from tftrt_build.schema import ConverterKind, ModelConf, SampleKind
from tftrt_build.sources import Source, check_signature, find_file

# Bump when the recipe of any key changes: every key changes with it.
KEY_SALT = "tftrt-build/key/1"


def stage_key(stage: str, inputs: dict[str, Any], toolchain: dict[str, Any]) -> str:
    return digest_json({"salt": KEY_SALT, "stage": stage, "inputs": inputs, "toolchain": toolchain})


def plain(value: Any) -> Any:
    """Dataclasses and enums as JSON/YAML-friendly data, dict keys sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class StagePlan:
    name: str  # "source" or "convert"
    inputs: dict[str, Any]
    toolchain: dict[str, Any]
    key: str
    lookup: Lookup
    reason: str

    @property
    def hit(self) -> bool:
        return self.lookup.entry is not None

    @property
    def entry(self) -> Entry | None:
        return self.lookup.entry

    def to_lock(self) -> dict[str, Any]:
        return {"key": self.key, "inputs": plain(self.inputs), "toolchain": plain(self.toolchain)}


@dataclass
class ArtifactPlan:
    artifact: ArtifactSpec
    source: Source
    converter: Converter
    context: ConvertContext
    stages: tuple[StagePlan, StagePlan]
    details: dict[str, Any]

    @property
    def id(self) -> str:
        return self.artifact.id

    @property
    def key(self) -> str:
        return self.stages[1].key

    def config(self) -> dict[str, Any]:
        return {"model": plain(self.artifact.model), "profile": plain(self.artifact.profile)}

    def to_lock(self) -> dict[str, Any]:
        """The lock entry, without output digests (those come from the built entries)."""
        return {
            "model": self.artifact.model_option.name,
            "profile": self.artifact.profile_option.name,
            "config": self.config(),
            **{stage.name: stage.to_lock() for stage in self.stages},
        }


@dataclass
class BundlePlan:
    spec: BundleSpec
    files: dict[str, str]
    key: str
    reason: str = ""
    warmups: list[WarmupPlan] = field(default_factory=list)

    def to_lock(self) -> dict[str, Any]:
        warm = {(w.model, w.version): w.stage.key for w in self.warmups}
        return {
            "target": self.spec.target_option,
            "key": self.key,
            "files": file_digests(self.files),
            "models": [
                {
                    "name": m.name,
                    "labels": dict(m.labels),
                    "versions": [
                        {
                            "version": v.version,
                            "artifact": v.artifact,
                            "key": v.key,
                            **(
                                {"warmup": warm[(m.name, v.version)]}
                                if (m.name, v.version) in warm
                                else {}
                            ),
                        }
                        for v in m.versions
                    ],
                }
                for m in self.spec.models
            ],
        }


@dataclass
class Plan:
    request: BuildRequest
    artifacts: list[ArtifactPlan]
    bundle: BundlePlan
    lock: Lock
    bundle_id: str
    notes: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[ArtifactPlan]:
        return [a for a in self.artifacts if not all(s.hit for s in a.stages)]


def changes(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ, with old -> new values: 'args.classes: 10 -> 12'."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for k in sorted(set(before) | set(after), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in before:
                found.append(f"{path}: added")
            elif k not in after:
                found.append(f"{path}: removed")
            else:
                found.extend(changes(before[k], after[k], path))
        return found
    if before == after:
        return []
    return [f"{prefix}: {_short(before)} -> {_short(after)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:12] + "…"


def why(stage: StagePlan, locked: dict[str, Any] | None) -> str:
    if stage.lookup.entry is not None:
        return "cached"
    if stage.lookup.problem.startswith("damaged"):
        return stage.lookup.problem
    if locked is None:
        return "new: not in tftrt.lock"
    if locked.get("key") == stage.key:
        return "not in the cache (the lock is up to date)"
    diff = changes(
        {"inputs": locked.get("inputs"), "toolchain": locked.get("toolchain")},
        {"inputs": stage.inputs, "toolchain": stage.toolchain},
    )
    diff = [d.removeprefix("inputs.") for d in diff]
    if not diff:
        return "key recipe changed"
    more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
    return "changed: " + "; ".join(diff[:3]) + more


def plan_artifact(
    artifact: ArtifactSpec,
    request: BuildRequest,
    store: Store,
    executor: Executor,
    lock: Lock,
    building: bool,
    progress: Progress | None = None,
) -> ArtifactPlan:
    model, profile = artifact.model, artifact.profile
    source = Source(
        model,
        artifact.model_option.file,
        request.project,
        store.stat_cache,
        executor,
        request.cache_dir / "downloads",
        fetch_unpinned=building,
    )
    locked = lock.artifacts.get(artifact.id) or {}
    src_inputs = source.inputs(progress)
    src_toolchain = source.toolchain()
    src_key = stage_key("source", src_inputs, src_toolchain)
    src_lookup = store.lookup(src_key, progress)
    if src_lookup.entry is not None:
        # A cached source was checked against an earlier config; check it against this one.
        check_signature(model, src_lookup.entry.report, artifact.model_option.file)
    src = StagePlan("source", src_inputs, src_toolchain, src_key, src_lookup, "")
    src.reason = why(src, locked.get("source"))

    def hasher(path: str, key: str) -> str:
        file = (
            artifact.profile_option.file
            if key.startswith("profile")
            else artifact.model_option.file
        )
        return hash_file(find_file(path, request.project, key, file), store.stat_cache)

    converter = converter_for(profile)
    context = ConvertContext(
        executor,
        request.project,
        hasher,
        engine_architecture(artifact, request, executor, locked.get("convert"), building),
    )
    conv_inputs = {
        "converter": converter.kind.value,
        "format": converter.format,
        "source": src_key,
        "params": converter.key_inputs(profile, model, context),
    }
    conv_toolchain = converter.toolchain(context)
    conv_key = stage_key("convert", conv_inputs, conv_toolchain)
    conv_lookup = store.lookup(conv_key, progress)
    if conv_lookup.entry is not None:
        # A cached conversion is judged again: the profile's tolerances may have changed.
        converter.accept(conv_lookup.entry.report, profile)
    conv = StagePlan("convert", conv_inputs, conv_toolchain, conv_key, conv_lookup, "")
    conv.reason = why(conv, locked.get("convert"))
    return ArtifactPlan(
        artifact,
        source,
        converter,
        context,
        (src, conv),
        converter.describe(profile, model, context),
    )


def engine_architecture(
    artifact: ArtifactSpec,
    request: BuildRequest,
    executor: Executor,
    locked_convert: dict[str, Any] | None,
    building: bool,
) -> str | None:
    """The compute capability pre-built engines are for, or None when there are none.

    The profile's pin, else the serving target's declaration; else, when building, the GPU that
    converts, and when only planning or checking, what the lock recorded for the artifact.
    """
    profile = artifact.profile
    if profile.converter is not ConverterKind.tftrt or not gpu_specific(profile):
        return None
    pinned = profile.compute_capability
    declared = request.target.gpus.compute_capability
    if pinned and declared and pinned != declared:
        raise ConfigError(
            f"profile '{profile.name}' builds engines for compute capability {pinned}, but "
            f"target '{request.target.name}' declares GPUs of {declared}; engines only load on "
            "the architecture they were built for",
            key="profile.compute_capability",
            file=artifact.profile_option.file,
        )
    if pinned or declared:
        return pinned or declared
    if building:
        gpus = executor.probe().gpus
        return gpus[0].compute_capability if gpus else None
    recorded = ((locked_convert or {}).get("toolchain") or {}).get("compute_capability")
    return str(recorded) if recorded else None


def check_serving(request: BuildRequest, artifacts: list[ArtifactPlan]) -> None:
    """A TF-TRT artifact must go to an image that can load it: refuse it at plan time."""
    image = serving_image(request.target.image, request.target.image_tensorrt)
    for art in artifacts:
        if art.artifact.profile.converter is not ConverterKind.tftrt:
            continue
        problem = serving_problem(image, art.stages[1].toolchain.get("tensorrt"))
        if problem:
            raise ConfigError(
                f"cannot serve {art.id}: {problem}",
                key="target.image",
                file=request.target_option.file,
            )


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
        if any(v.warmup_batch_sizes for v in versions):
            _check_warmup_samples(model, request, m.versions[0].artifact.model_option.file)
        models.append(
            BundleModel(m.name, model.signature, versions, tuple(sorted(m.labels.items())))
        )
    command = f"tftrt-build target={request.target_option.name}"
    if not target.models:
        (only,) = request.artifacts
        command += f" model={only.model_option.name} profile={only.profile_option.name}"
    return BundleSpec(
        target,
        request.target_option.name,
        request.bundle_dir.name,
        tuple(models),
        batching,
        command,
    )


def _check_warmup_samples(model: ModelConf, request: BuildRequest, file: str | None) -> None:
    for i, spec in enumerate(model.inputs):
        if spec.dtype == "string" and model.samples.kind is not SampleKind.file:
            raise ConfigError(
                f"input '{spec.name}' is a string, so warm-up requests need sample inputs from "
                "a file (samples.kind=file), or target.warmup.enabled=false",
                key=f"model.inputs[{i}].dtype",
                file=file,
            )


@dataclass
class WarmupPlan:
    """Warm-up records of one served version: a cached stage of their own."""

    model: str
    version: int
    stage: StagePlan
    params: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def plan_warmups(
    spec: BundleSpec,
    request: BuildRequest,
    store: Store,
    executor: Executor,
    progress: Progress | None,
) -> list[WarmupPlan]:
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
            samples = plain(m.samples)
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
            inputs = [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in m.inputs]
            params = {
                "model": model.name,
                "signature": model.signature,
                "inputs": inputs,
                "batch_sizes": list(v.warmup_batch_sizes),
                "requests": request.target.warmup.requests,
            }
            key_inputs = {**params, "samples": key_samples, "format": 1}
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
    return relative(request.bundle_dir, request.project)


def make_plan(
    request: BuildRequest,
    store: Store,
    executor: Executor,
    lock: Lock,
    building: bool = False,
    progress: Progress | None = None,
) -> Plan:
    artifacts = [
        plan_artifact(a, request, store, executor, lock, building, progress)
        for a in request.artifacts
    ]
    check_serving(request, artifacts)
    spec = bundle_spec(request, {a.id: a.key for a in artifacts})
    files = render_all(spec)
    warmups = plan_warmups(spec, request, store, executor, progress)
    key = digest_json(
        {
            "salt": KEY_SALT,
            "files": file_digests(files),
            "versions": [[m.name, v.version, v.key] for m in spec.models for v in m.versions],
            "warmups": [[w.model, w.version, w.stage.key] for w in warmups],
        }
    )
    bid = bundle_id(request)
    locked = lock.bundles.get(bid)
    if locked is None:
        reason = "new: not in tftrt.lock"
    elif locked.get("key") == key:
        reason = "unchanged"
    else:
        reason = "changed: " + "; ".join(changes(locked.get("files"), file_digests(files))[:3])
        if reason == "changed: ":
            reason = "changed: served versions"
    bundle = BundlePlan(spec, files, key, reason=reason, warmups=warmups)
    return Plan(request, artifacts, bundle, lock, bid)


def stale(plan: Plan) -> list[tuple[str, str]]:
    """What in tftrt.lock disagrees with the configs and inputs: (item, reason) pairs."""
    found: list[tuple[str, str]] = []
    for art in plan.artifacts:
        locked = plan.lock.artifacts.get(art.id)
        if locked is None:
            found.append((art.id, "not in tftrt.lock"))
            continue
        for stage in art.stages:
            entry = locked.get(stage.name) or {}
            if entry.get("key") != stage.key:
                found.append((f"{art.id} {stage.name}", why(_unlocked(stage), entry)))
        if locked.get("config") != art.config():
            diff = changes(locked.get("config"), art.config())
            found.append((art.id, "config changed: " + "; ".join(diff[:3])))
    locked_bundle = plan.lock.bundles.get(plan.bundle_id)
    if locked_bundle is None:
        found.append((plan.bundle_id, "bundle not in tftrt.lock"))
    elif locked_bundle.get("key") != plan.bundle.key:
        found.append((plan.bundle_id, f"bundle {plan.bundle.reason}"))
    return found


def _unlocked(stage: StagePlan) -> StagePlan:
    # Compare against the lock as if nothing were cached, so the reason names the change.
    return StagePlan(
        stage.name, stage.inputs, stage.toolchain, stage.key, Lookup(None, "absent"), ""
    )


def relative(path: Path, project: Path) -> str:
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)
