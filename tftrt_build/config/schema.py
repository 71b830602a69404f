"""Typed config schemas, registered in Hydra's ConfigStore.

YAML options in ``conf/<group>/`` fill these in; Hydra validates keys and types against them.
Past the CLI, code sees these dataclasses (``OmegaConf.to_object``), never a ``DictConfig``.

Why this module is long: every field of every schema carries its comment here, as Hydra's own
schemas do; it holds no logic beyond a few plain-data views of a config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# OmegaConf reads the annotations at run time, so Optional[...] is spelled out (not ``X | None``).
# ruff: noqa: UP045


class Mode(Enum):
    build = "build"  # build what is missing, emit the bundle, update the lock
    plan = "plan"  # say what would be built and why; touch nothing
    check = "check"  # exit non-zero when tftrt.lock is out of date; touch nothing
    diff = "diff"  # compare the configs and lock with a base (a git ref or a lock file)


class SourceKind(Enum):
    export = "export"  # run a script from models/ that builds the model
    archive = "archive"  # a .tar/.tar.gz/.zip SavedModel, from a URL or a path, pinned by sha256
    local = "local"  # a SavedModel folder on disk


class SampleKind(Enum):
    random = "random"  # uniform in [low, high) (integers for integer dtypes), seeded
    zeros = "zeros"
    file = "file"  # a .npz file with one array per input name


class ConverterKind(Enum):
    native = "native"  # the SavedModel served as-is: the baseline
    tftrt = "tftrt"  # TF-TRT (TrtGraphConverterV2)


class Precision(Enum):
    FP32 = "FP32"
    FP16 = "FP16"
    INT8 = "INT8"


class TargetKind(Enum):
    compose = "compose"
    k8s = "k8s"


class LinkMode(Enum):
    copy = "copy"  # version folders are copies of the cache's files (reflinks where possible)
    hardlink = "hardlink"  # retired, refused: the bundle shared inodes with the cache


class ExecutorKind(Enum):
    local = "local"
    docker = "docker"


class WorkerMode(Enum):
    auto = "auto"  # fork on Linux, process elsewhere (fork is not safe with TensorFlow on macOS)
    fork = "fork"  # one process imports TensorFlow once and forks a child per stage (Linux)
    process = "process"  # a fresh Python process per stage


class VerifyMode(Enum):
    auto = "auto"  # full in mode=check, stat otherwise
    stat = "stat"  # re-hash a file only when its size/mtime/inode changed (trusts the stat cache)
    full = "full"  # re-hash every input, every cache entry used and the bundle


@dataclass
class InputConf:
    # Name of the input in the serving signature.
    name: str = MISSING
    # TensorFlow dtype name: float32, float16, int32, int64, uint8, string, ...
    dtype: str = "float32"
    # Shape with the batch dimension first; -1 for a dimension of any size.
    shape: list[int] = MISSING


@dataclass
class SamplesConf:
    # How sample inputs for verification, warm-up and calibration are made.
    kind: SampleKind = SampleKind.random
    # Number of examples (rows) to make.
    count: int = 4
    # Seed of the generator, so samples are the same on every machine.
    seed: int = 0
    # Range of random values.
    low: float = 0.0
    high: float = 1.0
    # The .npz file for kind=file: in the project, else (models/...) among tftrt-build's own.
    path: Optional[str] = None

    def to_params(self) -> dict[str, Any]:
        """As plain data, the form stage tasks and cache keys carry."""
        return {
            "kind": self.kind.value,
            "count": self.count,
            "seed": self.seed,
            "low": self.low,
            "high": self.high,
            "path": self.path,
        }


@dataclass
class SourceConf:
    # Where the SavedModel comes from.
    kind: SourceKind = MISSING
    # export: script under models/ defining build(**args) -> keras.Model (or export(dir, **args)).
    script: Optional[str] = None
    # export: keyword arguments passed to the script.
    args: dict[str, Any] = field(default_factory=dict)
    # export: extra files the script reads or imports; their content is part of the key.
    deps: list[str] = field(default_factory=list)
    # export: seed for Python, NumPy, TensorFlow and Keras before the script runs.
    seed: int = 0
    # archive: local file; local: SavedModel folder. Relative to the project.
    path: Optional[str] = None
    # archive: download address (http, https or file).
    url: Optional[str] = None
    # archive: required sha256 of the archive file.
    sha256: Optional[str] = None
    # archive: folder inside the archive holding saved_model.pb (found when there is one).
    subdir: Optional[str] = None
    # archive: most bytes it may unpack to, as a multiple of the archive file's size (a
    # bomb guard; raise it for a model that compresses unusually well).
    max_unpacked_ratio: float = 10.0
    # archive: most members (files, folders, links) it may hold.
    max_members: int = 10000


@dataclass
class ModelConf:
    # Name the model is served under (TF Serving model name, REST path /v1/models/<name>).
    name: str = MISSING
    source: SourceConf = field(default_factory=SourceConf)
    # MetaGraph tag set to load.
    tags: list[str] = field(default_factory=lambda: ["serve"])
    # Signature to serve and convert.
    signature: str = "serving_default"
    inputs: list[InputConf] = MISSING
    # Output names of the signature; export uses them to name the outputs, in order.
    outputs: list[str] = field(default_factory=list)
    samples: SamplesConf = field(default_factory=SamplesConf)

    def input_specs(self) -> list[dict[str, Any]]:
        """The declared inputs as plain data, the form stage tasks and cache keys carry."""
        return [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in self.inputs]


@dataclass
class TrtConf:
    # TrtGraphConverterV2 arguments; the native converter ignores them.
    minimum_segment_size: int = 3
    max_workspace_size_bytes: int = 1 << 30
    maximum_cached_engines: int = 1
    allow_build_at_runtime: bool = True
    # Dynamic shapes (explicit batch) and the optimisation profile strategy:
    # Range, Optimal, Range+Optimal or ImplicitBatchModeCompatible.
    use_dynamic_shape: bool = False
    dynamic_shape_profile_strategy: Optional[str] = None
    # Save engines built for this GPU with the model (pre-built engines need it).
    save_gpu_specific_engines: bool = True
    # Accept a conversion that produced no TensorRT engine (normally a build failure).
    allow_no_engines: bool = False


class CalibrationSource(Enum):
    off = "off"  # no calibration (precisions other than INT8)
    samples = "samples"  # batches made by the model's sample generator (model.samples)
    files = "files"  # one .npz file per batch, one array per input name
    qat = "qat"  # INT8 without calibration: the model carries its quantization ranges


@dataclass
class CalibrationConf:
    # INT8 calibration data; INT8 needs one of samples, files or qat, other precisions off.
    source: CalibrationSource = CalibrationSource.off
    files: list[str] = field(default_factory=list)
    # Number of calibration batches and their batch size (source=samples).
    batches: int = 8
    batch_size: int = 8


@dataclass
class ToleranceConf:
    # An output passes when max|converted - source| <= atol + rtol * max|source|; null takes
    # the precision's default (README, "Correctness").
    atol: Optional[float] = None
    rtol: Optional[float] = None
    # Least share of samples whose arg-max class agrees (classifiers); null: not checked.
    top1_agreement: Optional[float] = None


@dataclass
class ProfileConf:
    # Name shown in tables and in the lock.
    name: str = MISSING
    converter: ConverterKind = ConverterKind.native
    precision: Precision = Precision.FP32
    # Largest batch the converted model serves; TF Serving batching never exceeds it.
    max_batch_size: int = 8
    # Engines are left to be built at run time when true (TF1 is_dynamic_op=True); when false
    # they are pre-built with build() for batch_sizes before saving.
    dynamic_op: bool = False
    # Batch sizes to pre-build engines for; empty means [max_batch_size].
    batch_sizes: list[int] = field(default_factory=list)
    trt: TrtConf = field(default_factory=TrtConf)
    calibration: CalibrationConf = field(default_factory=CalibrationConf)
    tolerance: ToleranceConf = field(default_factory=ToleranceConf)
    # GPU architecture pre-built engines are for ("8.6"); null: the serving target's
    # gpus.compute_capability, else the GPU that converts.
    compute_capability: Optional[str] = None
    # TF1-era saved_model_cli flags, accepted with their TF2 meaning (see the README).
    precision_mode: Optional[str] = None
    is_dynamic_op: Optional[bool] = None


@dataclass
class VersionConf:
    # Numbered version folder the artifact is served as.
    version: int = MISSING
    # Profile option (conf/profile/<profile>.yaml) that builds this version.
    profile: str = MISSING


@dataclass
class ServedModelConf:
    # Model option (conf/model/<model>.yaml).
    model: str = MISSING
    versions: list[VersionConf] = MISSING
    # Version labels, as in TF Serving's version_labels: {stable: 2, canary: 3}.
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class GpusConf:
    # Number of GPUs to reserve: an integer or "all"; 0 reserves none; null means 1 unless
    # device_ids are given.
    count: Any = None
    # Specific device ids instead of a count ("0", "1", ...).
    device_ids: list[str] = field(default_factory=list)
    # Compute capability of the serving GPUs ("7.5" T4, "8.0" A100, "8.6" A10, "8.9" L4);
    # pre-built TF-TRT engines must be built for it.
    compute_capability: Optional[str] = None

    def asked(self) -> Any:
        """GPUs to reserve when no device ids are given: the count, with null meaning 1."""
        return 1 if self.count is None else self.count


@dataclass
class PortsConf:
    rest: int = 8501
    grpc: int = 8500
    # Host address published ports bind to.
    host: str = "127.0.0.1"


class ServiceLayout(Enum):
    one = "one"  # one TF Serving container for the target, with all its GPUs
    per_gpu = "per_gpu"  # one container per device id, each on its own ports


@dataclass
class BatchingConf:
    # Server-side batching (--enable_batching); global to the server.
    enabled: bool = False
    # null: the smallest max_batch_size of the profiles served.
    max_batch_size: Optional[int] = None
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    # null: the batch sizes whose TF-TRT engines are pre-built, up to max_batch_size.
    allowed_batch_sizes: Optional[list[int]] = None
    pad_variable_length_inputs: bool = False


@dataclass
class MonitoringConf:
    # Prometheus metrics on the REST port (--monitoring_config_file).
    enabled: bool = True
    path: str = "/monitoring/prometheus/metrics"


@dataclass
class WarmupConf:
    # assets.extra/tf_serving_warmup_requests in every version (--enable_model_warmup).
    enabled: bool = True
    # null: the served batch sizes (allowed_batch_sizes, else the pre-built ones, else 1).
    batch_sizes: Optional[list[int]] = None
    # Requests per batch size (TF Serving replays at most 1000 records).
    requests: int = 1


@dataclass
class HealthConf:
    # Compose health check / Kubernetes readiness: every version of every model AVAILABLE.
    interval_s: int = 10
    timeout_s: int = 5
    retries: int = 6
    start_period_s: int = 120
    # Kubernetes startupProbe: longest a server may take to load and warm up its models (TF-TRT
    # engines can take minutes) before it is restarted; liveness checks start after it.
    startup_timeout_s: int = 1800


@dataclass
class LoggingConf:
    # Docker logging driver of the serving containers (compose): json-file, local, syslog, ...
    driver: str = "json-file"
    # json-file and local: size of a log file before it is rotated ("50m", "1g"), and how many
    # files are kept; other drivers take neither (set both to null).
    max_size: Optional[str] = "50m"
    max_file: Optional[int] = 5


class AccessMode(Enum):
    ReadWriteOnce = "ReadWriteOnce"  # one node at a time: replicas on one node
    ReadOnlyMany = "ReadOnlyMany"
    ReadWriteMany = "ReadWriteMany"  # replicas on several nodes, filled from any of them
    ReadWriteOncePod = "ReadWriteOncePod"


@dataclass
class ResourcesConf:
    # Kubernetes quantities ("500m", "2", "4Gi"); null leaves the entry out.
    cpu: Optional[str] = None
    memory: Optional[str] = None


@dataclass
class K8sConf:
    namespace: str = "default"
    replicas: int = 1
    # PersistentVolumeClaim holding the bundle's models/ folder.
    volume_claim: str = "tfserving-models"
    # Write k8s/pvc.yaml claiming it (false: the claim exists already), its size, storage
    # class (null: the cluster's default) and access mode.
    create_claim: bool = True
    volume_size: str = "20Gi"
    storage_class: Optional[str] = None
    access_mode: AccessMode = AccessMode.ReadWriteOnce
    # The serving container's requests and limits (GPUs come from target.gpus).
    requests: ResourcesConf = field(default_factory=lambda: ResourcesConf("1", "2Gi"))
    limits: ResourcesConf = field(default_factory=lambda: ResourcesConf(None, "8Gi"))
    # Also write a KServe InferenceService, in its own folder kserve/.
    kserve: bool = False


@dataclass
class TargetConf:
    name: str = MISSING
    kind: TargetKind = TargetKind.compose
    # TF Serving image, pinned by tag (or digest).
    image: str = "tensorflow/serving:2.17.1-gpu"
    # TensorRT version inside the image, for images whose tag does not tell (custom builds).
    image_tensorrt: Optional[str] = None
    gpus: GpusConf = field(default_factory=GpusConf)
    ports: PortsConf = field(default_factory=PortsConf)
    # Models and versions served; empty serves the selected model and profile as version 1.
    models: list[ServedModelConf] = field(default_factory=list)
    # Where the bundle is written, relative to the project.
    bundle_dir: str = MISSING
    # How version folders are filled from the cache: copy (hardlink is refused).
    link: LinkMode = LinkMode.copy
    # Where the model repository is mounted inside the serving container.
    model_base_path: str = "/models"
    restart: str = "unless-stopped"
    services: ServiceLayout = ServiceLayout.one
    # Port offset between the services of services=per_gpu.
    port_step: int = 10
    batching: BatchingConf = field(default_factory=BatchingConf)
    monitoring: MonitoringConf = field(default_factory=MonitoringConf)
    warmup: WarmupConf = field(default_factory=WarmupConf)
    health: HealthConf = field(default_factory=HealthConf)
    # compose: log rotation of the serving containers.
    logging: LoggingConf = field(default_factory=LoggingConf)
    # compose: label the services autoheal=true, for an autoheal container (such as
    # willfarrell/autoheal) to restart them when unhealthy: Docker itself never does.
    autoheal: bool = True
    k8s: K8sConf = field(default_factory=K8sConf)
    # Re-read models.config this often (seconds); 0 never does.
    model_config_poll_seconds: int = 0


class TransferMode(Enum):
    auto = "auto"  # mount for a local engine (unix socket), copy for a remote one
    mount = "mount"  # bind mounts: the source read-only, the output folder read-write
    copy = "copy"  # upload inputs into the container and download the output (remote engines)


@dataclass
class ExecutorConf:
    kind: ExecutorKind = ExecutorKind.local
    # local: Python interpreter that runs TensorFlow stages; null means this interpreter.
    python: Optional[str] = None
    # local: how stages run: forked from a worker that imported TensorFlow once per build, or
    # each in a fresh process (execute/worker.py).
    worker: WorkerMode = WorkerMode.auto
    # docker: the engine (unix://, tcp://, ssh://user@gpu-host); null: DOCKER_HOST or default.
    host: Optional[str] = None
    # docker: image with TensorFlow 2.17 + TensorRT 8.6.1 + tftrt-build (docker/gpu.Dockerfile).
    image: str = "tftrt-build/gpu:2.17.1-trt8.6.1"
    # docker: GPUs given to the stage container (count, "all", or device ids; 0 for none).
    gpus: GpusConf = field(default_factory=lambda: GpusConf(count=1))
    transfer: TransferMode = TransferMode.auto
    # Longest a stage may run, in seconds; a stage past it is stopped and nothing is cached.
    timeout_s: int = 3600
    # GPUs the jobs of a parallel sweep share, one stage per GPU at a time: null (every stage
    # sees what the executor gives it), "auto" (every GPU the executor finds) or device
    # indices [0, 1]. local: CUDA_VISIBLE_DEVICES of the stage; docker: its device_ids.
    gpu_pool: Any = None


class DeployAction(Enum):
    up = "up"  # start the bundle's stack and wait until every version is AVAILABLE
    down = "down"  # stop and remove it


@dataclass
class ServerConf:
    # REST address of the running server; null: http://<target.ports.host>:<target.ports.rest>.
    url: Optional[str] = None
    # gRPC address host:port; null: <target.ports.host>:<target.ports.grpc>.
    grpc: Optional[str] = None
    timeout_s: float = 30.0


@dataclass
class DeployConf:
    action: DeployAction = DeployAction.up
    # Longest wait for every version to be AVAILABLE, in seconds.
    timeout_s: int = 600
    # Run another image than target.image (a stand-in on machines without TF Serving).
    image: Optional[str] = None
    # Keep the GPU reservation; false drops it (engines without the NVIDIA runtime).
    gpus: bool = True


@dataclass
class BenchConf:
    # rest and/or grpc.
    protocols: list[str] = field(default_factory=lambda: ["rest", "grpc"])
    # Requests in flight at once.
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 16])
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    # Timed requests per cell, after untimed warm-up requests.
    requests: int = 200
    warmup: int = 20
    # Client processes; 0 means one per CPU core.
    processes: int = 0
    # Versions or labels to measure ("1", "stable"); empty: every version served.
    versions: list[str] = field(default_factory=list)
    # Where samples, summary and plot go, relative to the project.
    output_dir: str = "bench-results"


class DiffFormat(Enum):
    text = "text"  # for a terminal or a CI log
    markdown = "markdown"  # a pull request comment body: one table per target, details folded
    json = "json"  # for tools


class DiffWarning(Enum):
    # A label, or a version clients pin, now serves a lower precision (FP32 > FP16 > INT8).
    precision_lowered = "precision_lowered"
    # A version was removed and the label that pointed at it went with it: its clients fail.
    label_dangling = "label_dangling"
    # tftrt.lock's TF-TRT engines were built for another GPU architecture than the target's.
    gpu_arch_mismatch = "gpu_arch_mismatch"
    # A profile's tolerance.atol or rtol grew, or top1_agreement fell or was dropped.
    tolerance_loosened = "tolerance_loosened"
    # tftrt.lock is out of date with the configs (what mode=check fails on).
    lock_stale = "lock_stale"


@dataclass
class DiffConf:
    # mode=diff compares with tftrt.lock at the merge-base of HEAD and this git ref;
    # null: origin/main, else main.
    base: Optional[str] = None
    # Or with this lock file (relative to the project) instead of one from git.
    base_lock: Optional[str] = None
    format: DiffFormat = DiffFormat.text
    # Write the diff to this file (relative to the project) instead of printing it.
    output: Optional[str] = None
    # Warnings that make mode=diff exit 1; the others are reported and exit 0.
    blocking: list[DiffWarning] = field(
        default_factory=lambda: [DiffWarning.label_dangling, DiffWarning.gpu_arch_mismatch]
    )
    # Target options to compare; empty: the command line's target when target=, model= or
    # profile= is given (or when neither lock lists a bundle), else every target with a
    # bundle in either lock.
    targets: list[str] = field(default_factory=list)


@dataclass
class CacheConf:
    # Content-addressed store; TFTRT_CACHE_DIR moves it.
    dir: str = "${oc.env:TFTRT_CACHE_DIR,.tftrt-cache}"
    verify: VerifyMode = VerifyMode.auto
    # Run folders (<dir>/runs/: each run's log) kept; older ones are removed.
    keep_runs: int = 20
    # Shared cache of other machines, any fsspec URL (s3://bucket/prefix, gs://..., file:///...):
    # looked up after this cache, before building; what is built is pushed. Credentials come
    # from the environment or the backend's profiles, never from the URL. null: none.
    remote: Optional[str] = None
    # true: an unreachable or failing remote stops the build; false: warn and build locally.
    remote_required: bool = True


@dataclass
class Config:
    model: ModelConf = MISSING
    profile: ProfileConf = MISSING
    target: TargetConf = MISSING
    executor: ExecutorConf = MISSING
    mode: Mode = Mode.build
    cache: CacheConf = field(default_factory=CacheConf)
    # Lock file, relative to the project.
    lock: str = "tftrt.lock"
    # A build whose command line sets model.*, profile.* or target.* values is an experiment:
    # its bundle goes to <bundles>/experiments/ and the lock is left as committed. record=true
    # records it in the lock and the target's bundle_dir instead.
    record: bool = False
    # Print tracebacks and stage logs.
    verbose: bool = False
    # Let bundle_dir, lock, cache.dir and bench.output_dir point outside the project folder
    # (set on the command line; never into .git either way).
    allow_outside_project: bool = False
    # tftrt-deploy, tftrt-verify, tftrt-bench.
    server: ServerConf = field(default_factory=ServerConf)
    deploy: DeployConf = field(default_factory=DeployConf)
    bench: BenchConf = field(default_factory=BenchConf)
    # mode=diff: what to compare with, how to show it, what blocks.
    diff: DiffConf = field(default_factory=DiffConf)


def register_configs() -> None:
    """Register the schemas; the primary config and every group option are checked against them."""
    cs = ConfigStore.instance()
    cs.store(name="tftrt_build_schema", node=Config)
