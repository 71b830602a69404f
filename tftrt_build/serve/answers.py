"""Is an answer a prediction? The check a bench client applies to every response it times.

A server that answers HTTP 200 (or gRPC OK) with bytes that are not a prediction of the
expected outputs has failed that request, whatever its latency. REST answers must be JSON with
``outputs`` of the expected names and shapes; gRPC answers must parse as TF Serving's
``PredictResponse`` with tensors of the expected names, dtypes and shapes, holding as many
values as their shape says.

The gRPC schema is TF Serving's own, handed to the client processes as serialized file
descriptors (``predict_schema``, made where tensorflow-serving-api is already imported), so
the clients parse responses without importing TensorFlow.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

# output name -> (TensorFlow dtype name, shape of this batch's answer)
Expected = dict[str, tuple[str, tuple[int, ...]]]
# TensorProto's repeated value field for each dtype (tensor.proto), when tensor_content is empty.
_VALUE_FIELDS = {
    "float32": "float_val",
    "float64": "double_val",
    "float16": "half_val",
    "bfloat16": "half_val",
    "int8": "int_val",
    "int16": "int_val",
    "int32": "int_val",
    "uint8": "int_val",
    "uint16": "int_val",
    "int64": "int64_val",
    "uint32": "uint32_val",
    "uint64": "uint64_val",
    "bool": "bool_val",
    "string": "string_val",
}
_ENUM = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "float16": "DT_HALF",
    "bfloat16": "DT_BFLOAT16",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
}


def expected_for(outputs: dict[str, tuple[str, list[int]]], batch: int) -> Expected:
    """The answer to a batch of ``batch`` rows, from outputs recorded for another row count."""
    return {name: (dtype, (batch, *shape[1:])) for name, (dtype, shape) in outputs.items()}


def check_rest(body: bytes, expected: Expected) -> str:
    """'' for a columnar prediction of the expected outputs, else what is wrong."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"not a prediction: the body is not JSON ({body[:40]!r})"
    outputs = data.get("outputs") if isinstance(data, dict) else None
    if outputs is None:
        return f"not a prediction: no 'outputs' in {body[:60]!r}"
    if not isinstance(outputs, dict):
        if len(expected) != 1:
            return f"not a prediction: one unnamed output, expected {sorted(expected)}"
        outputs = {next(iter(expected)): outputs}  # a single output comes without its name
    if sorted(outputs) != sorted(expected):
        return f"not a prediction: outputs {sorted(outputs)}, expected {sorted(expected)}"
    for name, (dtype, shape) in expected.items():
        try:
            got = np.asarray(outputs[name], dtype=object if dtype == "string" else np.float64)
        except (TypeError, ValueError):
            return f"not a prediction: output '{name}' is not a regular array"
        if got.shape != shape:
            return (
                f"not a prediction: output '{name}' has shape {list(got.shape)}, not {list(shape)}"
            )
    return ""


def predict_schema() -> tuple[bytes, ...]:
    """TF Serving's PredictResponse and the files it needs, serialized, in dependency order."""
    from tensorflow_serving.apis import predict_pb2

    ordered: list[Any] = []

    def walk(file: Any) -> None:
        for dep in file.dependencies:
            walk(dep)
        if all(f.name != file.name for f in ordered):
            ordered.append(file)

    walk(predict_pb2.DESCRIPTOR)
    return tuple(f.serialized_pb for f in ordered)


@functools.cache
def response_class(schema: tuple[bytes, ...]) -> tuple[Any, dict[str, int]]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for raw in schema:
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(raw))
    cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.PredictResponse")
    )
    enum = pool.FindEnumTypeByName("tensorflow.DataType")
    return cls, {v.name: v.number for v in enum.values}


def check_grpc(raw: bytes, expected: Expected, schema: tuple[bytes, ...]) -> str:
    """'' for a PredictResponse holding the expected tensors, else what is wrong."""
    from google.protobuf.message import DecodeError

    cls, dtypes = response_class(schema)
    try:
        response = cls.FromString(raw)
    except DecodeError:
        return f"not a prediction: the answer is not a PredictResponse ({raw[:20]!r})"
    outputs = response.outputs
    if sorted(outputs) != sorted(expected):
        return f"not a prediction: outputs {sorted(outputs)}, expected {sorted(expected)}"
    for name, (dtype, shape) in expected.items():
        tensor = outputs[name]
        if tensor.dtype != dtypes.get(_ENUM.get(dtype, ""), -1):
            return f"not a prediction: output '{name}' has dtype {tensor.dtype}, not {dtype}"
        dims = tuple(int(d.size) for d in tensor.tensor_shape.dim)
        if dims != shape:
            return f"not a prediction: output '{name}' has shape {list(dims)}, not {list(shape)}"
        count = math.prod(shape)
        if tensor.tensor_content and dtype != "string":
            held = len(tensor.tensor_content) // np.dtype(_numpy(dtype)).itemsize
        else:
            held = len(getattr(tensor, _VALUE_FIELDS.get(dtype, "float_val")))
        if held != count:
            return f"not a prediction: output '{name}' holds {held} values, its shape {count}"
    return ""


def _numpy(dtype: str) -> str:
    return "uint16" if dtype == "bfloat16" else dtype
