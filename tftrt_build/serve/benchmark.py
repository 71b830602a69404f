"""A benchmark run: which cells to measure for a built bundle, measuring them, and the results.

Nothing is measured before three things are known, each in seconds: the selection's bundle is
built (``serve.identity.open_bundle``), the server answers and every selected version is
AVAILABLE, and each version answers, over each protocol, as the artifact its bundle holds
(one request with the sample batch of its identity record). Then the cells are every (version,
protocol, batch size, concurrency) the ``bench`` config asks for, each measured by
``serve.load``; the results of a run that measured every cell are written to one folder per
bundle, replacing the last. Printing is the CLI's.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from tftrt_build.build.ui import UI
from tftrt_build.config.schema import BenchConf, ServerConf
from tftrt_build.emit.spec import BundleModel, BundleVersion
from tftrt_build.errors import ConfigError, StageError
from tftrt_build.plan import Plan
from tftrt_build.serve import bench as b
from tftrt_build.serve.answers import expected_for, predict_schema
from tftrt_build.serve.client import GrpcClient, Predictor, RestClient, ServingError, path
from tftrt_build.serve.identity import (
    Record,
    identity_tolerance,
    judge,
    known_records,
    open_bundle,
    sample_batch,
)
from tftrt_build.serve.load import ClientFailed, Endpoint, measure
from tftrt_build.stages.samples import make
from tftrt_build.store.fs import replace_dir

RESULT_FILES = ("samples.json", "summary.json", "summary.md", "latency.png")


@dataclass(frozen=True)
class Selected:
    """A served version the bench config asks for, with its identity record."""

    model: BundleModel
    version: BundleVersion
    record: Record

    @property
    def title(self) -> str:
        return f"{self.model.name} v{self.version.version} ({self.version.profile})"


def select(plan: Plan, conf: BenchConf, records: dict[tuple[str, int], Record]) -> list[Selected]:
    chosen = []
    for model in plan.bundle.spec.models:
        labels = {str(n): name for name, n in model.labels}
        for v in model.versions:
            wanted = {str(v.version), labels.get(str(v.version), "")}
            if conf.versions and not wanted & set(conf.versions):
                continue
            chosen.append(Selected(model, v, records[(model.name, v.version)]))
    if not chosen:
        raise ConfigError(
            f"no served version matches {conf.versions}", key="bench.versions", file="command line"
        )
    return chosen


def check_available(rest: RestClient, chosen: list[Selected]) -> None:
    """The server answers and every selected version is AVAILABLE: seconds, not cells."""
    for name in dict.fromkeys(s.model.name for s in chosen):
        try:
            states = {st.version: st.state for st in rest.status(name)}
        except ServingError as exc:
            raise StageError(f"nothing measured: {exc}") from exc
        for s in chosen:
            state = states.get(s.version.version, "absent")
            if s.model.name == name and state != "AVAILABLE":
                raise StageError(f"nothing measured: {s.title} is {state} on {rest.url}")


def check_identity(
    plan: Plan, clients: dict[str, Predictor], chosen: list[Selected], known: list[Record]
) -> None:
    """Each version answers, over each protocol, as the artifact its bundle holds."""
    by_id = {a.id: a for a in plan.artifacts}
    for s in chosen:
        batch = sample_batch(plan, s.record, s.version.artifact)
        tol = identity_tolerance(by_id[s.version.artifact].artifact.profile)
        for protocol, client in clients.items():
            try:
                answer = client.predict(
                    s.model.name, batch, s.model.signature, version=s.version.version
                )
            except ServingError as exc:
                raise StageError(f"nothing measured: {s.title} over {protocol}: {exc}") from exc
            verdict = judge(s.record, known, answer, tol)
            if not verdict.ok:
                raise StageError(f"nothing measured: {s.title} over {protocol}: {verdict.detail}")


def run(
    plan: Plan, conf: BenchConf, server: ServerConf, rest_url: str, grpc_address: str, ui: UI
) -> list[b.Cell]:
    """Measure every cell the bench config asks for; speed-ups against the native versions.

    The bench keys were checked with the rest of the config (``config.commands``).
    """
    bundle = open_bundle(plan)
    chosen = select(plan, conf, bundle.records)
    rest = RestClient(rest_url, server.timeout_s)
    check_available(rest, chosen)
    clients: dict[str, Predictor] = {}
    if "rest" in conf.protocols:
        clients["rest"] = rest
    # Imports TF Serving's messages (and so TensorFlow): only once the server is known to answer.
    grpc = GrpcClient(grpc_address, server.timeout_s) if "grpc" in conf.protocols else None
    if grpc is not None:
        clients["grpc"] = grpc
    check_identity(plan, clients, chosen, known_records(plan, bundle))
    schema = predict_schema() if grpc is not None else ()
    by_id = {a.id: a for a in plan.artifacts}
    cells: list[b.Cell] = []
    for s in chosen:
        model, v, record = s.model, s.version, s.record
        m = by_id[v.artifact].artifact.model
        outputs = {
            name: (str(record.signature["outputs"][name]["dtype"]), list(array.shape))
            for name, array in record.outputs.items()
        }
        for batch in conf.batch_sizes:
            inputs = make(
                m.input_specs(), m.samples.to_params(), rows=batch, project=plan.request.project
            )
            expected = expected_for(outputs, batch)
            endpoints: dict[str, Endpoint] = {}
            if "rest" in conf.protocols:
                url = f"{rest.url}{path(model.name, v.version)}:predict"
                endpoints["rest"] = Endpoint(
                    "rest", url, rest.predict_body(inputs, model.signature), expected
                )
            if grpc is not None:
                request = grpc.request(model.name, inputs, model.signature, v.version)
                endpoints["grpc"] = Endpoint(
                    "grpc", grpc.target, request.SerializeToString(), expected, schema
                )
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
                        artifact=v.key[:12],
                    )
                    title = f"{s.title} {protocol} batch {batch} x{concurrency}"
                    with ui.stage(title):
                        try:
                            raw = measure(
                                endpoint,
                                concurrency,
                                conf.requests,
                                conf.warmup,
                                conf.processes,
                                server.timeout_s,
                            )
                        except ClientFailed as exc:
                            raise StageError(f"{title}: {exc}; no results written") from exc
                    cells.append(b.fill(cell, raw))
    b.speedups(cells)
    return cells


def write_results(cells: list[b.Cell], folder: Path) -> None:
    """samples.json (every latency), summary.json, summary.md and latency.png, replacing the
    folder of the last run whole (a reader never sees two runs mixed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        staged.mkdir()
        (staged / "samples.json").write_text(
            json.dumps([{**c.summary(), "latencies_ms": c.latencies_ms} for c in cells])
        )
        (staged / "summary.json").write_text(json.dumps([c.summary() for c in cells], indent=1))
        (staged / "summary.md").write_text(b.markdown(cells))
        b.plot(cells, staged / "latency.png")
        replace_dir(staged, folder)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


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
