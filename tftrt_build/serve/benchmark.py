"""A benchmark run: which cells to measure for a built bundle, measuring them, and the results.

The cells are every (version, protocol, batch size, concurrency) the ``bench`` config asks for,
over the versions the bundle serves; each is measured by ``serve.bench`` and the results are
written to one folder per bundle. Printing is the CLI's.
"""

from __future__ import annotations

import json
from pathlib import Path

from tftrt_build.build.ui import UI
from tftrt_build.config.schema import BenchConf, ServerConf
from tftrt_build.errors import ConfigError, StageError
from tftrt_build.plan import Plan
from tftrt_build.serve import bench as b
from tftrt_build.serve.client import GrpcClient, RestClient, path
from tftrt_build.stages.samples import make

RESULT_FILES = ("samples.json", "summary.json", "summary.md", "latency.png")


def run(
    plan: Plan, conf: BenchConf, server: ServerConf, rest_url: str, grpc_address: str, ui: UI
) -> list[b.Cell]:
    """Measure every cell the bench config asks for; speed-ups against the native versions.

    The bench keys were checked with the rest of the config (``config.commands``).
    """
    rest = RestClient(rest_url, server.timeout_s)
    # Only builds the gRPC requests here (the client processes send them).
    grpc = GrpcClient(grpc_address) if "grpc" in conf.protocols else None
    by_id = {a.id: a for a in plan.artifacts}
    cells: list[b.Cell] = []
    for model in plan.bundle.spec.models:
        labels = {str(n): name for name, n in model.labels}
        for v in model.versions:
            wanted = {str(v.version), labels.get(str(v.version), "")}
            if conf.versions and not wanted & set(conf.versions):
                continue
            m = by_id[v.artifact].artifact.model
            for batch in conf.batch_sizes:
                inputs = make(
                    m.input_specs(), m.samples.to_params(), rows=batch, project=plan.request.project
                )
                endpoints: dict[str, b.Endpoint] = {}
                if "rest" in conf.protocols:
                    url = f"{rest.url}{path(model.name, v.version)}:predict"
                    endpoints["rest"] = b.Endpoint(
                        "rest", url, rest.predict_body(inputs, model.signature)
                    )
                if grpc is not None:
                    request = grpc.request(model.name, inputs, model.signature, v.version)
                    endpoints["grpc"] = b.Endpoint("grpc", grpc.target, request.SerializeToString())
                for protocol, endpoint in endpoints.items():
                    for concurrency in conf.concurrency:
                        cell = b.Cell(
                            model.name,
                            str(v.version),
                            v.profile,
                            v.converter,
                            protocol,
                            batch,
                            concurrency,
                        )
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
                                server.timeout_s,
                            )
                        cells.append(b.fill(cell, raw))
    if not cells:
        raise ConfigError(
            f"no served version matches {conf.versions}", key="bench.versions", file="command line"
        )
    b.speedups(cells)
    return cells


def write_results(cells: list[b.Cell], folder: Path) -> None:
    """samples.json (every latency), summary.json, summary.md and latency.png."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.json").write_text(
        json.dumps([{**c.summary(), "latencies_ms": c.latencies_ms} for c in cells])
    )
    (folder / "summary.json").write_text(json.dumps([c.summary() for c in cells], indent=1))
    (folder / "summary.md").write_text(b.markdown(cells))
    b.plot(cells, folder / "latency.png")


def check_valid(cells: list[b.Cell]) -> None:
    """A cell with failed requests is not a figure: the run fails, naming the first."""
    invalid = [c for c in cells if not c.valid]
    if invalid:
        c = invalid[0]
        raise StageError(
            f"{len(invalid)} of {len(cells)} cells had failed requests and are "
            f"not figures; first: {c.model} v{c.version} {c.protocol}: "
            f"{c.errors} failed ({c.first_error})"
        )
