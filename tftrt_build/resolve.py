"""Resolve: a composed config becomes a checked ``BuildRequest`` or one ``ConfigError``.

Everything here is pure: no file is written and TensorFlow is never imported. Options that a
target names (other models and profiles) come through ``Options``, which the CLI backs with
Hydra's compose API so they are composed exactly as on the command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tftrt_build.errors import ConfigError, did_you_mean
from tftrt_build.fs import under
from tftrt_build.schema import (
    Config,
    ExecutorConf,
    Mode,
    ModelConf,
    ProfileConf,
    SampleKind,
    ServiceLayout,
    SourceKind,
    TargetConf,
    TargetKind,
    VerifyMode,
)

DTYPES = [
    "bfloat16",
    "bool",
    "complex64",
    "complex128",
    "float16",
    "float32",
    "float64",
    "half",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "qint8",
    "quint8",
    "string",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Fail = Callable[..., ConfigError]


class Options(Protocol):
    """Access to the config options of a group, as Hydra composes them."""

    def model(self, name: str) -> ModelConf: ...

    def profile(self, name: str) -> ProfileConf: ...

    def names(self, group: str) -> list[str]: ...

    def file(self, group: str, name: str) -> str | None: ...


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    # The YAML file the option came from, as shown in messages; None for a schema default.
    file: str | None


@dataclass(frozen=True)
class ArtifactSpec:
    """One model built with one profile: what the cache stores and the lock records."""

    model: ModelConf
    profile: ProfileConf
    model_option: Option
    profile_option: Option

    @property
    def id(self) -> str:
        return f"{self.model_option.name}/{self.profile_option.name}"


@dataclass(frozen=True)
class ServedVersion:
    version: int
    artifact: ArtifactSpec


@dataclass(frozen=True)
class ServedModel:
    name: str
    versions: tuple[ServedVersion, ...]
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildRequest:
    project: Path
    mode: Mode
    target: TargetConf
    target_option: Option
    served: tuple[ServedModel, ...]
    executor: ExecutorConf
    cache_dir: Path
    verify: VerifyMode
    lock_path: Path
    bundle_dir: Path
    verbose: bool = False

    @property
    def artifacts(self) -> list[ArtifactSpec]:
        seen: dict[str, ArtifactSpec] = {}
        for model in self.served:
            for version in model.versions:
                seen.setdefault(version.artifact.id, version.artifact)
        return list(seen.values())


def resolve(cfg: Config, choices: dict[str, str], options: Options, project: Path) -> BuildRequest:
    """Check the config and expand the target into the artifacts it serves."""
    target_option = Option("target", choices["target"], options.file("target", choices["target"]))
    target = cfg.target
    check_target(target, target_option.file)
    served: list[ServedModel] = []
    if not target.models:
        artifact = _artifact(cfg.model, cfg.profile, choices["model"], choices["profile"], options)
        served.append(ServedModel(cfg.model.name, (ServedVersion(1, artifact),)))
    else:
        served = _served_models(target, target_option.file, options)
    _check_unique_names(served, target_option.file)
    cache_dir = under(project, cfg.cache.dir)
    bundle_dir = under(project, target.bundle_dir)
    _check_bundle_dir(bundle_dir, project, cache_dir, target_option.file)
    return BuildRequest(
        project=project,
        mode=cfg.mode,
        target=target,
        target_option=target_option,
        served=tuple(served),
        executor=cfg.executor,
        cache_dir=cache_dir,
        verify=cfg.cache.verify,
        lock_path=under(project, cfg.lock),
        bundle_dir=bundle_dir,
        verbose=cfg.verbose,
    )


def _artifact(
    model: ModelConf, profile: ProfileConf, model_name: str, profile_name: str, options: Options
) -> ArtifactSpec:
    model_option = Option("model", model_name, options.file("model", model_name))
    profile_option = Option("profile", profile_name, options.file("profile", profile_name))
    check_model(model, model_option.file)
    check_profile(profile, model, profile_option.file)
    return ArtifactSpec(model, profile, model_option, profile_option)


def _served_models(
    target: TargetConf, target_file: str | None, options: Options
) -> list[ServedModel]:
    served = []
    for i, entry in enumerate(target.models):
        key = f"target.models[{i}]"
        model_name = _known(options, "model", entry.model, f"{key}.model", target_file)
        model = options.model(model_name)
        if not entry.versions:
            raise ConfigError("lists no versions", key=f"{key}.versions", file=target_file)
        versions: list[ServedVersion] = []
        for j, v in enumerate(entry.versions):
            vkey = f"{key}.versions[{j}]"
            if v.version < 1:
                raise ConfigError(
                    f"version {v.version} is not a positive integer",
                    key=f"{vkey}.version",
                    file=target_file,
                )
            if any(s.version == v.version for s in versions):
                raise ConfigError(
                    f"version {v.version} of model '{model.name}' is listed twice",
                    key=f"{vkey}.version",
                    file=target_file,
                )
            profile_name = _known(options, "profile", v.profile, f"{vkey}.profile", target_file)
            artifact = _artifact(
                model, options.profile(profile_name), model_name, profile_name, options
            )
            versions.append(ServedVersion(v.version, artifact))
        numbers = sorted(s.version for s in versions)
        for label, number in sorted(entry.labels.items()):
            if not _LABEL.match(label):
                raise ConfigError(
                    f"label '{label}' must start with a letter and use letters, digits, _ or -",
                    key=f"{key}.labels.{label}",
                    file=target_file,
                )
            if number not in numbers:
                raise ConfigError(
                    f"label '{label}' points at version {number}, which is not served "
                    f"(versions: {', '.join(map(str, numbers))})",
                    key=f"{key}.labels.{label}",
                    file=target_file,
                )
        served.append(ServedModel(model.name, tuple(versions), dict(entry.labels)))
    return served


def _known(options: Options, group: str, name: str, key: str, file: str | None) -> str:
    names = options.names(group)
    if name not in names:
        raise ConfigError(
            f"no {group} option '{name}'", key=key, file=file, hint=did_you_mean(name, names)
        )
    return name


def _check_unique_names(served: list[ServedModel], target_file: str | None) -> None:
    seen: set[str] = set()
    for i, model in enumerate(served):
        if model.name in seen:
            raise ConfigError(
                f"two entries serve a model named '{model.name}'",
                key=f"target.models[{i}].model",
                file=target_file,
            )
        seen.add(model.name)


def _check_bundle_dir(bundle: Path, project: Path, cache: Path, file: str | None) -> None:
    b, p, c = bundle.resolve(), project.resolve(), cache.resolve()
    # The bundle folder is replaced wholesale on every emit: it must not hold anything else.
    if p.is_relative_to(b) or c.is_relative_to(b) or b.is_relative_to(c):
        what = "the project folder" if p.is_relative_to(b) else "the cache"
        raise ConfigError(
            f"'{bundle}' overlaps {what}; pick a folder of its own",
            key="target.bundle_dir",
            file=file,
        )


def _failing(prefix: str, file: str | None) -> Fail:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"{prefix}.{key}", file=file, hint=hint)

    return fail


def check_model(model: ModelConf, file: str | None) -> None:
    fail = _failing("model", file)
    if not _NAME.match(model.name):
        raise fail("name", f"'{model.name}' is not a valid model name (letters, digits, _ . -)")
    if not model.inputs:
        raise fail("inputs", "declares no inputs")
    names: set[str] = set()
    for i, spec in enumerate(model.inputs):
        if spec.name in names:
            raise fail(f"inputs[{i}].name", f"input '{spec.name}' is declared twice")
        names.add(spec.name)
        if spec.dtype not in DTYPES:
            raise fail(
                f"inputs[{i}].dtype",
                f"unknown dtype '{spec.dtype}'",
                did_you_mean(spec.dtype, DTYPES),
            )
        if not spec.shape:
            raise fail(f"inputs[{i}].shape", "needs at least the batch dimension")
        if any(d == 0 or d < -1 for d in spec.shape):
            raise fail(f"inputs[{i}].shape", f"{list(spec.shape)}: sizes are positive or -1")
    if model.samples.count < 1:
        raise fail("samples.count", "must be at least 1")
    if model.samples.kind is SampleKind.random and not model.samples.low < model.samples.high:
        raise fail("samples.high", "must be greater than samples.low")
    if model.samples.kind is SampleKind.file and not model.samples.path:
        raise fail("samples.path", "samples.kind=file needs a .npz path")
    _check_source(model, fail)


def _check_source(model: ModelConf, fail: Fail) -> None:
    src = model.source
    kind = src.kind.value
    if src.kind is SourceKind.export:
        if not src.script:
            raise fail("source.script", f"source.kind={kind} needs a script under models/")
        if list(model.tags) != ["serve"]:
            raise fail("tags", "an exported model has the single tag set [serve]")
    elif src.kind is SourceKind.archive:
        if not (src.url or src.path):
            raise fail("source.url", f"source.kind={kind} needs a url or a path")
        if src.sha256 is not None and not _SHA256.match(src.sha256.lower()):
            raise fail("source.sha256", f"'{src.sha256}' is not 64 hex digits")
    elif src.kind is SourceKind.local and not src.path:
        raise fail("source.path", f"source.kind={kind} needs the SavedModel folder")


def check_profile(profile: ProfileConf, model: ModelConf, file: str | None) -> None:
    from tftrt_build.converters import converter_for

    if profile.max_batch_size < 1:
        raise ConfigError("must be at least 1", key="profile.max_batch_size", file=file)
    converter_for(profile).check(profile, model, file)


def check_target(target: TargetConf, file: str | None) -> None:
    fail = _failing("target", file)

    if not _NAME.match(target.name):
        raise fail("name", f"'{target.name}' is not a valid name (letters, digits, _ . -)")
    image = target.image
    if "@sha256:" not in image:
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            raise fail("image", f"'{image}' is not pinned; name a tag such as :2.17.1-gpu")
    for key in ("rest", "grpc"):
        port = getattr(target.ports, key)
        if not 1 <= port <= 65535:
            raise fail(f"ports.{key}", f"{port} is not a TCP port")
    if target.ports.rest == target.ports.grpc:
        raise fail("ports.grpc", f"REST and gRPC both use port {target.ports.rest}")
    count = target.gpus.count
    if target.gpus.device_ids and count is not None:
        raise fail("gpus.count", "set either gpus.count or gpus.device_ids, not both")
    if count is not None and count != "all" and not (isinstance(count, int) and count >= 0):
        raise fail("gpus.count", f"'{count}' is neither a number of GPUs nor 'all'")
    if not target.model_base_path.startswith("/"):
        raise fail("model_base_path", "must be an absolute path inside the container")
    _check_layout(target, fail)
    b = target.batching
    for key in ("batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if getattr(b, key) < (0 if key == "batch_timeout_micros" else 1):
            raise fail(f"batching.{key}", f"{getattr(b, key)} is out of range")
    w = target.warmup
    if w.batch_sizes is not None and any(n < 1 for n in w.batch_sizes):
        raise fail("warmup.batch_sizes", f"{list(w.batch_sizes)}: batch sizes are positive")
    if not 1 <= w.requests <= 1000:
        raise fail(
            "warmup.requests",
            "must be between 1 and 1000 (TF Serving reads at most 1000 warm-up records)",
        )
    if not target.monitoring.path.startswith("/"):
        raise fail("monitoring.path", f"'{target.monitoring.path}' must start with /")
    for key in ("interval_s", "timeout_s", "retries"):
        if getattr(target.health, key) < 1:
            raise fail(f"health.{key}", "must be at least 1")


def _check_layout(target: TargetConf, fail: Fail) -> None:
    if target.kind is TargetKind.k8s:
        if target.gpus.device_ids:
            raise fail("gpus.device_ids", "Kubernetes schedules GPUs by count; use gpus.count")
        if target.gpus.count == "all":
            raise fail("gpus.count", "Kubernetes needs a number of GPUs, not 'all'")
        if target.services is ServiceLayout.per_gpu:
            raise fail("services", "per_gpu is for compose targets; scale k8s.replicas instead")
        if target.k8s.replicas < 1:
            raise fail("k8s.replicas", "must be at least 1")
        return
    if target.services is ServiceLayout.per_gpu:
        if not target.gpus.device_ids:
            raise fail("services", "per_gpu needs gpus.device_ids, one service per id")
        ports = [
            port + i * target.port_step
            for i in range(len(target.gpus.device_ids))
            for port in (target.ports.rest, target.ports.grpc)
        ]
        if len(set(ports)) != len(ports) or max(ports) > 65535:
            raise fail(
                "port_step",
                f"{target.port_step} gives the {len(target.gpus.device_ids)} "
                f"services clashing or invalid ports {sorted(ports)}",
            )
