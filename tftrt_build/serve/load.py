"""The load generator of tftrt-bench: client processes that send one request body, timed.

A cell is measured by client processes (spawned, so they import only requests or grpc, never
TensorFlow), each running threads that send the same request body, encoded once before timing.
Warm-up requests run first and are not timed; all threads then meet at a barrier and start
together. Every answer is checked (``serve.answers``): one that is not a prediction of the
expected outputs is a failed request, whatever its status. A client process that dies (killed,
crashed) or cannot start its requests fails the cell within about a second, naming itself:
the others never wait at the barrier for it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tftrt_build.execute.runner import die_with_parent
from tftrt_build.serve.answers import check_grpc, check_rest


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # rest | grpc
    address: str  # REST URL of :predict, or gRPC host:port
    body: bytes  # the request, encoded once
    # What a good answer holds (serve.answers): anything else is a failed request.
    expected: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    # gRPC: TF Serving's PredictResponse schema, serialized (serve.answers.predict_schema).
    schema: tuple[bytes, ...] = ()


class ClientFailed(Exception):
    """A client process died or could not run its requests: the cell has no figures."""


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
            return check_rest(response.content, endpoint.expected)

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
            answer = raw(endpoint.body, timeout=timeout)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return check_grpc(answer, endpoint.expected, endpoint.schema)

    return rpc


def _process(
    endpoint: Endpoint,
    counts: list[int],
    warmup: int,
    timeout: float,
    barrier: Any,
    results: Any,
    parent: int,
) -> None:
    """One client process: a thread per entry of counts (timed requests of that thread).

    Its threads meet the other processes' at the barrier once warmed up; a thread that fails
    breaks the barrier, so no thread anywhere waits for one that will never come.
    """
    os.environ["TFTRT_PARENT_PID"] = str(parent)
    die_with_parent()  # a bench that is killed takes its clients with it
    out: list[tuple[list[float], int, str, float, float]] = []
    failures: list[str] = []
    lock = threading.Lock()
    cpu: dict[str, float] = {}
    # Every thread warms up first; none may wait longer than all of them could take.
    patience = timeout * (warmup + 1) + 30

    def thread(timed: int, index: int) -> None:
        try:
            call = _call(endpoint, timeout)
            for _ in range(warmup):
                call()
            barrier.wait(timeout=patience)
        except threading.BrokenBarrierError:
            return  # another thread failed first and said why
        except Exception as exc:
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()
            return
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
    if failures or len(out) < len(counts):
        why = failures[0] if failures else "the clients never all started (barrier broken)"
        results.put(("failed", f"client process {os.getpid()}: {why}"))
        return
    results.put(("done", out, time.process_time() - cpu.get("start", 0.0)))


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
    """Run one cell; returns latencies, errors, wall time and the client's CPU time.

    Raises ClientFailed within about a second of a client process dying (killed, crashed) or
    failing to start its requests; the other clients are stopped.
    """
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
            ctx.Process(
                target=_process,
                args=(endpoint, counts, warmup, timeout, barrier, results, os.getpid()),
                daemon=True,
            )
        )
    for p in procs:
        p.start()
    try:
        gathered = _gather(procs, results, deadline=timeout * (requests + warmup) + 120)
    finally:
        _stop(procs)
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


def _gather(procs: list[Any], results: Any, deadline: float) -> list[tuple[Any, float]]:
    """Each process's result, watching the processes: a dead one ends the wait at once."""
    gathered: list[tuple[Any, float]] = []
    until = time.monotonic() + deadline
    ended_at: float | None = None
    while len(gathered) < len(procs):
        item = _next(results)
        if item is not None:
            if item[0] == "failed":
                raise ClientFailed(item[1])
            gathered.append((item[1], item[2]))
            continue
        dead = next((p for p in procs if p.exitcode not in (None, 0)), None)
        if dead is not None:
            raise ClientFailed(f"client process {dead.pid} died ({_how(dead.exitcode)})")
        if all(p.exitcode is not None for p in procs):
            # All ended well: their results are in the pipe; give them a moment to arrive.
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > 10:
                raise ClientFailed("client processes ended without their results")
        if time.monotonic() > until:
            raise ClientFailed(f"client processes still running after {deadline:.0f} s")
    return gathered


def _next(results: Any) -> Any:
    """The next result, or None when none came within a fifth of a second."""
    try:
        return results.get(timeout=0.2)
    except queue.Empty:
        return None


def _stop(procs: list[Any]) -> None:
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.exitcode is None:
            p.kill()
            p.join()


def _how(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
