"""Every rule that can refuse a model, a target, or a pairing of them, before any work.

The profile's own rules live in ``tftrt_build.config.profiles`` beside what a profile means;
checks that need the plan's findings (batching against engines, a serving image against the
converter's TensorRT) live in ``tftrt_build.plan``. Each raises one ``ConfigError`` naming the
file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tftrt_build.config.profiles import gpu_specific
from tftrt_build.config.request import ArtifactSpec
from tftrt_build.config.schema import (
    ConverterKind,
    LinkMode,
    ModelConf,
    SampleKind,
    ServiceLayout,
    SourceKind,
    TargetConf,
    TargetKind,
)
from tftrt_build.errors import ConfigError, did_you_mean

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

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Fail = Callable[..., ConfigError]


def _failing(prefix: str, file: str | None) -> Fail:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"{prefix}.{key}", file=file, hint=hint)

    return fail


def check_model(model: ModelConf, file: str | None) -> None:
    fail = _failing("model", file)
    if not NAME.match(model.name):
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


def check_target(target: TargetConf, file: str | None) -> None:
    fail = _failing("target", file)

    if not NAME.match(target.name):
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
    if target.link is LinkMode.hardlink:
        # Retired: a bundle sharing inodes with the cache let an edit of either change both.
        raise fail(
            "link",
            "hardlink is no longer supported: a bundle that shares files with the cache lets an "
            "edit of either change both; bundles are copies (reflinks where the file system "
            "can)",
            "remove target.link or set it to copy",
        )
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
    _check_logging_and_resources(target, fail)


# Docker's size of a log file (json-file, local); Kubernetes' resource quantities.
_LOG_SIZE = re.compile(r"^[1-9][0-9]*[kmg]?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ROTATING = ("json-file", "local")


def _check_logging_and_resources(target: TargetConf, fail: Fail) -> None:
    log = target.logging
    if not re.match(r"^[a-z][a-z0-9_.-]*$", log.driver):
        raise fail("logging.driver", f"'{log.driver}' is not a Docker logging driver name")
    if log.driver not in _ROTATING:
        for key in ("max_size", "max_file"):
            if getattr(log, key) is not None:
                raise fail(
                    f"logging.{key}",
                    f"the {log.driver} driver does not rotate files; set it to null",
                    f"{key} is for {' and '.join(_ROTATING)}",
                )
    if log.max_size is not None and not _LOG_SIZE.match(log.max_size):
        raise fail("logging.max_size", f"'{log.max_size}' is not a size such as 50m or 1g")
    if log.max_file is not None and log.max_file < 1:
        raise fail("logging.max_file", "must be at least 1")
    if target.health.startup_timeout_s < 1:
        raise fail("health.startup_timeout_s", "must be at least 1")
    k8s = target.k8s
    quantities = {
        "k8s.volume_size": k8s.volume_size,
        "k8s.requests.cpu": k8s.requests.cpu,
        "k8s.requests.memory": k8s.requests.memory,
        "k8s.limits.cpu": k8s.limits.cpu,
        "k8s.limits.memory": k8s.limits.memory,
    }
    for key, value in quantities.items():
        if value is not None and not _QUANTITY.match(str(value)):
            raise fail(key, f"'{value}' is not a Kubernetes quantity such as 500m, 2 or 4Gi")
    for what in ("cpu", "memory"):
        asked, limit = getattr(k8s.requests, what), getattr(k8s.limits, what)
        if asked is not None and limit is not None and _amount(asked) > _amount(limit):
            raise fail(f"k8s.requests.{what}", f"{asked} is above the limit {limit}")


_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SUFFIX.update({f"{k}i": 1024.0 ** (i + 1) for i, k in enumerate("KMGTPE")})


def _amount(quantity: str) -> float:
    """A quantity checked by _QUANTITY, as a number."""
    number = quantity.rstrip("mkKMGTPEi")
    return float(number) * _SUFFIX.get(quantity[len(number) :], 1.0)


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


def check_served_artifact(artifact: ArtifactSpec, target: TargetConf) -> None:
    """A model and profile served by this target: the rules that need all three."""
    profile, model = artifact.profile, artifact.model
    pinned, declared = profile.compute_capability, target.gpus.compute_capability
    if (
        profile.converter is ConverterKind.tftrt
        and gpu_specific(profile)
        and pinned
        and declared
        and pinned != declared
    ):
        raise ConfigError(
            f"profile '{profile.name}' builds engines for compute capability {pinned}, but "
            f"target '{target.name}' declares GPUs of {declared}; engines only load on "
            "the architecture they were built for",
            key="profile.compute_capability",
            file=artifact.profile_option.file,
        )
    if not target.warmup.enabled:
        return
    for i, spec in enumerate(model.inputs):
        if spec.dtype == "string" and model.samples.kind is not SampleKind.file:
            raise ConfigError(
                f"input '{spec.name}' is a string, so warm-up requests need sample inputs from "
                "a file (samples.kind=file), or target.warmup.enabled=false",
                key=f"model.inputs[{i}].dtype",
                file=artifact.model_option.file,
            )
