"""Which artifact a server answers with: its answers against the bundle's identity records.

A TF Serving server says which model name and version it serves, never which bytes. So before
verify or bench report anything about a version, they send it the sample batch its identity
record was made with (``verify/<model>/<version>.json``, written at build time by running the
built artifact) and compare the answer with that record under a tight tolerance. A version
that answers like another recorded artifact (another version of the bundle, or a version of
another bundle of the project) is "serving a different model"; one that answers like no
recorded artifact is not the artifact the bundle holds either. Both are failures.

The bundle itself must exist and be the one the configs describe: a selection whose bundle was
never built, or was built from other configs, is refused with the command that builds it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tftrt_build.config.profiles import tolerance
from tftrt_build.config.schema import ConverterKind, ProfileConf
from tftrt_build.emit import identity as records
from tftrt_build.emit import manifest
from tftrt_build.errors import StageError
from tftrt_build.plan import Plan
from tftrt_build.stages.samples import batch_digest, make

Arrays = dict[str, npt.NDArray[Any]]
# A TF-TRT version must answer within this share of its profile's tolerance of its own record:
# the same engines on the same GPU architecture differ from themselves by far less than from
# the source model.
IDENTITY_SHARE = 0.1


def identity_tolerance(profile: ProfileConf) -> tuple[float, float]:
    """(atol, rtol) between a served version and its own record."""
    atol, rtol = tolerance(profile)
    if profile.converter is ConverterKind.native:
        return atol, rtol  # the same SavedModel: rounding only (NATIVE_TOLERANCE)
    return atol * IDENTITY_SHARE, rtol * IDENTITY_SHARE


@dataclass(frozen=True)
class Record:
    """One identity record, as read back from a bundle."""

    bundle: str  # the bundle folder, relative to the project
    model: str
    version: int
    artifact: str
    key: str  # the artifact's convert key
    inputs_digest: str
    rows: int
    signature: dict[str, Any]
    outputs: Arrays

    def describe(self) -> str:
        return (
            f"{self.artifact} (key {self.key[:12]}; {self.bundle} serves it as "
            f"{self.model}/{self.version})"
        )


def read_record(path: Path, bundle: str) -> Record:
    """A record file; OSError or ValueError when it is missing or not a record."""
    doc = records.parse(path.read_text())
    try:
        outputs = {
            name: np.asarray(out["values"], dtype=np.float64).reshape(out["shape"])
            for name, out in doc["outputs"].items()
        }
        return Record(
            bundle,
            str(doc["model"]),
            int(doc["version"]),
            str(doc["artifact"]),
            str(doc["key"]),
            str(doc["inputs"]["digest"]),
            int(doc["inputs"]["rows"]),
            dict(doc["signature"]),
            outputs,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"identity record without {exc}") from exc


@dataclass
class Bundle:
    """The built bundle a selection names, with the identity record of each version."""

    path: Path
    id: str
    command: str
    records: dict[tuple[str, int], Record]

    def record(self, model: str, version: int) -> Record:
        return self.records[(model, version)]


def open_bundle(plan: Plan) -> Bundle:
    """The selection's bundle as built, refused unless it serves what these configs select.

    Only what is served counts (models, versions, labels, artifact keys): a bundle built with
    other ports or restart policy still holds the same models.
    """
    folder, bundle_id = plan.request.bundle_dir, plan.bundle_id
    command = plan.bundle.spec.command
    try:
        doc = json.loads((folder / manifest.PATH).read_text())
        built = {
            (m["name"], int(v["version"])): str(v["key"])
            for m in doc["models"]
            for v in m["versions"]
        }
        labels = {m["name"]: dict(m["labels"]) for m in doc["models"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StageError(f"no bundle {bundle_id}; run {command}") from exc
    wanted = {(m.name, v.version): v.key for m in plan.bundle.spec.models for v in m.versions}
    for (name, version), key in sorted(wanted.items()):
        if built.get((name, version)) != key:
            have = (built.get((name, version)) or "nothing")[:12]
            raise StageError(
                f"bundle {bundle_id} serves {have} as {name}/{version}, these configs select "
                f"{key[:12]}; run {command}"
            )
    extra = sorted(set(built) - set(wanted))
    stale_labels = [m.name for m in plan.bundle.spec.models if labels.get(m.name) != dict(m.labels)]
    if extra or stale_labels:
        what = f"{extra[0][0]}/{extra[0][1]}" if extra else f"other labels of {stale_labels[0]}"
        raise StageError(f"bundle {bundle_id} also serves {what}; run {command}")
    found: dict[tuple[str, int], Record] = {}
    for (name, version), key in wanted.items():
        path = records.path(name, version)
        try:
            record = read_record(folder / path, bundle_id)
        except (OSError, ValueError) as exc:
            raise StageError(
                f"bundle {bundle_id} has no readable identity record {path} ({exc}); run {command}"
            ) from exc
        if record.key != key:
            raise StageError(
                f"{bundle_id}/{path} records artifact {record.key[:12]}, not {key[:12]}; "
                f"run {command}"
            )
        found[(name, version)] = record
    return Bundle(folder, bundle_id, command, found)


def known_records(plan: Plan, bundle: Bundle) -> list[Record]:
    """Every identity record of the project: this bundle's and those of the bundles the lock
    names, so an answer can be traced to the artifact it came from."""
    found = list(bundle.records.values())
    for other in sorted(plan.lock.bundles):
        if other == bundle.id:
            continue
        folder = plan.request.project / other / records.FOLDER
        for path in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
            try:
                found.append(read_record(path, other))
            except (OSError, ValueError):
                continue  # a damaged record of another bundle only narrows the search
    return found


def sample_batch(plan: Plan, record: Record, artifact_id: str) -> Arrays:
    """The batch the record was made with, made again from the model's samples config."""
    art = next(a for a in plan.artifacts if a.id == artifact_id).artifact
    batch = make(
        art.model.input_specs(),
        art.model.samples.to_params(),
        rows=record.rows,
        project=plan.request.project,
    )
    if batch_digest(batch) != record.inputs_digest:
        raise StageError(
            f"the sample inputs of {record.model}/{record.version} are not those its identity "
            "record was made with (model.samples or its file changed); run "
            f"{plan.bundle.spec.command}"
        )
    return batch


def score(reference: Arrays, served: Arrays, tol: tuple[float, float]) -> tuple[float, str]:
    """How far an answer is from a record: the worst output's difference over what ``tol``
    allows (at most 1 passes; inf when the output names or shapes differ), and in words."""
    if "" in served and len(served) == 1 and len(reference) == 1:
        served = {next(iter(reference)): served[""]}  # one output comes without its name
    if sorted(served) != sorted(reference):
        return math.inf, f"name other outputs ({sorted(served)}, recorded {sorted(reference)})"
    atol, rtol = tol
    worst, words = 0.0, "are equal"
    for name, ref in reference.items():
        try:
            got = np.asarray(served[name], dtype=np.float64)
        except (TypeError, ValueError):
            return math.inf, f"hold no numbers for '{name}'"
        if got.shape != ref.shape:
            return math.inf, f"give '{name}' shape {list(got.shape)}, recorded {list(ref.shape)}"
        if not ref.size:
            continue
        diff = float(np.abs(got - ref).max())
        allowed = atol + rtol * float(np.abs(ref).max())
        if math.isnan(diff):
            return math.inf, f"give NaN for '{name}'"
        ratio = diff / allowed if allowed else (0.0 if diff == 0 else math.inf)
        if ratio >= worst:
            worst, words = ratio, f"differ in '{name}' by {diff:.3g} (allowed {allowed:.3g})"
    return worst, words


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


def judge(own: Record, known: list[Record], served: Arrays, tol: tuple[float, float]) -> Verdict:
    """Does the answer come from the version's own artifact? Else, from which one?"""
    own_score, words = score(own.outputs, served, tol)
    if own_score <= 1:
        return Verdict(True, f"answers as {own.artifact} (key {own.key[:12]}) recorded at build")
    alike = [
        r
        for r in known
        if r.key != own.key
        and r.inputs_digest == own.inputs_digest
        and score(r.outputs, served, tol)[0] <= 1
    ]
    if alike:
        return Verdict(
            False,
            f"serving a different model: the answers match {alike[0].describe()}, not "
            f"{own.artifact} (key {own.key[:12]}); against its recorded outputs they {words}",
        )
    return Verdict(
        False,
        f"not the artifact the bundle holds: against the outputs recorded for {own.artifact} "
        f"(key {own.key[:12]}) the answers {words}, and they match no other artifact recorded "
        "in this project",
    )
