"""Export a SavedModel from a script in models/, reproducibly.

A script defines ``build(**args) -> keras.Model`` (preferred) or ``export(output_dir, **args)``.
For ``build`` the runner saves the model itself with ``tf.saved_model.save`` over the model's
variables in layer order and a serving function built from the declared inputs: Keras 3's
``Model.export`` orders variables differently from run to run for ResNet50, so two exports of
the same weights differ byte for byte; this way they do not (see README, "Reproducibility").
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tftrt_build.execute.task import StageMismatch
from tftrt_build.tfops.inspect import describe


def _load_script(path: Path) -> ModuleType:
    # The script's folder goes on sys.path so it can import its helpers, but last: a
    # neighbour named like a module of Python or of an installed package (a json.py beside a
    # script at the project root) must not replace it.
    sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"tftrt_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_everything(seed: int) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _named_outputs(result: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(result, dict):
        if names and sorted(names) != sorted(result):
            raise StageMismatch(
                "model.outputs",
                f"the model's outputs are {', '.join(sorted(result))}, not {', '.join(names)}",
            )
        return dict(result)
    values = list(result) if isinstance(result, list | tuple) else [result]
    names = names or [f"output_{i}" for i in range(len(values))]
    if len(names) != len(values):
        raise StageMismatch(
            "model.outputs",
            f"names {len(names)} outputs ({', '.join(names)}), but the model has {len(values)}",
        )
    return dict(zip(names, values, strict=True))


def save_keras(model: Any, output: Path, params: dict[str, Any]) -> None:
    import tensorflow as tf

    specs = [
        tf.TensorSpec(
            [None if d < 0 else d for d in spec["shape"]], tf.as_dtype(spec["dtype"]), spec["name"]
        )
        for spec in params["inputs"]
    ]
    names = list(params["outputs"])

    def serve(*tensors: Any) -> dict[str, Any]:
        features = tensors[0] if len(tensors) == 1 else list(tensors)
        return _named_outputs(model(features, training=False), names)

    function = tf.function(serve, input_signature=specs)
    holder = tf.Module()
    # Tracking the variables in layer order is what makes the checkpoint byte-stable.
    holder.ordered_variables = [getattr(v, "value", v) for v in model.variables]
    holder.serve = function
    tf.saved_model.save(
        holder, str(output), signatures={params["signature"]: function.get_concrete_function()}
    )


def run(task: dict[str, Any]) -> dict[str, Any]:
    params = task["params"]
    output = Path(task["output"])
    script = Path(task["inputs"]["script"])
    seed_everything(int(params["seed"]))
    module = _load_script(script)
    args = dict(params["args"])
    if callable(getattr(module, "build", None)):
        save_keras(module.build(**args), output, params)
    elif callable(getattr(module, "export", None)):
        module.export(str(output), **args)
    else:
        raise AttributeError(f"{script.name} defines neither build(**args) nor export(dir, **args)")
    if not (output / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{script.name} wrote no saved_model.pb")
    return describe(output)
