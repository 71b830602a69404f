"""The serving bundle: TF Serving configs, Compose and Kubernetes, checked with real tools."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import Project
from test_emit import compose_binary, compose_schema

from tftrt_build.build.bundle import BundleWrite, stage_bundle
from tftrt_build.emit.models_config import parse as parse_models_config
from tftrt_build.emit.readme import render as render_readme
from tftrt_build.emit.server_config import parse_batching, parse_monitoring
from tftrt_build.errors import ConfigError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.plan import make_plan
from tftrt_build.plan.bundle import check_replaceable
from tftrt_build.store.cache import Store
from tftrt_build.store.commit import BundleCommit
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import Lock


def plan(compose_request, p: Project, *overrides: str):  # type: ignore[no-untyped-def]
    request = compose_request(p.root, *overrides)
    store = Store(p.cache, StatCache(None), readonly=True)
    return make_plan(request, store, LocalExecutor(cache_dir=p.cache), Lock())


@pytest.mark.parametrize("target", ["serving", "serving_k8s"])
def test_golden_bundles(compose_request, catalogue: Project, golden, target: str) -> None:  # type: ignore[no-untyped-def]
    files = plan(compose_request, catalogue, f"target={target}").bundle.files
    for path, text in files.items():
        golden(f"{target}/{path.replace('/', '__')}", text)


def test_serving_configs_parse_with_protobuf(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    files = plan(compose_request, catalogue, "target=serving").bundle.files
    config = parse_models_config(files["config/models.config"])
    resnet, demo = config.model_config_list.config
    assert list(resnet.model_version_policy.specific.versions) == [1, 2]
    assert dict(resnet.version_labels) == {"baseline": 1, "stable": 2}
    assert demo.model_version_policy.latest.num_versions == 1
    batching = parse_batching(files["config/batching.config"])
    # The server never batches beyond the FP16 artifact's engines, and pads to their sizes.
    assert batching.max_batch_size.value == 8
    assert list(batching.allowed_batch_sizes) == [1, 8]
    monitoring = parse_monitoring(files["config/monitoring.config"])
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_protobuf_check_can_fail() -> None:
    from google.protobuf import text_format

    with pytest.raises(text_format.ParseError):
        parse_batching("max_batch_sise { value: 8 }")


def compose_config(tmp_path: Path, text: str) -> dict:  # type: ignore[type-arg]
    """Validate with the Compose schema and the Compose binary; return Compose's own view."""
    jsonschema.validate(yaml.safe_load(text), compose_schema())
    folder = tmp_path / "bundle"
    for sub in ("models", "config"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "docker-compose.yml").write_text(text)
    proc = subprocess.run(
        [compose_binary(), "-f", folder / "docker-compose.yml", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_compose_flags_ports_and_gpus(compose_request, catalogue: Project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = plan(compose_request, catalogue, "target=serving").bundle.files
    service = compose_config(tmp_path, files["docker-compose.yml"])["services"]["tfserving"]
    assert service["command"] == [
        "--port=8500",
        "--rest_api_port=8501",
        "--model_config_file=/config/models.config",
        "--enable_batching=true",
        "--batching_parameters_file=/config/batching.config",
        "--monitoring_config_file=/config/monitoring.config",
        "--enable_model_warmup=true",
    ]
    assert [(p["host_ip"], p["published"], p["target"]) for p in service["ports"]] == [
        ("127.0.0.1", "8501", 8501),
        ("127.0.0.1", "8500", 8500),
    ]
    assert all(v["read_only"] for v in service["volumes"])
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1
    assert service["restart"] == "unless-stopped"
    assert service["logging"] == {
        "driver": "json-file",
        "options": {"max-size": "50m", "max-file": "5"},
    }
    assert service["labels"] == {"autoheal": "true"}


def test_cpu_target_reserves_no_gpu_and_says_so(  # type: ignore[no-untyped-def]
    compose_request, catalogue: Project, tmp_path: Path
) -> None:
    p = plan(compose_request, catalogue, "target=compose_cpu")
    service = compose_config(tmp_path, p.bundle.files["docker-compose.yml"])["services"][
        "tfserving"
    ]
    assert service["image"] == "tensorflow/serving:2.17.1"
    assert "deploy" not in service
    assert p.request.bundle_dir.name == "demo-native-cpu"
    readme = render_readme(p.bundle.spec, p.bundle.key, {})
    assert "On any host with Docker; no GPU is reserved and none is needed" in readme
    assert "NVIDIA" not in readme
    gpu = plan(compose_request, catalogue)
    assert "On a GPU host with the NVIDIA container runtime (1 GPU reserved" in render_readme(
        gpu.bundle.spec, gpu.bundle.key, {}
    )


def test_logging_and_autoheal_are_configurable(  # type: ignore[no-untyped-def]
    compose_request, catalogue: Project, tmp_path: Path
) -> None:
    p = plan(
        compose_request,
        catalogue,
        "target.logging.driver=local",
        "target.logging.max_size=1g",
        "target.logging.max_file=2",
        "target.autoheal=false",
    )
    service = compose_config(tmp_path, p.bundle.files["docker-compose.yml"])["services"][
        "tfserving"
    ]
    assert service["logging"] == {"driver": "local", "options": {"max-size": "1g", "max-file": "2"}}
    assert "labels" not in service
    readme = render_readme(p.bundle.spec, p.bundle.key, {})
    assert "never one that is only unhealthy" in readme and "label `autoheal=true`" not in readme
    syslog = plan(
        compose_request,
        catalogue,
        "target.logging.driver=syslog",
        "target.logging.max_size=null",
        "target.logging.max_file=null",
    )
    assert yaml.safe_load(syslog.bundle.files["docker-compose.yml"])["services"]["tfserving"][
        "logging"
    ] == {"driver": "syslog"}


def test_one_service_per_gpu(compose_request, catalogue: Project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = plan(compose_request, catalogue, "target=per_gpu").bundle.files
    services = compose_config(tmp_path, files["docker-compose.yml"])["services"]
    assert sorted(services) == ["tfserving-gpu0", "tfserving-gpu1"]
    gpu1 = services["tfserving-gpu1"]
    assert [p["published"] for p in gpu1["ports"]] == ["8511", "8510"]
    assert gpu1["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["1"]


def kubernetes_validate(tmp_path: Path, files: dict[str, str], paths: list[str]) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    for path in paths:
        (folder / Path(path).name).write_text(files[path])
    exe = Path(sys.executable).parent / "kubernetes-validate"
    proc = subprocess.run(
        [exe, "--strict", *sorted(folder.glob("*.yaml"))], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kubernetes_manifests_validate_strictly(
    compose_request, catalogue: Project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    files = plan(compose_request, catalogue, "target=serving_k8s").bundle.files
    core = sorted(p for p in files if p.startswith("k8s/"))
    assert core == [
        "k8s/configmap.yaml",
        "k8s/deployment.yaml",
        "k8s/pvc.yaml",
        "k8s/service.yaml",
    ]
    kubernetes_validate(tmp_path, files, core)
    deployment = yaml.safe_load(files["k8s/deployment.yaml"])
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": 1},
    }
    # Start-up (model loading, TF-TRT warm-up) is the startupProbe's, up to 30 minutes;
    # liveness starts after it; readiness is every version AVAILABLE.
    assert container["startupProbe"]["tcpSocket"] == {"port": 8501}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1800
    assert container["readinessProbe"]["exec"]["command"][:2] == ["bash", "-c"]
    assert "initialDelaySeconds" not in container["livenessProbe"]
    volumes = pod["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == "tfserving-models"
    claim = yaml.safe_load(files["k8s/pvc.yaml"])
    assert claim["metadata"]["name"] == "tfserving-models"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
    }
    configmap = yaml.safe_load(files["k8s/configmap.yaml"])
    assert sorted(configmap["data"]) == ["batching.config", "models.config", "monitoring.config"]
    checksum = hashlib.sha256(json.dumps(configmap["data"], sort_keys=True).encode()).hexdigest()
    assert pod["metadata"]["annotations"]["checksum/config"] == checksum
    # KServe apart: `kubectl apply -f k8s/` never starts a second server.
    kserve = yaml.safe_load(files["kserve/inferenceservice.yaml"])
    assert kserve["apiVersion"] == "serving.kserve.io/v1beta1"
    (served,) = kserve["spec"]["predictor"]["containers"]
    assert served["ports"] == [{"name": "http1", "containerPort": 8501, "protocol": "TCP"}]


def test_a_changed_config_rolls_the_pods(compose_request, catalogue: Project) -> None:  # type: ignore[no-untyped-def]
    def annotations(*overrides: str) -> dict[str, str]:
        files = plan(compose_request, catalogue, "target=serving_k8s", *overrides).bundle.files
        doc = yaml.safe_load(files["k8s/deployment.yaml"])
        return dict(doc["spec"]["template"]["metadata"]["annotations"])

    before = annotations()
    changed = annotations("target.batching.batch_timeout_micros=5000")
    assert changed["checksum/config"] != before["checksum/config"]
    assert changed["checksum/models"] == before["checksum/models"]
    assert annotations("target.k8s.replicas=3") == before  # not a config of the pods


def test_kubernetes_resources_and_claim_are_configurable(
    compose_request, catalogue: Project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    files = plan(
        compose_request,
        catalogue,
        "target=serving_k8s",
        "target.k8s.limits.cpu=4",
        "target.k8s.requests.memory=6Gi",
        "target.k8s.storage_class=fast-ssd",
        "target.k8s.access_mode=ReadWriteMany",
        "target.k8s.volume_size=100Gi",
        "target.k8s.kserve=false",
    ).bundle.files
    assert not any(p.startswith("kserve/") for p in files)
    kubernetes_validate(tmp_path, files, [p for p in files if p.startswith("k8s/")])
    container = yaml.safe_load(files["k8s/deployment.yaml"])["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "6Gi"},
        "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": 1},
    }
    assert yaml.safe_load(files["k8s/pvc.yaml"])["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "100Gi"}},
        "storageClassName": "fast-ssd",
    }
    existing = plan(
        compose_request, catalogue, "target=serving_k8s", "target.k8s.create_claim=false"
    ).bundle.files
    assert "k8s/pvc.yaml" not in existing


def test_kubernetes_validation_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {bogus: 1}\n")
    exe = Path(sys.executable).parent / "kubernetes-validate"
    assert subprocess.run([exe, "--strict", bad], capture_output=True).returncode != 0


# -- the health check, run by real bash against a TF Serving stand-in --------------------------


class StatusServer(http.server.ThreadingHTTPServer):
    """A test double for TF Serving's model status endpoint (no TF Serving binary exists here)."""

    states: dict[str, list[str]]


class StatusHandler(http.server.BaseHTTPRequestHandler):
    server: StatusServer

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        states = self.server.states.get(name)
        if states is None:
            body = json.dumps({"error": f"Servable not found for request: Latest({name})"})
            self.send_response(404)
        else:
            body = json.dumps(
                {
                    "model_version_status": [
                        {
                            "version": str(i + 1),
                            "state": s,
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                        for i, s in enumerate(states)
                    ]
                },
                indent=1,
            )
            self.send_response(200)  # TF Serving says 200 whatever the state
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    server = StatusServer(("127.0.0.1", 0), StatusHandler)
    server.states = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_health_check_needs_every_version_available(  # type: ignore[no-untyped-def]
    compose_request, catalogue: Project, tmp_path: Path, status_server: StatusServer
) -> None:
    port = status_server.server_address[1]
    files = plan(
        compose_request, catalogue, "target=serving", f"target.ports.rest={port}"
    ).bundle.files
    # The command as Compose parsed it; its config output writes '$' as '$$' again (the
    # output is itself a compose file), and the container receives single dollars.
    test = compose_config(tmp_path, files["docker-compose.yml"])["services"]["tfserving"][
        "healthcheck"
    ]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    test = [*test[:3], test[3].replace("$$", "$")]

    def healthy() -> bool:
        return subprocess.run(test[1:], capture_output=True, timeout=30).returncode == 0

    status_server.states = {"resnet50": ["AVAILABLE", "LOADING"], "demo": ["AVAILABLE"]}
    assert not healthy()
    status_server.states = {"resnet50": ["AVAILABLE", "AVAILABLE"]}
    assert not healthy()  # demo is missing
    status_server.states = {"resnet50": ["AVAILABLE", "AVAILABLE"], "demo": ["AVAILABLE"]}
    assert healthy()
    status_server.shutdown()
    status_server.server_close()
    assert not healthy()  # nothing listening


# -- building bundles --------------------------------------------------------------------------


def read_warmup(path: Path) -> list[tuple[str, str, dict[str, list[int]]]]:
    """Read warm-up records back with TensorFlow (in a subprocess, as the server would)."""
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2
        out = []
        for record in tf.data.TFRecordDataset({str(path)!r}):
            r = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
            shapes = {{k: [d.size for d in v.tensor_shape.dim] for k, v in r.inputs.items()}}
            out.append([r.model_spec.name, r.model_spec.signature_name, shapes])
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]


@pytest.mark.slow
def test_built_bundle_with_batching_and_warmup(catalogue: Project) -> None:
    result = catalogue.run(
        "target=two_models",
        "target.batching.enabled=true",
        "target.warmup.batch_sizes=[1,4]",
        "record=true",
    )
    assert result.code == 0, result.err
    bundle = catalogue.root / "bundles" / "two_models"
    records = read_warmup(bundle / "models/tiny/1/assets.extra/tf_serving_warmup_requests")
    assert records == [
        ("tiny", "serving_default", {"image": [1, 32, 32, 3]}),
        ("tiny", "serving_default", {"image": [4, 32, 32, 3]}),
    ]
    assert (bundle / "config" / "batching.config").is_file()
    readme = (bundle / "README.md").read_text()
    assert "| 1 | stable | `native` |" in readme and "docker compose up -d" in readme
    # The bundle does not share inodes with the cache.
    assert (bundle / "models/tiny/1/saved_model.pb").stat().st_nlink == 1
    doc = json.loads((bundle / "bundle.json").read_text())
    assert sorted(doc["files"]) == [
        "README.md",
        "config/batching.config",
        "config/models.config",
        "config/monitoring.config",
        "docker-compose.yml",
        "verify/demo/1.json",
        "verify/tiny/1.json",
    ]


def test_failed_emit_leaves_the_previous_bundle(demo_build: Project, tmp_path: Path) -> None:
    bundle = tmp_path / "bundles" / "b"
    source = demo_build.root / "bundles" / "demo-native"
    shutil.copytree(source, bundle)
    before = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))
    store = Store(demo_build.cache, StatCache(None), readonly=True)
    entry = store.lookup(
        json.loads((source / "bundle.json").read_text())["models"][0]["versions"][0]["key"]
    ).entry
    assert entry is not None
    spec = type("Spec", (), {})()  # never reached: the layer below fails first
    # A version folder that collides with the artifact's own assets.extra/ makes emit fail.
    broken = BundleWrite(spec, "k", {}, {("demo", 1): [(entry, ""), (entry, "variables")]})
    cache = tmp_path / "cache"
    commit = BundleCommit(cache, bundle, tmp_path / "tftrt.lock")
    try:
        with pytest.raises(ConfigError):
            stage_bundle(commit.staged, broken, bundle)
    finally:
        commit.close()
    assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == before
    assert [p.name for p in bundle.parent.iterdir()] == ["b"]  # no staging folder left
    assert not list((cache / "tmp").iterdir())


def test_foreign_folder_is_never_replaced(demo_build: Project, tmp_path: Path) -> None:
    # The check the commit repeats under the bundle's lock (a folder put there after the plan);
    # the plan-time refusal is a case of tests/reliability/test_bad_input.py.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    target = types.SimpleNamespace(file="conf/target/t.yaml")
    request = types.SimpleNamespace(bundle_dir=folder, project=tmp_path, target_option=target)
    with pytest.raises(ConfigError) as refused:
        check_replaceable(request)  # type: ignore[arg-type]
    assert str(refused.value).startswith("conf/target/t.yaml: target.bundle_dir: 'mine' exists")
    assert (folder / "notes.txt").read_text() == "keep me"
