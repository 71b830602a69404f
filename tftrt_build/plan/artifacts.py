"""Plan one artifact: the keys of its source and convert stages, and what the cache holds."""

from __future__ import annotations

from typing import Any

from tftrt_build.config.paths import find_file
from tftrt_build.config.profiles import gpu_specific
from tftrt_build.config.request import ArtifactSpec, BuildRequest, Option
from tftrt_build.config.schema import ConverterKind
from tftrt_build.execute.task import Executor
from tftrt_build.plan.keys import stage_key
from tftrt_build.plan.reasons import why
from tftrt_build.plan.records import ArtifactPlan, StagePlan
from tftrt_build.stages.convert import ConvertContext
from tftrt_build.stages.converters import converter_for
from tftrt_build.stages.signature import check_signature
from tftrt_build.stages.source import Source
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import Progress, hash_file
from tftrt_build.store.lock import Lock


def plan_artifact(
    artifact: ArtifactSpec,
    request: BuildRequest,
    store: Store,
    executor: Executor,
    lock: Lock,
    building: bool,
    progress: Progress | None = None,
    origins: dict[Option, Source] | None = None,
) -> ArtifactPlan:
    """``origins``: the sources planned so far, by model option; a model served under several
    profiles has one source, whose inputs (a local folder's tree) are hashed once."""
    model, profile = artifact.model, artifact.profile
    origins = {} if origins is None else origins
    origin = origins.get(artifact.model_option)
    if origin is None:
        origin = origins[artifact.model_option] = Source(
            model,
            artifact.model_option.file,
            request.project,
            store.stat_cache,
            executor,
            request.cache_dir / "downloads",
            fetch_unpinned=building,
        )
    locked = lock.artifacts.get(artifact.id) or {}
    src_inputs = origin.inputs(progress)
    src_toolchain = origin.toolchain()
    src_key = stage_key("source", src_inputs, src_toolchain)
    # Only this cache for now: a source is pulled from cache.remote only if it is converted.
    src_lookup = store.lookup(src_key, progress, pull=False)

    def locate(path: str, key: str) -> Any:
        owner = artifact.profile_option if key.startswith("profile") else artifact.model_option
        return find_file(path, request.project, key, owner.file)

    converter = converter_for(profile)
    context = ConvertContext(
        executor,
        locate,
        lambda path: hash_file(path, store.stat_cache),
        engine_architecture(artifact, request, executor, locked.get("convert"), building),
        None if building else (locked.get("convert") or {}).get("toolchain"),
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
    elif src_lookup.entry is None and not conv_lookup.remote:
        src_lookup = store.lookup(src_key, progress)
    if src_lookup.entry is not None:
        # A cached source was checked against an earlier config; check it against this one.
        check_signature(model, src_lookup.entry.report, artifact.model_option.file)
    source = StagePlan("source", src_inputs, src_toolchain, src_key, src_lookup)
    source.reason = why(source, locked.get("source"))
    convert = StagePlan("convert", conv_inputs, conv_toolchain, conv_key, conv_lookup)
    convert.reason = why(convert, locked.get("convert"))
    return ArtifactPlan(
        artifact,
        origin,
        converter,
        context,
        source,
        convert,
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

    The profile's pin, else the serving target's declaration (the two were checked to agree);
    else, when building, the GPU that converts, and when only planning or checking, what the
    lock recorded for the artifact; so does a build on a machine without a GPU (a CI runner),
    which can then pull from cache.remote the engines a GPU host built for the lock.
    """
    profile = artifact.profile
    if profile.converter is not ConverterKind.tftrt or not gpu_specific(profile):
        return None
    declared = profile.compute_capability or request.target.gpus.compute_capability
    if declared:
        return declared
    if building:
        gpus = executor.probe().gpus
        if gpus:
            return gpus[0].compute_capability
    recorded = ((locked_convert or {}).get("toolchain") or {}).get("compute_capability")
    return str(recorded) if recorded else None
