"""The bundle's README.md: how to start it and what each version is, from the same data."""

from __future__ import annotations

from typing import Any

from tftrt_build.config.schema import TargetKind
from tftrt_build.emit.compose import services
from tftrt_build.emit.spec import BundleSpec

PATH = "README.md"


def _report_line(report: dict[str, Any]) -> str:
    if report.get("converter") != "tftrt":
        return "SavedModel served as-is"
    share = report.get("converted_share", 0.0)
    parts = [f"{report.get('engines', 0)} TensorRT engine(s), {share:.0%} of ops converted"]
    if report.get("prebuilt_batch_sizes"):
        parts.append(f"engines pre-built for batch {report['prebuilt_batch_sizes']}")
    gpus = report.get("gpu") or []
    if gpus:
        parts.append(f"built on {gpus[0]['name']} ({gpus[0]['compute_capability']})")
    trt = report.get("tensorrt") or {}
    if trt.get("loaded"):
        parts.append(f"TensorRT {trt['loaded']}")
    return "; ".join(parts)


def render(spec: BundleSpec, key: str, reports: dict[str, dict[str, Any]]) -> str:
    """``reports`` maps an artifact id to its conversion report."""
    t = spec.target
    lines = [
        f"# TF Serving bundle `{spec.name}`",
        "",
        f"Written by tftrt-build for target `{spec.target_option}` (bundle key `{key[:12]}`).",
        f"Image `{t.image}`. Do not edit: rebuild with `{spec.command}`.",
        "",
        "## Start",
        "",
    ]
    if t.kind is TargetKind.k8s:
        lines += _kubernetes(spec)
    else:
        lines += [
            f"{_host(spec)}:",
            "",
            "```sh",
            "docker compose up -d",
            "docker compose ps      # healthy once every version is AVAILABLE",
            "```",
            "",
            "| service | REST | gRPC |",
            "| --- | --- | --- |",
        ]
        for name, offset, _ in services(spec):
            lines.append(
                f"| `{name}` | {t.ports.host}:{t.ports.rest + offset} | "
                f"{t.ports.host}:{t.ports.grpc + offset} |"
            )
        lines += ["", *_unhealthy(spec)]
    lines += ["", "## Models", ""]
    for model in spec.models:
        lines += [
            f"### `{model.name}`",
            "",
            f"Status: `GET /v1/models/{model.name}`; predict: "
            f"`POST /v1/models/{model.name}:predict` (signature `{model.signature}`).",
            "",
        ]
        labels = {v: [name for name, n in model.labels if n == v] for _, v in model.labels}
        lines += [
            "| version | labels | profile | precision | key | conversion |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for v in model.versions:
            tags = ", ".join(labels.get(v.version, [])) or "-"
            lines.append(
                f"| {v.version} | {tags} | `{v.profile}` | {v.precision} | "
                f"`{v.key[:12]}` | {_report_line(reports.get(v.artifact, {}))} |"
            )
        lines.append("")
    if spec.batching is not None:
        b = spec.batching
        lines += [
            "## Batching",
            "",
            f"max_batch_size {b.max_batch_size}, allowed_batch_sizes "
            f"{list(b.allowed_batch_sizes) or 'any'}, batch_timeout_micros "
            f"{b.batch_timeout_micros} (`config/batching.config`).",
            "",
        ]
    if t.monitoring.enabled:
        lines += [
            "## Monitoring",
            "",
            f"Prometheus metrics at `{t.monitoring.path}` on the REST port.",
            "",
        ]
    if spec.warmup:
        lines += [
            "## Warm-up",
            "",
            "Each version carries `assets.extra/"
            "tf_serving_warmup_requests`, replayed before it is AVAILABLE.",
            "",
        ]
    lines += [
        "## Checking it",
        "",
        "`verify/<model>/<version>.json` records what each version answered at build time "
        "(its outputs on the model's sample inputs, its signature and SavedModel fingerprint). "
        "`tftrt-verify` and `tftrt-bench` use it to establish that a server serves these "
        "artifacts, and no other, before they report anything.",
        "",
    ]
    return "\n".join(lines)


def _gpus(spec: BundleSpec) -> str:
    gpus = spec.target.gpus
    if gpus.device_ids:
        return f"GPUs {', '.join(gpus.device_ids)}"
    count = gpus.asked()
    return "all its GPUs" if count == "all" else f"{count} GPU{'s' if count != 1 else ''}"


def _reserves_gpus(spec: BundleSpec) -> bool:
    return bool(spec.target.gpus.device_ids) or spec.target.gpus.asked() != 0


def _host(spec: BundleSpec) -> str:
    """The host this bundle needs, in words: what its image and GPU reservation ask for."""
    if _reserves_gpus(spec):
        return (
            f"On a GPU host with the NVIDIA container runtime ({_gpus(spec)} reserved for "
            "each service)"
        )
    return "On any host with Docker; no GPU is reserved and none is needed"


def _unhealthy(spec: BundleSpec) -> list[str]:
    t = spec.target
    lines = [
        f"Docker restarts a server that exits (`restart: {t.restart}`), but never one that is "
        "only unhealthy (a version that stopped being AVAILABLE). ",
    ]
    if t.autoheal:
        lines[0] += (
            "The services carry the label `autoheal=true`: run an autoheal container beside "
            "them to restart those that turn unhealthy, for example "
            "`docker run -d --restart=always -v /var/run/docker.sock:/var/run/docker.sock "
            "willfarrell/autoheal`."
        )
    else:
        lines[0] += "Watch `docker compose ps` (or your monitoring) and restart it yourself."
    log = t.logging
    if log.max_size is not None:
        lines += [
            "",
            f"Logs: the `{log.driver}` driver, rotated at {log.max_size}"
            + (f", {log.max_file} files kept." if log.max_file is not None else "."),
        ]
    else:
        lines += ["", f"Logs: the `{log.driver}` driver."]
    return lines


def _kubernetes(spec: BundleSpec) -> list[str]:
    t = spec.target
    k8s = t.k8s
    where = (
        f"nodes with NVIDIA GPUs ({_gpus(spec)} per pod, through the device plugin's "
        "`nvidia.com/gpu`)"
        if _reserves_gpus(spec)
        else "any node; no GPU is requested"
    )
    claim = (
        f"`k8s/pvc.yaml` claims `{k8s.volume_claim}` ({k8s.volume_size}, {k8s.access_mode.value})"
        if k8s.create_claim
        else f"The PersistentVolumeClaim `{k8s.volume_claim}` must exist"
    )
    lines = [
        f"Runs on {where}. {claim}; copy `models/` onto it before the server starts, for "
        "example from a pod that mounts the claim read-write "
        f"(`kubectl cp models/ <pod>:/models -n {k8s.namespace}`). Then:",
        "",
        "```sh",
        "kubectl apply -f k8s/",
        "```",
        "",
        f"The pods get {t.health.startup_timeout_s} s to load and warm up their models "
        "(startupProbe) and are ready once every version is AVAILABLE. A changed config or "
        "model changes the pod template's checksums, so `kubectl apply` rolls the pods.",
    ]
    if k8s.kserve:
        lines += [
            "",
            "With KServe, apply the InferenceService instead of the Deployment and Service "
            "(never both: that starts two servers):",
            "",
            "```sh",
            "kubectl apply -f k8s/configmap.yaml"
            + (" -f k8s/pvc.yaml" if k8s.create_claim else "")
            + " -f kserve/",
            "```",
        ]
    return lines
