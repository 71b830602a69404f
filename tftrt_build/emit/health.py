"""The server's health: every version of every model AVAILABLE, not merely HTTP 200.

TF Serving answers /v1/models/<name> with 200 whatever the state of its versions
(tensorflow/serving#1608), and its image has no curl. The check is a bash script using
/dev/tcp: for each model it counts the versions whose state is AVAILABLE and fails unless all
the served ones are.
"""

from __future__ import annotations

from tftrt_build.emit.spec import BundleSpec


def health_script(spec: BundleSpec, port: int) -> str:
    wanted = " ".join(f"{m.name}:{len(m.versions)}" for m in spec.models)
    return (
        f"for want in {wanted}; do "
        'name="${want%:*}"; count="${want##*:}"; '
        f"exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1; "
        "printf 'GET /v1/models/%s HTTP/1.0\\r\\n\\r\\n' \"$name\" >&3; "
        'got=$(grep -o \'"state": *"AVAILABLE"\' <&3 | wc -l); exec 3>&-; '
        '[ "$got" -ge "$count" ] || exit 1; '
        "done"
    )


def server_args(spec: BundleSpec, config_dir: str) -> list[str]:
    """tensorflow_model_server flags for everything the bundle holds."""
    t = spec.target
    args = [
        f"--port={t.ports.grpc}",
        f"--rest_api_port={t.ports.rest}",
        f"--model_config_file={config_dir}/models.config",
    ]
    if t.model_config_poll_seconds:
        args.append(f"--model_config_file_poll_wait_seconds={t.model_config_poll_seconds}")
    if spec.batching is not None:
        args += [
            "--enable_batching=true",
            f"--batching_parameters_file={config_dir}/batching.config",
        ]
    if t.monitoring.enabled:
        args.append(f"--monitoring_config_file={config_dir}/monitoring.config")
    if spec.warmup:
        args.append("--enable_model_warmup=true")
    return args
