"""Kubernetes manifests for targets of kind k8s, and a KServe InferenceService apart.

``k8s/`` holds one server: the configs in a ConfigMap, the model repository on a
PersistentVolumeClaim (``pvc.yaml``, unless the claim exists already; copy the bundle's
``models/`` folder onto it), a Deployment and its Service. ``kubectl apply -f k8s/`` starts
exactly that. With ``k8s.kserve`` the same server as a KServe InferenceService goes to
``kserve/`` instead, so the two are never started side by side by one command.

Probes: a startupProbe on the REST port gives a server ``health.startup_timeout_s`` to load and
warm up (TF-TRT engines can take minutes) before liveness checks begin; readiness is the same
every-version-AVAILABLE check as the Compose health check. The pod template carries checksums
of the configs and of the served artifacts, so a changed ConfigMap or model rolls the pods.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import yaml

from tftrt_build.emit.compose import SERVER_BINARY
from tftrt_build.emit.health import health_script, server_args
from tftrt_build.emit.models_config import ModelsConfigEmitter
from tftrt_build.emit.server_config import BatchingEmitter, MonitoringEmitter
from tftrt_build.emit.spec import CONFIG_DIR, BundleSpec

FOLDER = "k8s"
KSERVE_FOLDER = "kserve"


def _labels(spec: BundleSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tensorflow-serving",
        "app.kubernetes.io/instance": spec.project_name,
        "app.kubernetes.io/managed-by": "tftrt-build",
    }


def _meta(spec: BundleSpec, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": spec.target.k8s.namespace, "labels": _labels(spec)}


def _checksum(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _annotations(spec: BundleSpec, configs: dict[str, str]) -> dict[str, str]:
    """Checksums that change the pod template when the configs or the artifacts change."""
    versions = [[m.name, v.version, v.key] for m in spec.models for v in m.versions]
    return {"checksum/config": _checksum(configs), "checksum/models": _checksum(versions)}


def _resources(spec: BundleSpec) -> dict[str, Any]:
    k8s, count = spec.target.k8s, spec.target.gpus.asked()
    requests = {k: v for k, v in (("cpu", k8s.requests.cpu), ("memory", k8s.requests.memory)) if v}
    limits: dict[str, Any] = {
        k: v for k, v in (("cpu", k8s.limits.cpu), ("memory", k8s.limits.memory)) if v
    }
    if count:
        limits["nvidia.com/gpu"] = int(count)
    return {
        **({"requests": requests} if requests else {}),
        **({"limits": limits} if limits else {}),
    }


def _container(spec: BundleSpec, name: str, kserve: bool) -> dict[str, Any]:
    t = spec.target
    health = t.health
    rest = t.ports.rest
    readiness = {
        "exec": {"command": ["bash", "-c", health_script(spec, rest)]},
        "periodSeconds": health.interval_s,
        "timeoutSeconds": health.timeout_s,
        "failureThreshold": health.retries,
    }

    def alive() -> dict[str, Any]:
        # A fresh dict each time: YAML would write a shared one as an anchor and alias.
        return {"tcpSocket": {"port": rest}, "periodSeconds": health.interval_s}

    container: dict[str, Any] = {
        "name": name,
        "image": t.image,
        "command": [SERVER_BINARY],
        "args": server_args(spec, CONFIG_DIR),
    }
    if kserve:
        # Knative (KServe serverless) routes to one port per container: the REST API.
        container["ports"] = [{"name": "http1", "containerPort": rest, "protocol": "TCP"}]
        # Knative has no startupProbe: liveness waits out the start-up instead.
        probes = {
            "readinessProbe": readiness,
            "livenessProbe": {**alive(), "initialDelaySeconds": health.start_period_s},
        }
    else:
        container["ports"] = [
            {"name": "grpc", "containerPort": t.ports.grpc, "protocol": "TCP"},
            {"name": "http", "containerPort": rest, "protocol": "TCP"},
        ]
        probes = {
            "startupProbe": {
                **alive(),
                "failureThreshold": math.ceil(health.startup_timeout_s / health.interval_s),
            },
            "readinessProbe": readiness,
            "livenessProbe": {**alive(), "failureThreshold": health.retries},
        }
    container.update(probes)
    container["resources"] = _resources(spec)
    container["volumeMounts"] = [
        {"name": "models", "mountPath": t.model_base_path, "readOnly": True},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    return container


def _volumes(spec: BundleSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": "models",
            "persistentVolumeClaim": {"claimName": spec.target.k8s.volume_claim, "readOnly": True},
        },
        {"name": "config", "configMap": {"name": f"{spec.project_name}-config"}},
    ]


def _claim(spec: BundleSpec) -> dict[str, Any]:
    k8s = spec.target.k8s
    claim: dict[str, Any] = {
        "accessModes": [k8s.access_mode.value],
        "resources": {"requests": {"storage": k8s.volume_size}},
    }
    if k8s.storage_class is not None:
        claim["storageClassName"] = k8s.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(spec, k8s.volume_claim),
        "spec": claim,
    }


def manifests(spec: BundleSpec) -> dict[str, dict[str, Any]]:
    """Each manifest by its path in the bundle."""
    t = spec.target
    configs: dict[str, str] = {}
    for emitter in (ModelsConfigEmitter(), BatchingEmitter(), MonitoringEmitter()):
        configs.update({path.split("/", 1)[1]: text for path, text in emitter.render(spec).items()})
    annotations = _annotations(spec, configs)
    docs: dict[str, dict[str, Any]] = {
        f"{FOLDER}/configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(spec, f"{spec.project_name}-config"),
            "data": configs,
        },
        f"{FOLDER}/deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(spec, spec.project_name),
            "spec": {
                "replicas": t.k8s.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/instance": spec.project_name}},
                "template": {
                    "metadata": {"labels": _labels(spec), "annotations": annotations},
                    "spec": {
                        "containers": [_container(spec, "tensorflow-serving", kserve=False)],
                        "volumes": _volumes(spec),
                    },
                },
            },
        },
        f"{FOLDER}/service.yaml": {
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
    if t.k8s.create_claim:
        docs[f"{FOLDER}/pvc.yaml"] = _claim(spec)
    if t.k8s.kserve:
        docs[f"{KSERVE_FOLDER}/inferenceservice.yaml"] = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {**_meta(spec, spec.project_name), "annotations": annotations},
            "spec": {
                "predictor": {
                    "minReplicas": t.k8s.replicas,
                    "containers": [_container(spec, "kserve-container", kserve=True)],
                    "volumes": _volumes(spec),
                }
            },
        }
    return docs


class KubernetesEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        header = f"# Kubernetes for target '{spec.target_option}'; written by tftrt-build\n"
        return {
            path: header + yaml.safe_dump(doc, sort_keys=False, width=1000)
            for path, doc in manifests(spec).items()
        }
