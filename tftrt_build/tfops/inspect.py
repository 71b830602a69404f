"""Read a SavedModel's MetaGraphs and signatures from saved_model.pb, without loading variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def describe(path: Path) -> dict[str, Any]:
    from tensorflow.python.framework import dtypes
    from tensorflow.python.saved_model import loader_impl

    def tensor(info: Any) -> dict[str, Any]:
        shape = None
        if not info.tensor_shape.unknown_rank:
            shape = [int(d.size) for d in info.tensor_shape.dim]
        return {"dtype": dtypes.as_dtype(info.dtype).name, "shape": shape}

    proto = loader_impl.parse_saved_model(str(path))
    graphs = []
    for meta in proto.meta_graphs:
        signatures = {
            key: {
                "inputs": {name: tensor(t) for name, t in sorted(sig.inputs.items())},
                "outputs": {name: tensor(t) for name, t in sorted(sig.outputs.items())},
            }
            for key, sig in sorted(meta.signature_def.items())
            if not key.startswith("__")  # __saved_model_init_op and friends
        }
        graphs.append({"tags": sorted(meta.meta_info_def.tags), "signatures": signatures})
    return {"meta_graphs": graphs}


def run(task: dict[str, Any]) -> dict[str, Any]:
    return describe(Path(task["inputs"]["model"]))
