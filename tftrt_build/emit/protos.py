"""TF Serving's BatchingParameters and MonitoringConfig messages, defined here.

``tensorflow-serving-api`` ships ModelServerConfig but not these two (they live in
session_bundle_config.proto and monitoring_config.proto of the server). They are declared from
TF Serving's documented field list and built into a private descriptor pool at import, so the
text-format files are written and parsed by protobuf itself, with no code generation step.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_PACKAGE = "tensorflow.serving"
_F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str, number: int, kind: int, label: int = _F.LABEL_OPTIONAL, type_name: str = ""
) -> descriptor_pb2.FieldDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    return field


def _file() -> descriptor_pb2.FileDescriptorProto:
    int64 = ".google.protobuf.Int64Value"
    batching = descriptor_pb2.DescriptorProto(
        name="BatchingParameters",
        field=[
            _field("max_batch_size", 1, _F.TYPE_MESSAGE, type_name=int64),
            _field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, type_name=int64),
            _field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, type_name=int64),
            _field("num_batch_threads", 4, _F.TYPE_MESSAGE, type_name=int64),
            _field(
                "thread_pool_name", 5, _F.TYPE_MESSAGE, type_name=".google.protobuf.StringValue"
            ),
            _field("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED),
            _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
        ],
    )
    prometheus = descriptor_pb2.DescriptorProto(
        name="PrometheusConfig",
        field=[_field("enable", 1, _F.TYPE_BOOL), _field("path", 2, _F.TYPE_STRING)],
    )
    monitoring = descriptor_pb2.DescriptorProto(
        name="MonitoringConfig",
        field=[
            _field(
                "prometheus_config", 1, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.PrometheusConfig"
            )
        ],
    )
    return descriptor_pb2.FileDescriptorProto(
        name="tftrt_build/tf_serving_configs.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
        message_type=[batching, prometheus, monitoring],
    )


_pool = descriptor_pool.DescriptorPool()
_pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
_pool.Add(_file())

BatchingParameters: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName(f"{_PACKAGE}.BatchingParameters")
)
MonitoringConfig: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName(f"{_PACKAGE}.MonitoringConfig")
)
