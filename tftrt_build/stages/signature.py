"""A SavedModel must have what its model config declares: tag set, signature, inputs, outputs."""

from __future__ import annotations

from typing import Any

from tftrt_build.config.schema import ModelConf
from tftrt_build.errors import ConfigError, did_you_mean


def check_signature(model: ModelConf, report: dict[str, Any], file: str | None) -> None:
    """The SavedModel must have the model's tag set, signature and declared inputs."""
    graphs = report.get("meta_graphs", [])
    wanted = sorted(model.tags)
    graph = next((g for g in graphs if g["tags"] == wanted), None)
    if graph is None:
        have = "; ".join(",".join(g["tags"]) for g in graphs) or "none"
        raise ConfigError(
            f"no MetaGraph has tags {wanted} (tag sets: {have})", key="model.tags", file=file
        )
    signatures = graph["signatures"]
    if model.signature not in signatures:
        raise ConfigError(
            f"the SavedModel has no signature '{model.signature}' "
            f"(signatures: {', '.join(sorted(signatures)) or 'none'})",
            key="model.signature",
            file=file,
            hint=did_you_mean(model.signature, signatures),
        )
    sig = signatures[model.signature]
    for i, spec in enumerate(model.inputs):
        actual = sig["inputs"].get(spec.name)
        if actual is None:
            raise ConfigError(
                f"'{spec.name}' is not an input of signature '{model.signature}' "
                f"(inputs: {', '.join(sorted(sig['inputs']))})",
                key=f"model.inputs[{i}].name",
                file=file,
                hint=did_you_mean(spec.name, sig["inputs"]),
            )
        if actual["dtype"] != spec.dtype:
            raise ConfigError(
                f"the SavedModel's '{spec.name}' is {actual['dtype']}, not {spec.dtype}",
                key=f"model.inputs[{i}].dtype",
                file=file,
            )
        shape = actual["shape"]
        if shape is not None and not _compatible(shape, list(spec.shape)):
            raise ConfigError(
                f"the SavedModel's '{spec.name}' has shape {shape}, not {list(spec.shape)}",
                key=f"model.inputs[{i}].shape",
                file=file,
            )
    declared = {spec.name for spec in model.inputs}
    if missing := sorted(set(sig["inputs"]) - declared):
        raise ConfigError(
            f"signature '{model.signature}' also needs input '{missing[0]}'; declare it",
            key="model.inputs",
            file=file,
        )
    for i, name in enumerate(model.outputs):
        if name not in sig["outputs"]:
            raise ConfigError(
                f"'{name}' is not an output of signature '{model.signature}' "
                f"(outputs: {', '.join(sorted(sig['outputs']))})",
                key=f"model.outputs[{i}]",
                file=file,
                hint=did_you_mean(name, sig["outputs"]),
            )


def _compatible(actual: list[int], declared: list[int]) -> bool:
    return len(actual) == len(declared) and all(
        a == d or a == -1 or d == -1 for a, d in zip(actual, declared, strict=True)
    )
