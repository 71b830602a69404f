"""An artifact's identity record: its own outputs on the model's sample inputs, its signature
and its SavedModel fingerprint.

Run on the built artifact by the executor that built it (a TF-TRT artifact needs the GPU it was
converted for), once per artifact and sample batch, and kept in the bundle beside the version,
so verify and bench can tell whether a server answers with this artifact or with another one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tftrt_build.execute.task import IDENTITY_FILE
from tftrt_build.tfops.inspect import describe

# Bump when the record's fields change; readers refuse a format they do not know.
FORMAT = 1


def fingerprint(path: Path) -> dict[str, str] | None:
    """The hashes of the SavedModel's fingerprint.pb, or None for a model saved without one
    (TensorFlow < 2.12 did not write it)."""
    import tensorflow as tf

    try:
        fp = tf.saved_model.experimental.read_fingerprint(str(path))
    except FileNotFoundError:
        return None
    return {
        name: str(getattr(fp, name))
        for name in (
            "saved_model_checksum",
            "graph_def_program_hash",
            "signature_def_hash",
            "saved_object_graph_hash",
            "checkpoint_hash",
        )
    }


def run(task: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    from tftrt_build.stages.samples import batch_digest, from_task, make

    params = task["params"]
    model_dir = Path(task["inputs"]["model"])
    batch = make(params["inputs"], from_task(task), rows=int(params["rows"]))
    model = tf.saved_model.load(str(model_dir), tags=params["tags"])
    outputs = model.signatures[params["signature"]](
        **{name: tf.constant(value) for name, value in batch.items()}
    )
    signatures = next(
        g["signatures"]
        for g in describe(model_dir)["meta_graphs"]
        if g["tags"] == sorted(params["tags"])
    )
    record = {
        "format": FORMAT,
        "inputs": {"rows": int(params["rows"]), "digest": batch_digest(batch)},
        "signature": signatures[params["signature"]],
        "fingerprint": fingerprint(model_dir),
        "outputs": {
            name: {
                "dtype": value.dtype.name,
                "shape": list(value.shape),
                # Python floats print with every digit they need: the values read back exactly.
                "values": value.numpy().tolist(),
            }
            for name, value in sorted(outputs.items())
        },
    }
    (Path(task["output"]) / IDENTITY_FILE).write_text(json.dumps(record, sort_keys=True))
    return {"outputs": sorted(outputs), "rows": record["inputs"]["rows"]}
