"""Run a SavedModel's signature on given inputs: the local reference that verify compares with."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    params = task["params"]
    with np.load(task["inputs"]["batch"]) as data:
        feed = {name: tf.constant(data[name]) for name in data.files}
    model = tf.saved_model.load(task["inputs"]["model"], tags=params["tags"])
    outputs = model.signatures[params["signature"]](**feed)
    np.savez(Path(task["output"]) / "outputs.npz", **{k: v.numpy() for k, v in outputs.items()})
    return {"outputs": sorted(outputs)}
