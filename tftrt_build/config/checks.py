"""Every rule that can refuse a model, a target, or a pairing of them, before any work.

The profile's own rules live in ``tftrt_build.config.profiles`` beside what a profile means;
checks that need the plan's findings (batching against engines, a serving image against the
converter's TensorRT) live in ``tftrt_build.plan``. Each raises one ``ConfigError`` naming the
file and the key.

Why this module is long: a target has many keys a user can get wrong (ports, images, logging,
Kubernetes quantities, layout), and each refusal is a few lines naming its key; splitting them
by key would scatter one kind's rules over several files.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from tftrt_build.config.applies import check_model_applies, check_target_applies
from tftrt_build.config.names import check_name
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
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A Kubernetes namespace is an RFC 1123 label; a claim name an RFC 1123 subdomain.
_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RFC1123_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
_COMPUTE_CAPABILITY = re.compile(r"^\d+\.\d+$")
# Seeds go to NumPy, which takes 0 <= seed < 2**32.
SEED_MAX = 2**32 - 1
URL_SCHEMES = ("http", "https", "file")


Fail = Callable[..., ConfigError]


def _failing(prefix: str, file: str | None) -> Fail:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"{prefix}.{key}", file=file, hint=hint)

    return fail


def check_model(model: ModelConf, file: str | None) -> None:
    fail = _failing("model", file)
    check_name(model.name, "model.name", file)
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
    if not 0 <= model.samples.seed <= SEED_MAX:
        raise fail("samples.seed", f"{model.samples.seed} is not between 0 and {SEED_MAX}")
    _check_source(model, fail)
    check_model_applies(model, file)


def _check_source(model: ModelConf, fail: Fail) -> None:
    src = model.source
    kind = src.kind.value
    if src.kind is SourceKind.export:
        if not src.script:
            raise fail("source.script", f"source.kind={kind} needs a script under models/")
        if list(model.tags) != ["serve"]:
            raise fail("tags", "an exported model has the single tag set [serve]")
        if not 0 <= src.seed <= SEED_MAX:
            raise fail("source.seed", f"{src.seed} is not between 0 and {SEED_MAX}")
    elif src.kind is SourceKind.archive:
        if not (src.url or src.path):
            raise fail("source.url", f"source.kind={kind} needs a url or a path")
        if src.url and src.path:
            raise fail("source.path", "set either source.url or source.path, not both")
        scheme = src.url.split("://", 1)[0] if src.url and "://" in src.url else ""
        if src.url and scheme not in URL_SCHEMES:
            raise fail("source.url", f"'{src.url}' is not an http://, https:// or file:// address")
        if src.sha256 is not None and not _SHA256.match(src.sha256.lower()):
            raise fail("source.sha256", f"'{src.sha256}' is not 64 hex digits")
    elif src.kind is SourceKind.local and not src.path:
        raise fail("source.path", f"source.kind={kind} needs the SavedModel folder")


def check_target(target: TargetConf, file: str | None) -> None:
    fail = _failing("target", file)
    check_name(target.name, "target.name", file)
    _check_image(target.image, fail)
    for key in ("rest", "grpc"):
        port = getattr(target.ports, key)
        if not 1 <= port <= 65535:
            raise fail(f"ports.{key}", f"{port} is not a TCP port")
    if target.ports.rest == target.ports.grpc:
        raise fail("ports.grpc", f"REST and gRPC both use port {target.ports.rest}")
    try:
        ipaddress.ip_address(target.ports.host)
    except ValueError as exc:
        raise fail(
            "ports.host", f"'{target.ports.host}' is not an IP address (such as 127.0.0.1)"
        ) from exc
    if not _RESTART.match(target.restart):
        raise fail(
            "restart",
            f"'{target.restart}' is not a Compose restart policy "
            "(no, always, on-failure[:N], unless-stopped)",
            did_you_mean(target.restart, ["no", "always", "on-failure", "unless-stopped"]),
        )
    cc = target.gpus.compute_capability
    if cc is not None and not _COMPUTE_CAPABILITY.match(cc):
        raise fail("gpus.compute_capability", f"'{cc}' is not like 8.6")
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
    if target.health.start_period_s < 0:
        raise fail("health.start_period_s", f"{target.health.start_period_s} is negative")
    if target.model_config_poll_seconds < 0:
        raise fail("model_config_poll_seconds", f"{target.model_config_poll_seconds} is negative")
    check_target_applies(target, file)


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


def _check_image(image: str, fail: Fail) -> None:
    name, at, digest = image.partition("@")
    if at:
        algorithm, _, hex_digits = digest.partition(":")
        if algorithm != "sha256" or not _SHA256.match(hex_digits):
            raise fail("image", f"'{image}': a digest is @sha256: and 64 hex digits")
    elif not name:
        raise fail("image", "names no image")
    else:
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            raise fail("image", f"'{image}' is not pinned; name a tag such as :2.17.1-gpu")


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
        if not _RFC1123_LABEL.match(target.k8s.namespace):
            raise fail(
                "k8s.namespace",
                f"'{target.k8s.namespace}' is not a Kubernetes namespace (RFC 1123 label: "
                "1 to 63 lower-case letters, digits and -, starting and ending alphanumeric)",
            )
        if not _RFC1123_SUBDOMAIN.match(target.k8s.volume_claim):
            raise fail(
                "k8s.volume_claim",
                f"'{target.k8s.volume_claim}' is not a Kubernetes object name (RFC 1123 "
                "subdomain: lower-case letters, digits, - and .)",
            )
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
