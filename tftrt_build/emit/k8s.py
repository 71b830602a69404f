"""Kubernetes manifests for targets of kind k8s: ConfigMap, Deployment, Service (and KServe).

The model repository comes from a PersistentVolumeClaim the target names (copy the bundle's
models/ folder onto it); the configs travel in a ConfigMap; readiness is the same
every-version-AVAILABLE check as the Compose health check.
"""

from __future__ import annotations

from typing import Any

import yaml

from tftrt_build.emit.compose import SERVER_BINARY
from tftrt_build.emit.health import health_script, server_args
from tftrt_build.emit.models_config import ModelsConfigEmitter
from tftrt_build.emit.server_config import BatchingEmitter, MonitoringEmitter
from tftrt_build.emit.spec import CONFIG_DIR, BundleSpec

FOLDER = "k8s"


def _labels(spec: BundleSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tensorflow-serving",
        "app.kubernetes.io/instance": spec.project_name,
        "app.kubernetes.io/managed-by": "tftrt-build",
    }


def _meta(spec: BundleSpec, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": spec.target.k8s.namespace, "labels": _labels(spec)}


def _container(spec: BundleSpec, name: str) -> dict[str, Any]:
    t = spec.target
    health = t.health
    container: dict[str, Any] = {
        "name": name,
        "image": t.image,
        "command": [SERVER_BINARY],
        "args": server_args(spec, CONFIG_DIR),
        "ports": [
            {"name": "grpc", "containerPort": t.ports.grpc, "protocol": "TCP"},
            {"name": "http", "containerPort": t.ports.rest, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "exec": {"command": ["bash", "-c", health_script(spec, t.ports.rest)]},
            "initialDelaySeconds": 5,
            "periodSeconds": health.interval_s,
            "timeoutSeconds": health.timeout_s,
            "failureThreshold": health.retries,
        },
        "livenessProbe": {
            "tcpSocket": {"port": t.ports.rest},
            "initialDelaySeconds": health.start_period_s,
            "periodSeconds": health.interval_s,
        },
        "volumeMounts": [
            {"name": "models", "mountPath": t.model_base_path, "readOnly": True},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    count = t.gpus.asked()
    if count:
        container["resources"] = {"limits": {"nvidia.com/gpu": int(count)}}
    return container


def _volumes(spec: BundleSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": "models",
            "persistentVolumeClaim": {"claimName": spec.target.k8s.volume_claim, "readOnly": True},
        },
        {"name": "config", "configMap": {"name": f"{spec.project_name}-config"}},
    ]


def manifests(spec: BundleSpec) -> dict[str, dict[str, Any]]:
    t = spec.target
    configs: dict[str, str] = {}
    for emitter in (ModelsConfigEmitter(), BatchingEmitter(), MonitoringEmitter()):
        configs.update({path.split("/", 1)[1]: text for path, text in emitter.render(spec).items()})
    docs: dict[str, dict[str, Any]] = {
        "configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(spec, f"{spec.project_name}-config"),
            "data": configs,
        },
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(spec, spec.project_name),
            "spec": {
                "replicas": t.k8s.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/instance": spec.project_name}},
                "template": {
                    "metadata": {"labels": _labels(spec)},
                    "spec": {
                        "containers": [_container(spec, "tensorflow-serving")],
                        "volumes": _volumes(spec),
                    },
                },
            },
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, spec.project_name),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/instance": spec.project_name},
                "ports": [
                    {"name": "grpc", "port": t.ports.grpc, "targetPort": "grpc"},
                    {"name": "http", "port": t.ports.rest, "targetPort": "http"},
                ],
            },
        },
    }
    if t.k8s.kserve:
        docs["inferenceservice.yaml"] = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": _meta(spec, spec.project_name),
            "spec": {
                "predictor": {
                    "containers": [_container(spec, "kserve-container")],
                    "volumes": _volumes(spec),
                }
            },
        }
    return docs


class KubernetesEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        header = f"# Kubernetes for target '{spec.target_option}'; written by tftrt-build\n"
        return {
            f"{FOLDER}/{name}": header + yaml.safe_dump(doc, sort_keys=False, width=1000)
            for name, doc in manifests(spec).items()
        }
