"""Verify: a running server serves what the bundle holds, and answers what the models compute.

The selection's bundle must be built (``serve.identity.open_bundle``). Then for every served
version: status AVAILABLE; every label pointing at its version; the metadata signature equal to
the artifact's own; and, over REST and gRPC, ``:predict`` on the sample batch of its identity
record answering as that artifact did at build time (tight tolerance; an answer that matches
another recorded artifact is "serving a different model") and as the source model does, within
the profile's tolerances (a converted artifact's source runs here, on the CPU).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tftrt_build.config.profiles import tolerance
from tftrt_build.config.schema import ConverterKind
from tftrt_build.errors import StageError
from tftrt_build.execute.task import Executor, Task
from tftrt_build.plan import ArtifactPlan, Plan
from tftrt_build.serve.client import GrpcClient, Predictor, RestClient, ServingError
from tftrt_build.serve.identity import (
    Bundle,
    Record,
    identity_tolerance,
    judge,
    known_records,
    sample_batch,
)
from tftrt_build.store.cache import Store

# TF Serving's JSON dtype names and ours (TensorFlow's dtype names).
DTYPES = {
    "DT_FLOAT": "float32",
    "DT_HALF": "float16",
    "DT_DOUBLE": "float64",
    "DT_BFLOAT16": "bfloat16",
    "DT_INT8": "int8",
    "DT_INT16": "int16",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_UINT8": "uint8",
    "DT_UINT16": "uint16",
    "DT_UINT32": "uint32",
    "DT_UINT64": "uint64",
    "DT_BOOL": "bool",
    "DT_STRING": "string",
}


@dataclass
class Check:
    model: str
    version: str  # "2" or "label stable"
    what: str  # status, label, metadata, predict (rest), predict (grpc)
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, model: str, version: str, what: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(model, version, what, ok, detail))


def served_signature(metadata: dict[str, Any], key: str) -> dict[str, Any]:
    """TF Serving's metadata JSON of one signature, in the form of our SavedModel reports."""
    if key not in metadata:
        raise ServingError(f"the server has no signature '{key}' (has {sorted(metadata)})")

    def tensors(part: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for name, info in sorted(part.items()):
            shape = info.get("tensor_shape", {})
            dims = (
                None
                if shape.get("unknown_rank")
                else [int(d.get("size", -1)) for d in shape.get("dim", [])]
            )
            found[name] = {
                "dtype": DTYPES.get(info.get("dtype", ""), info.get("dtype")),
                "shape": dims,
            }
        return found

    sig = metadata[key]
    return {"inputs": tensors(sig.get("inputs", {})), "outputs": tensors(sig.get("outputs", {}))}


def source_signature(art: ArtifactPlan, store: Store) -> tuple[Path, dict[str, Any]]:
    """The source SavedModel in the cache and its signature."""
    source = art.source
    lookup = store.lookup(source.key)
    if lookup.entry is None:
        raise StageError(f"the source model of {art.id} is not in the cache; run tftrt-build")
    model = art.artifact.model
    for graph in lookup.entry.report.get("meta_graphs", []):
        if graph["tags"] == sorted(model.tags):
            return lookup.entry.data, graph["signatures"][model.signature]
    raise StageError(f"the cached source of {art.id} has no signature {model.signature}")


def compare(
    reference: dict[str, npt.NDArray[Any]],
    served: dict[str, npt.NDArray[Any]],
    tol: tuple[float, float],
) -> tuple[bool, str]:
    """Max difference per output against atol + rtol * max|reference|; the worst one reported."""
    if "" in served and len(served) == 1 and len(reference) == 1:
        served = {next(iter(reference)): served[""]}
    if sorted(served) != sorted(reference):
        return False, f"outputs {sorted(served)}, expected {sorted(reference)}"
    atol, rtol = tol
    worst = (0.0, "", 0.0)
    for name, ref in reference.items():
        got = np.asarray(served[name], dtype=np.float64)
        if got.shape != ref.shape:
            return False, f"output '{name}' has shape {list(got.shape)}, expected {list(ref.shape)}"
        diff = float(np.abs(got - ref).max()) if ref.size else 0.0
        allowed = atol + rtol * (float(np.abs(ref).max()) if ref.size else 0.0)
        if diff > allowed or np.isnan(diff):
            return False, f"output '{name}' differs by {diff:.3g} (allowed {allowed:.3g})"
        worst = max(worst, (diff, name, allowed))
    return True, f"max difference {worst[0]:.3g} (allowed {worst[2]:.3g})"


def reference_outputs(
    art: ArtifactPlan, source: Path, batch: dict[str, npt.NDArray[Any]], executor: Executor
) -> dict[str, npt.NDArray[Any]]:
    """The source model run locally on the batch, in a stage process."""
    with tempfile.TemporaryDirectory(prefix="tftrt-verify-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "batch.npz", **batch)
        out = folder / "out"
        out.mkdir()
        model = art.artifact.model
        task = Task(
            "predict",
            {"signature": model.signature, "tags": list(model.tags)},
            {"model": source, "batch": folder / "batch.npz"},
            out,
            f"reference outputs of {art.id}",
        )
        executor.run(task, lambda line: None)
        with np.load(out / "outputs.npz") as data:
            return {k: np.asarray(data[k], dtype=np.float64) for k in data.files}


def verify(
    plan: Plan,
    bundle: Bundle,
    store: Store,
    executor: Executor,
    rest: RestClient,
    grpc: GrpcClient | None,
    progress: Callable[[str], None],
) -> Report:
    """Every check of every served version of the bundle (``serve.identity.open_bundle``)."""
    known = known_records(plan, bundle)
    report = Report()
    by_id = {a.id: a for a in plan.artifacts}
    references: dict[tuple[str, int], dict[str, npt.NDArray[Any]]] = {}
    for model in plan.bundle.spec.models:
        for label, number in model.labels:
            try:
                states = rest.status(model.name, label=label)
                ok = [(s.version, s.state) for s in states] == [(number, "AVAILABLE")]
                got = ", ".join(f"{s.version} {s.state}" for s in states)
                report.add(
                    model.name,
                    f"label {label}",
                    "label",
                    ok,
                    f"-> version {got}" if ok else f"-> {got}, expected {number} AVAILABLE",
                )
            except ServingError as exc:
                report.add(model.name, f"label {label}", "label", False, str(exc))
        for v in model.versions:
            art = by_id[v.artifact]
            record = bundle.record(model.name, v.version)
            name, version = model.name, str(v.version)
            progress(f"{name}/{version}")
            try:
                states = rest.status(name, v.version)
            except ServingError as exc:
                report.add(name, version, "status", False, str(exc))
                continue
            state = states[0].state if states else "absent"
            report.add(name, version, "status", state == "AVAILABLE", state)
            if state != "AVAILABLE":
                continue
            try:
                served = served_signature(rest.metadata(name, v.version), model.signature)
                same = served == {k: record.signature[k] for k in ("inputs", "outputs")}
                report.add(
                    name,
                    version,
                    "metadata",
                    same,
                    "signature matches the artifact's"
                    if same
                    else f"served {served}, the artifact's {record.signature}",
                )
            except ServingError as exc:
                report.add(name, version, "metadata", False, str(exc))
            batch = sample_batch(plan, record, art.id)
            key = (art.source.key, record.rows)
            if key not in references:
                references[key] = source_outputs(art, record, batch, store, executor)
            profile = art.artifact.profile
            clients: list[tuple[str, Predictor]] = [("rest", rest)]
            if grpc is not None:
                clients.append(("grpc", grpc))
            for protocol, client in clients:
                try:
                    answer = client.predict(name, batch, model.signature, version=v.version)
                except ServingError as exc:
                    report.add(name, version, f"identity ({protocol})", False, str(exc))
                    continue
                verdict = judge(record, known, answer, identity_tolerance(profile))
                report.add(name, version, f"identity ({protocol})", verdict.ok, verdict.detail)
                ok, detail = compare(references[key], answer, tolerance(profile))
                report.add(name, version, f"predict ({protocol})", ok, detail)
    return report


def source_outputs(
    art: ArtifactPlan,
    record: Record,
    batch: dict[str, npt.NDArray[Any]],
    store: Store,
    executor: Executor,
) -> dict[str, npt.NDArray[Any]]:
    """The source model's outputs on the batch. A native artifact is the source SavedModel
    itself, so its identity record is them; a converted one is compared with its source run
    here."""
    if art.artifact.profile.converter is ConverterKind.native:
        return record.outputs
    source, _ = source_signature(art, store)
    return reference_outputs(art, source, batch, executor)
