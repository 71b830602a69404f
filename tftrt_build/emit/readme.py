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
        lines += [
            f"Copy `models/` onto the PersistentVolumeClaim `{t.k8s.volume_claim}`, then:",
            "",
            "```sh",
            "kubectl apply -f k8s/",
            "```",
        ]
    else:
        lines += [
            "On a GPU host with the NVIDIA container runtime:",
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
    return "\n".join(lines)
