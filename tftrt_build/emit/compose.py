"""docker-compose.yml: TF Serving, model repository and configs mounted read-only, GPUs reserved
when the target asks for them, logs rotated, an autoheal label."""

from __future__ import annotations

from typing import Any

import yaml

from tftrt_build.config.schema import GpusConf, LoggingConf, ServiceLayout
from tftrt_build.emit.health import health_script, server_args
from tftrt_build.emit.spec import CONFIG_DIR, BundleSpec

PATH = "docker-compose.yml"
SERVICE = "tfserving"
SERVER_BINARY = "/usr/bin/tensorflow_model_server"


def gpu_devices(gpus: GpusConf) -> list[dict[str, Any]]:
    """Compose's GPU reservation: count and device_ids are mutually exclusive."""
    if gpus.device_ids:
        return [{"driver": "nvidia", "device_ids": list(gpus.device_ids), "capabilities": ["gpu"]}]
    n = gpus.asked()
    if n == 0:
        return []
    return [{"driver": "nvidia", "count": n, "capabilities": ["gpu"]}]


def services(spec: BundleSpec) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """(service name, host port offset, GPU reservation) for each container of the target."""
    t = spec.target
    if t.services is ServiceLayout.per_gpu:
        return [
            (f"{SERVICE}-gpu{device}", i * t.port_step, gpu_devices(GpusConf(device_ids=[device])))
            for i, device in enumerate(t.gpus.device_ids)
        ]
    return [(SERVICE, 0, gpu_devices(t.gpus))]


def _service(spec: BundleSpec, offset: int, devices: list[dict[str, Any]]) -> dict[str, Any]:
    t = spec.target
    ports, health = t.ports, t.health
    # Compose interpolates $VAR in the file: the script's own dollars are doubled.
    script = health_script(spec, ports.rest).replace("$", "$$")
    service: dict[str, Any] = {
        "image": t.image,
        "entrypoint": [SERVER_BINARY],
        "command": server_args(spec, CONFIG_DIR),
        "ports": [
            f"{ports.host}:{ports.rest + offset}:{ports.rest}",
            f"{ports.host}:{ports.grpc + offset}:{ports.grpc}",
        ],
        "volumes": [
            {"type": "bind", "source": "./models", "target": t.model_base_path, "read_only": True},
            {"type": "bind", "source": "./config", "target": CONFIG_DIR, "read_only": True},
        ],
        "healthcheck": {
            "test": ["CMD", "bash", "-c", script],
            "interval": f"{health.interval_s}s",
            "timeout": f"{health.timeout_s}s",
            "retries": health.retries,
            "start_period": f"{health.start_period_s}s",
        },
        "restart": t.restart,
        "logging": logging(t.logging),
    }
    if t.autoheal:
        # Docker restarts a container that exits, never one that is unhealthy; an autoheal
        # container (willfarrell/autoheal) restarts those with this label.
        service["labels"] = {"autoheal": "true"}
    if devices:
        service["deploy"] = {"resources": {"reservations": {"devices": devices}}}
    return service


def logging(conf: LoggingConf) -> dict[str, Any]:
    """Compose's logging: the driver, and for json-file and local the rotation options."""
    options = {}
    if conf.max_size is not None:
        options["max-size"] = conf.max_size
    if conf.max_file is not None:
        options["max-file"] = str(conf.max_file)  # Docker's log options are strings
    return {"driver": conf.driver, **({"options": options} if options else {})}


def build_document(spec: BundleSpec) -> dict[str, Any]:
    return {
        "name": spec.project_name,
        "services": {
            name: _service(spec, offset, devices) for name, offset, devices in services(spec)
        },
    }


class ComposeEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        header = f"# TF Serving for target '{spec.target_option}'; written by tftrt-build\n"
        body = yaml.safe_dump(
            build_document(spec), sort_keys=False, default_flow_style=False, width=1000
        )
        return {PATH: header + body}
