"""docker-compose.yml: one TF Serving service on a GPU host, model repository mounted read-only."""

from __future__ import annotations

from typing import Any

import yaml

from tftrt_build.emit import CONFIG_DIR, BundleSpec
from tftrt_build.emit.models_config import PATH as MODELS_CONFIG

PATH = "docker-compose.yml"
SERVICE = "tfserving"
SERVER_BINARY = "/usr/bin/tensorflow_model_server"


def gpu_devices(count: Any, device_ids: list[str]) -> list[dict[str, Any]]:
    """Compose's GPU reservation: count and device_ids are mutually exclusive."""
    if device_ids:
        return [{"driver": "nvidia", "device_ids": list(device_ids), "capabilities": ["gpu"]}]
    n = 1 if count is None else count
    if n == 0:
        return []
    return [{"driver": "nvidia", "count": n, "capabilities": ["gpu"]}]


def server_args(spec: BundleSpec) -> list[str]:
    ports = spec.target.ports
    return [
        f"--port={ports.grpc}",
        f"--rest_api_port={ports.rest}",
        f"--model_config_file={CONFIG_DIR}/{MODELS_CONFIG.split('/', 1)[1]}",
    ]


def build_document(spec: BundleSpec) -> dict[str, Any]:
    target = spec.target
    ports = target.ports
    service: dict[str, Any] = {
        "image": target.image,
        "entrypoint": [SERVER_BINARY],
        "command": server_args(spec),
        "ports": [
            f"{ports.host}:{ports.rest}:{ports.rest}",
            f"{ports.host}:{ports.grpc}:{ports.grpc}",
        ],
        "volumes": [
            {
                "type": "bind",
                "source": "./models",
                "target": target.model_base_path,
                "read_only": True,
            },
            {"type": "bind", "source": "./config", "target": CONFIG_DIR, "read_only": True},
        ],
        "restart": target.restart,
    }
    devices = gpu_devices(target.gpus.count, list(target.gpus.device_ids))
    if devices:
        service["deploy"] = {"resources": {"reservations": {"devices": devices}}}
    return {"name": spec.project_name, "services": {SERVICE: service}}


class ComposeEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        header = f"# TF Serving for target '{spec.target_option}'; written by tftrt-build\n"
        body = yaml.safe_dump(build_document(spec), sort_keys=False, default_flow_style=False)
        return {PATH: header + body}
