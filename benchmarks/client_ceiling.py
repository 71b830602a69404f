"""How fast tftrt-bench's clients can go, against endpoints that cost the server nothing.

    python benchmarks/client_ceiling.py [--seconds-per-cell N]

REST: nginx (Debian's package) on 127.0.0.1 answers every POST with a fixed TF Serving-shaped
JSON body. gRPC: a trivial PredictionService/Predict handler in its own process answers every
call with a fixed serialized PredictResponse. Each is driven by tftrt-bench's own load
generator (tftrt_build.serve.load.measure) at several process counts and concurrencies,
beside a plain requests.Session loop measured in the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tftrt_build.serve.answers import predict_schema, response_class
from tftrt_build.serve.load import Endpoint, measure

# What every answer of both servers holds; the clients check each answer against it.
EXPECTED = {"probabilities": ("float32", (1, 2))}

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"outputs": {{"probabilities": [[0.1, 0.9]]}}}}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def grpc_answer(schema: tuple[bytes, ...]) -> bytes:
    """A PredictResponse with the probabilities [[0.1, 0.9]], serialized."""
    import numpy as np

    cls, dtypes = response_class(schema)
    response = cls()
    tensor = response.outputs["probabilities"]
    tensor.dtype = dtypes["DT_FLOAT"]
    for size in EXPECTED["probabilities"][1]:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.array([[0.1, 0.9]], dtype=np.float32).tobytes()
    return bytes(response.SerializeToString())


def grpc_server(port: int, ready: multiprocessing.synchronize.Event, answer: bytes) -> None:
    from concurrent import futures

    import grpc

    def predict(request: bytes, context: object) -> bytes:
        return answer

    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def plain_loop(url: str, body: bytes, seconds: float) -> float:
    """A plain requests.Session loop: the baseline the issue quotes (~800 req/s here)."""
    session = requests.Session()
    n, end = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        session.post(url, data=body, headers={"Content-Type": "application/json"})
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tftrt-ceiling-") as tmp:
        port = free_port()
        Path(tmp, "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port))
        server = subprocess.Popen([nginx, "-c", f"{tmp}/nginx.conf", "-p", tmp])
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        gport = free_port()
        schema = predict_schema()
        rpc = ctx.Process(target=grpc_server, args=(gport, ready, grpc_answer(schema)), daemon=True)
        rpc.start()
        try:
            url = f"http://127.0.0.1:{port}/v1/models/demo:predict"
            body = b'{"signature_name": "serving_default", "inputs": {"image": [[0.5, 0.5]]}}'
            for _ in range(100):
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
            ready.wait(30)
            plain = plain_loop(url, body, 5.0)
            rows.append(("REST", "plain requests.Session loop", "1 / 1", f"{plain:.0f}"))
            rest = Endpoint("rest", url, body, EXPECTED)
            # Any request body will do: the stand-in server answers every call alike.
            grpc_ep = Endpoint("grpc", f"127.0.0.1:{gport}", b"", EXPECTED, schema)
            for endpoint, cells in (
                (rest, [(1, 1), (2, 2), (2, 4), (2, 8)]),
                (grpc_ep, [(1, 1), (2, 2), (2, 8), (2, 16)]),
            ):
                for processes, concurrency in cells:
                    raw = measure(endpoint, concurrency, args.requests, 200, processes)
                    rps = (len(raw["latencies_ms"]) - raw["errors"]) / raw["wall_s"]
                    assert raw["errors"] == 0, raw["first_error"]
                    rows.append(
                        (
                            endpoint.protocol.upper(),
                            "tftrt-bench client",
                            f"{raw['processes']} / {concurrency}",
                            f"{rps:.0f}",
                        )
                    )
        finally:
            server.terminate()
            server.wait()
            rpc.terminate()
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.requests} requests per cell; server and client share the machine.\n"
    )
    print("| protocol | client | processes / concurrency | requests/s |")
    print("| --- | --- | --- | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
