"""``tftrt-deploy``, ``tftrt-verify`` and ``tftrt-bench``: Hydra apps over the same config tree.

The same overrides address the same builds as ``tftrt-build``: ``tftrt-bench target=example``
measures the bundle ``tftrt-build target=example`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.markup import escape
from rich.table import Table

from tftrt_build.cli import BENCH_FILE, entry, guarded, set_exit
from tftrt_build.console import RichUI, console
from tftrt_build.errors import ConfigError, StageError
from tftrt_build.lock import read_lock
from tftrt_build.options import HydraOptions
from tftrt_build.plan import Plan, make_plan
from tftrt_build.resolve import resolve
from tftrt_build.schema import Config, ConverterKind, DeployAction
from tftrt_build.service import make_executor, open_store


def _plan(config: Config, choices: dict[str, str], options: HydraOptions) -> Plan:
    request = resolve(config, choices, options, Path.cwd())
    store = open_store(request, readonly=True)
    executor = make_executor(request.executor, request.cache_dir)
    return make_plan(request, store, executor, read_lock(request.lock_path))


def _host(config: Config) -> str:
    """Where the target's published ports are reached from this machine."""
    host = config.target.ports.host
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def rest_url(config: Config) -> str:
    rest = config.target.ports.rest
    return (config.server.url or f"http://{_host(config)}:{rest}").rstrip("/")


def grpc_address(config: Config) -> str:
    return config.server.grpc or f"{_host(config)}:{config.target.ports.grpc}"


def _run(cfg: DictConfig, body: Any) -> None:
    hc = HydraConfig.get()
    multirun = hc.mode is RunMode.MULTIRUN
    job = " ".join(hc.overrides.task) if multirun else ""
    outcome = guarded(cfg, dict(hc.runtime.choices), job, list(hc.overrides.task), body)
    code = outcome.exit_code if isinstance(outcome, Exception) else outcome[1]
    if multirun and not isinstance(outcome, Exception) and outcome[0]:
        path = Path(hc.runtime.output_dir) / BENCH_FILE
        path.write_text(json.dumps({"code": code, "cells": outcome[0]}))
    set_exit(code)


# -- tftrt-deploy ------------------------------------------------------------------------------


def deploy_job(
    config: Config, choices: dict[str, str], options: HydraOptions, job: str
) -> tuple[list[Any], int]:
    from tftrt_build.serving.client import RestClient
    from tftrt_build.serving.deploy import Stack, down, up

    request = resolve(config, choices, options, Path.cwd())
    stack = Stack.read(request.bundle_dir)
    out = console()
    if config.deploy.action is DeployAction.down:
        down(stack, config.deploy)
        out.print(f"removed {escape(stack.project)}")
        return [], 0
    client = RestClient(rest_url(config), config.server.timeout_s)
    ui = RichUI(config.verbose)
    with ui.stage(f"deploying {stack.project} from {request.bundle_dir.name}") as s:
        running = up(stack, config.deploy, client, s.log)
    table = Table(title=f"{stack.project} is up: every version AVAILABLE", title_justify="left")
    for name in ("model", "versions", "labels", "REST", "gRPC"):
        table.add_column(name)
    for model, versions in stack.versions.items():
        labels = ", ".join(f"{k}->{v}" for k, v in sorted(stack.labels[model].items()))
        table.add_row(
            model,
            ", ".join(map(str, versions)),
            labels or "-",
            f"{rest_url(config)}/v1/models/{model}",
            grpc_address(config),
        )
    out.print(table)
    out.print(
        f"containers: {', '.join(escape(c.get('Name', '?')) for c in running)}; "
        f"remove with: tftrt-deploy {' '.join(_overrides())} deploy.action=down"
    )
    return [], 0


def _overrides() -> list[str]:
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("deploy.action")]


@hydra.main(version_base="1.3", config_path="pkg://tftrt_build.conf", config_name="tftrt_build")
def _deploy_app(cfg: DictConfig) -> None:
    _run(cfg, deploy_job)


def deploy_main() -> None:
    entry(_deploy_app)


# -- tftrt-verify ------------------------------------------------------------------------------


def verify_job(
    config: Config, choices: dict[str, str], options: HydraOptions, job: str
) -> tuple[list[Any], int]:
    from tftrt_build.executors import LocalExecutor
    from tftrt_build.serving.client import GrpcClient, RestClient
    from tftrt_build.serving.verify import verify

    plan = _plan(config, choices, options)
    store = open_store(plan.request, readonly=True)
    rest = RestClient(rest_url(config), config.server.timeout_s)
    grpc = GrpcClient(grpc_address(config), config.server.timeout_s)
    # The reference runs here, on the CPU, whatever executor built the artifacts.
    local = LocalExecutor(cache_dir=plan.request.cache_dir)
    ui = RichUI(config.verbose)
    with ui.stage(f"verifying {rest.url}") as s:
        report = verify(plan, store, local, rest, grpc, s.log)
    table = Table(title=f"verify {rest.url}", title_justify="left")
    for name in ("model", "version", "check", "result", "detail"):
        table.add_column(name)
    for c in report.checks:
        table.add_row(
            escape(c.model),
            escape(c.version),
            c.what,
            "[green]ok[/]" if c.ok else "[red]FAILED[/]",
            escape(c.detail),
        )
    out = console()
    out.print(table)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        first = failed[0]
        raise StageError(
            f"{len(failed)} of {len(report.checks)} checks failed; first: "
            f"{first.model} {first.version} {first.what}: {first.detail}"
        )
    out.print(f"all {len(report.checks)} checks passed")
    return [], 0


@hydra.main(version_base="1.3", config_path="pkg://tftrt_build.conf", config_name="tftrt_build")
def _verify_app(cfg: DictConfig) -> None:
    _run(cfg, verify_job)


def verify_main() -> None:
    entry(_verify_app)


# -- tftrt-bench -------------------------------------------------------------------------------


def bench_job(
    config: Config, choices: dict[str, str], options: HydraOptions, job: str
) -> tuple[list[Any], int]:
    from tftrt_build.samples import config_of, make
    from tftrt_build.serving import bench as b
    from tftrt_build.serving.client import GrpcClient, RestClient, path

    conf = config.bench
    unknown = sorted(set(conf.protocols) - {"rest", "grpc"})
    if unknown:
        raise ConfigError(
            f"unknown protocol '{unknown[0]}' (rest, grpc)",
            key="bench.protocols",
            file="command line",
        )
    plan = _plan(config, choices, options)
    rest = RestClient(rest_url(config), config.server.timeout_s)
    # Only builds the gRPC requests here (the client processes send them).
    grpc = GrpcClient(grpc_address(config)) if "grpc" in conf.protocols else None
    by_id = {a.id: a for a in plan.artifacts}
    cells: list[b.Cell] = []
    ui = RichUI(config.verbose)
    for model in plan.bundle.spec.models:
        labels = {str(n): name for name, n in model.labels}
        for v in model.versions:
            wanted = {str(v.version), labels.get(str(v.version), "")}
            if conf.versions and not wanted & set(conf.versions):
                continue
            art = by_id[v.artifact]
            m = art.artifact.model
            specs, samples = config_of(m)
            for batch in conf.batch_sizes:
                inputs = make(specs, samples, rows=batch, project=plan.request.project)
                bodies: dict[str, b.Endpoint] = {}
                if "rest" in conf.protocols:
                    url = f"{rest.url}{path(model.name, v.version)}:predict"
                    bodies["rest"] = b.Endpoint(
                        "rest", url, rest.predict_body(inputs, model.signature)
                    )
                if grpc is not None:
                    request = grpc.request(model.name, inputs, model.signature, v.version)
                    bodies["grpc"] = b.Endpoint("grpc", grpc.target, request.SerializeToString())
                for protocol, endpoint in bodies.items():
                    for concurrency in conf.concurrency:
                        title = (
                            f"{model.name} v{v.version} ({v.profile}) {protocol} batch "
                            f"{batch} x{concurrency}"
                        )
                        with ui.stage(title):
                            raw = b.measure(
                                endpoint,
                                concurrency,
                                conf.requests,
                                conf.warmup,
                                conf.processes,
                                config.server.timeout_s,
                            )
                        cells.append(
                            b.fill(
                                b.Cell(
                                    model.name,
                                    str(v.version),
                                    v.profile,
                                    protocol,
                                    batch,
                                    concurrency,
                                ),
                                raw,
                            )
                        )
    if not cells:
        raise ConfigError(
            f"no served version matches {conf.versions}", key="bench.versions", file="command line"
        )
    native = {
        a.artifact.profile.name
        for a in plan.artifacts
        if a.artifact.profile.converter is ConverterKind.native
    }
    b.speedups(cells, lambda c: c.profile in native)
    folder = plan.request.project / conf.output_dir / plan.request.bundle_dir.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.json").write_text(
        json.dumps([{**c.summary(), "latencies_ms": c.latencies_ms} for c in cells])
    )
    (folder / "summary.json").write_text(json.dumps([c.summary() for c in cells], indent=1))
    (folder / "summary.md").write_text(b.markdown(cells))
    b.plot(cells, folder / "latency.png")
    out = console()
    out.print(bench_table([c.summary() for c in cells], f"tftrt-bench {rest.url}"))
    out.print(
        f"results: {escape(str(folder))}/ (samples.json, summary.json, summary.md, latency.png)"
    )
    invalid = [c for c in cells if not c.valid]
    if invalid:
        c = invalid[0]
        raise StageError(
            f"{len(invalid)} of {len(cells)} cells had failed requests and are "
            f"not figures; first: {c.model} v{c.version} {c.protocol}: "
            f"{c.errors} failed ({c.first_error})"
        )
    return [c.summary() for c in cells], 0


def bench_table(cells: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in (
        "model",
        "version",
        "profile",
        "protocol",
        "batch",
        "conc",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "req/s",
        "speed-up",
        "note",
    ):
        table.add_column(
            name,
            justify="right"
            if name in ("batch", "conc", "p50 ms", "p90 ms", "p99 ms", "req/s")
            else "left",
        )
    for c in cells:
        note = "" if c["valid"] else f"[red]INVALID[/]: {c['errors']} failed"
        if c["valid"] and c["client_bound"]:
            note = f"[yellow]client-bound[/] (ceiling {c['client_ceiling_rps']:.0f}/s)"
        speed = f"{c['speedup']:.2f}x" if c.get("speedup") else "-"
        table.add_row(
            escape(c["model"]),
            c["version"],
            escape(c["profile"]),
            c["protocol"],
            str(c["batch"]),
            str(c["concurrency"]),
            f"{c['p50_ms']:.2f}",
            f"{c['p90_ms']:.2f}",
            f"{c['p99_ms']:.2f}",
            f"{c['throughput_rps']:.0f}",
            speed,
            note,
        )
    return table


def sweep_bench_table(files: list[Path], out: Any) -> int:
    """One comparison table for a bench sweep: speed-ups against the native jobs' cells."""
    from tftrt_build.serving.bench import Cell, speedups

    cells: list[Cell] = []
    worst = 0
    for f in files:
        data = json.loads(f.read_text())
        worst = max(worst, int(data["code"]))
        for c in data["cells"]:
            cell = Cell(**{k: v for k, v in c.items() if k not in ("valid", "speedup")})
            cells.append(cell)
    native = {c.profile for c in cells if c.profile.startswith("native")}
    for c in cells:
        c.speedup = None
    speedups(cells, lambda c: c.profile in native)
    out.print(bench_table([c.summary() for c in cells], "tftrt-bench sweep"))
    return worst


@hydra.main(version_base="1.3", config_path="pkg://tftrt_build.conf", config_name="tftrt_build")
def _bench_app(cfg: DictConfig) -> None:
    _run(cfg, bench_job)


def bench_main() -> None:
    entry(_bench_app)


__all__ = ["bench_main", "deploy_main", "verify_main"]
