"""Sample inputs from a model's ``samples`` config: the same arrays on every machine.

Used for correctness checks, INT8 calibration and warm-up. Needs NumPy only (no TensorFlow),
and takes plain dicts so the stage process can call it with what its task carries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tftrt_build.config.paths import find_file

_NUMPY_DTYPES = {"half": "float16", "double": "float64", "bfloat16": "float32"}


def _shape(spec: dict[str, Any], rows: int) -> list[int]:
    dims = list(spec["shape"][1:])
    if any(d < 0 for d in dims):
        raise ValueError(
            f"input '{spec['name']}' has a dimension of unknown size {spec['shape']}; "
            "sample inputs need every size but the batch"
        )
    return [rows, *dims]


def from_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task's samples config, with the samples file where the executor put it."""
    samples = dict(task["params"]["samples"])
    if "samples" in task.get("inputs", {}):
        samples["path"] = task["inputs"]["samples"]
    return samples


def make(
    inputs: list[dict[str, Any]],
    samples: dict[str, Any],
    rows: int | None = None,
    seed_offset: int = 0,
    project: Path | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """One batch of ``rows`` examples (default ``samples.count``) per input name."""
    rows = rows or int(samples["count"])
    kind = samples["kind"]
    if kind == "file":
        path = Path(samples["path"])
        if project is not None:
            # Where the stages find it too: in the project, else among tftrt-build's models/.
            path = find_file(samples["path"], project, "model.samples.path", None)
        with np.load(path) as data:
            arrays = {spec["name"]: np.asarray(data[spec["name"]]) for spec in inputs}
        return {name: _take(array, rows) for name, array in arrays.items()}
    rng = np.random.default_rng(int(samples["seed"]) + seed_offset)
    batch: dict[str, npt.NDArray[Any]] = {}
    for spec in inputs:
        dtype = np.dtype(_NUMPY_DTYPES.get(spec["dtype"], spec["dtype"]))
        if spec["dtype"] == "string":
            raise ValueError(
                f"input '{spec['name']}' is a string; give its samples as a file "
                "(samples.kind=file)"
            )
        shape = _shape(spec, rows)
        if kind == "zeros":
            batch[spec["name"]] = np.zeros(shape, dtype)
        elif np.issubdtype(dtype, np.integer):
            batch[spec["name"]] = rng.integers(
                int(samples["low"]), int(samples["high"]), shape
            ).astype(dtype)
        elif dtype == np.bool_:
            batch[spec["name"]] = rng.random(shape) < 0.5
        else:
            batch[spec["name"]] = rng.uniform(samples["low"], samples["high"], shape).astype(dtype)
    return batch


def _take(array: npt.NDArray[Any], rows: int) -> npt.NDArray[Any]:
    """The first ``rows`` examples, repeated if the file holds fewer."""
    reps = -(-rows // len(array))
    taken: npt.NDArray[Any] = np.concatenate([array] * reps)[:rows]
    return taken


def batch_digest(batch: dict[str, npt.NDArray[Any]]) -> str:
    """sha256 of a batch: names, dtypes, shapes and bytes, so two sides can tell they sent the
    same inputs (the identity record of an artifact names the batch it was run on)."""
    h = hashlib.sha256()
    for name in sorted(batch):
        array = np.ascontiguousarray(batch[name])
        h.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        h.update(array.tobytes())
    return h.hexdigest()
