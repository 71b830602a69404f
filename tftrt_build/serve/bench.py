"""Bench: latency and throughput of each served version, REST and gRPC, native vs TF-TRT.

A cell (model, version, protocol, batch size, concurrency) is measured by client processes
(spawned, so they import only requests or grpc), each running threads that send the same
request body, encoded once before timing. Warm-up requests run first and are not timed; all
threads then start together. The client's CPU time per request gives its own ceiling
(processes / CPU seconds per request): a cell whose throughput comes near it is marked
client-bound, and a cell with any failed request is invalid, never a figure.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# A cell whose throughput reaches this share of the client's own ceiling measured the client.
CLIENT_BOUND = 0.8


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # rest | grpc
    address: str  # REST URL of :predict, or gRPC host:port
    body: bytes  # the request, encoded once


@dataclass
class Cell:
    model: str
    version: str  # "2", or a label
    profile: str
    # native or tftrt: native versions are the baseline of speed-ups.
    converter: str
    protocol: str
    batch: int
    concurrency: int
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    wall_s: float = 0.0
    throughput_rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    client_ceiling_rps: float = 0.0
    client_bound: bool = False
    speedup: float | None = None  # throughput over the native version's, same cell
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.errors == 0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data["valid"] = self.valid
        return data

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> Cell:
        return cls(**{k: v for k, v in data.items() if k != "valid"})

    @property
    def baseline(self) -> bool:
        return self.converter == "native"


def _call(endpoint: Endpoint, timeout: float) -> Callable[[], str]:
    """A function that sends the request once and returns '' or what went wrong."""
    if endpoint.protocol == "rest":
        import requests

        session = requests.Session()
        headers = {"Content-Type": "application/json"}

        def rest() -> str:
            try:
                response = session.post(
                    endpoint.address, data=endpoint.body, headers=headers, timeout=timeout
                )
            except requests.RequestException as exc:
                return f"{type(exc).__name__}: {str(exc)[:80]}"
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {response.text[:80]}"
            return ""

        return rest
    import grpc

    channel = grpc.insecure_channel(endpoint.address)
    raw = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=None,
        response_deserializer=None,
    )

    def rpc() -> str:
        try:
            raw(endpoint.body, timeout=timeout)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return ""

    return rpc


def _process(
    endpoint: Endpoint, counts: list[int], warmup: int, timeout: float, barrier: Any, results: Any
) -> None:
    """One client process: a thread per entry of counts (timed requests of that thread)."""
    out: list[tuple[list[float], int, str, float, float]] = []
    lock = threading.Lock()
    cpu: dict[str, float] = {}

    def thread(timed: int, index: int) -> None:
        call = _call(endpoint, timeout)
        for _ in range(warmup):
            call()
        barrier.wait()
        if index == 0:
            cpu["start"] = time.process_time()
        latencies, errors, first = [], 0, ""
        start = time.perf_counter()
        for _ in range(timed):
            t0 = time.perf_counter()
            problem = call()
            latencies.append((time.perf_counter() - t0) * 1e3)
            if problem:
                errors += 1
                first = first or problem
        end = time.perf_counter()
        with lock:
            out.append((latencies, errors, first, start, end))

    threads = [threading.Thread(target=thread, args=(n, i)) for i, n in enumerate(counts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((out, time.process_time() - cpu.get("start", 0.0)))


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def measure(
    endpoint: Endpoint,
    concurrency: int,
    requests: int,
    warmup: int,
    processes: int,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run one cell; returns latencies, errors, wall time and the client's CPU time."""
    ctx = multiprocessing.get_context("spawn")
    n_proc = max(1, min(concurrency, processes or os.cpu_count() or 1))
    threads = split(concurrency, n_proc)
    per_thread = split(max(requests, concurrency), concurrency)
    barrier = ctx.Barrier(concurrency)
    results = ctx.Queue()
    procs, offset = [], 0
    for n in threads:
        counts = per_thread[offset : offset + n]
        offset += n
        procs.append(
            ctx.Process(target=_process, args=(endpoint, counts, warmup, timeout, barrier, results))
        )
    for p in procs:
        p.start()
    gathered = [results.get(timeout=timeout * (requests + warmup) + 120) for _ in procs]
    for p in procs:
        p.join()
    latencies: list[float] = []
    errors, first, starts, ends, cpu = 0, "", [], [], 0.0
    for threads_out, cpu_s in gathered:
        cpu += cpu_s
        for lat, err, msg, start, end in threads_out:
            latencies += lat
            errors += err
            first = first or msg
            starts.append(start)
            ends.append(end)
    return {
        "latencies_ms": latencies,
        "errors": errors,
        "first_error": first,
        "wall_s": max(ends) - min(starts),
        "client_cpu_s": cpu,
        "processes": n_proc,
    }


def fill(cell: Cell, raw: dict[str, Any]) -> Cell:
    lat = np.asarray(raw["latencies_ms"])
    cell.latencies_ms = [round(x, 4) for x in raw["latencies_ms"]]
    cell.requests = len(lat)
    cell.errors = raw["errors"]
    cell.first_error = raw["first_error"]
    cell.wall_s = raw["wall_s"]
    if len(lat):
        cell.p50_ms, cell.p90_ms, cell.p99_ms = (float(x) for x in np.percentile(lat, [50, 90, 99]))
        cell.throughput_rps = (len(lat) - cell.errors) / cell.wall_s if cell.wall_s else 0.0
    per_request = raw["client_cpu_s"] / max(len(lat), 1)
    cell.client_ceiling_rps = raw["processes"] / per_request if per_request > 0 else math.inf
    cell.client_bound = cell.throughput_rps >= CLIENT_BOUND * cell.client_ceiling_rps
    return cell


def speedups(cells: list[Cell]) -> None:
    """Throughput of each valid cell over the native version's in the same conditions."""
    base = {
        (c.model, c.protocol, c.batch, c.concurrency): c for c in cells if c.baseline and c.valid
    }
    for c in cells:
        ref = base.get((c.model, c.protocol, c.batch, c.concurrency))
        if c.valid and ref is not None and ref.throughput_rps:
            c.speedup = c.throughput_rps / ref.throughput_rps


def markdown(cells: list[Cell]) -> str:
    lines = [
        "| model | version | profile | protocol | batch | concurrency | p50 ms | p90 ms | "
        "p99 ms | req/s | speed-up | client ceiling req/s | note |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cells:
        note = "" if c.valid else f"INVALID: {c.errors} failed ({c.first_error})"
        if c.valid and c.client_bound:
            note = "client-bound: not the server's limit"
        speed = f"{c.speedup:.2f}x" if c.speedup is not None else "-"
        lines.append(
            f"| {c.model} | {c.version} | {c.profile} | {c.protocol} | {c.batch} | "
            f"{c.concurrency} | {c.p50_ms:.2f} | {c.p90_ms:.2f} | {c.p99_ms:.2f} | "
            f"{c.throughput_rps:.0f} | {speed} | {c.client_ceiling_rps:.0f} | {note} |"
        )
    return "\n".join(lines) + "\n"


def plot(cells: list[Cell], path: Any) -> None:
    """p50 latency against throughput, a line per version, a panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = sorted({c.protocol for c in cells})
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.5), squeeze=False)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        series: dict[str, list[Cell]] = {}
        for c in cells:
            if c.protocol == protocol and c.valid:
                series.setdefault(f"{c.model} v{c.version} {c.profile} b{c.batch}", []).append(c)
        for name, points in sorted(series.items()):
            points.sort(key=lambda c: c.concurrency)
            ax.plot(
                [c.throughput_rps for c in points],
                [c.p50_ms for c in points],
                marker="o",
                label=name,
            )
            for c in points:
                ax.annotate(str(c.concurrency), (c.throughput_rps, c.p50_ms), fontsize=7)
        ax.set_title(f"{protocol.upper()} (labels: concurrency)")
        ax.set_xlabel("throughput, requests/s")
        ax.set_ylabel("p50 latency, ms")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
