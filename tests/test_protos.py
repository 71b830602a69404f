"""Our hand-declared TF Serving messages, pinned against the ones TF Serving 2.17.1 publishes.

tftrt_build.emit.protos declares BatchingParameters, PrometheusConfig and MonitoringConfig itself,
since tensorflow-serving-api ships none of them. Nothing else checks that copy: a wrong name or a
wrong type (a plain int64 where the server expects an Int64Value wrapper) makes
tensorflow_model_server refuse the file we write, and a wrong number changes what the binary form
means. So the published fields are written below as data, and every field we declare must match
one of them exactly. Our copy may leave published fields out; which ones is pinned too, so that
adding or dropping a field is a deliberate change.

Also here: the emitted files parse with the published messages and decode with their numbers,
and the rule the published proto states for allowed_batch_sizes (entries in increasing order) is
refused by the planner. The other stated rule (the last entry equals max_batch_size) is covered
end to end by test_bad_configs.py (allowed-batch-sizes-end).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

from tftrt_build.config.schema import BatchingConf, TargetConf
from tftrt_build.emit.protos import BatchingParameters, MonitoringConfig
from tftrt_build.emit.server_config import BatchingEmitter, MonitoringEmitter
from tftrt_build.emit.spec import Batching, BundleSpec, BundleVersion
from tftrt_build.errors import ConfigError
from tftrt_build.plan.batching import resolve_batching

PACKAGE = "tensorflow.serving"
_F = descriptor_pb2.FieldDescriptorProto
OPTIONAL = _F.LABEL_OPTIONAL
REPEATED = _F.LABEL_REPEATED
INT64_VALUE = ".google.protobuf.Int64Value"
STRING_VALUE = ".google.protobuf.StringValue"
BOOL_VALUE = ".google.protobuf.BoolValue"


class Field(NamedTuple):
    name: str
    number: int
    type: int
    label: int
    type_name: str = ""  # the message type, fully qualified; empty for scalars


# tensorflow/serving 2.17.1, tensorflow_serving/servables/tensorflow/session_bundle_config.proto,
# message BatchingParameters.
BATCHING_PARAMETERS = (
    Field("max_batch_size", 1, _F.TYPE_MESSAGE, OPTIONAL, INT64_VALUE),
    Field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, OPTIONAL, INT64_VALUE),
    Field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, OPTIONAL, INT64_VALUE),
    Field("num_batch_threads", 4, _F.TYPE_MESSAGE, OPTIONAL, INT64_VALUE),
    Field("thread_pool_name", 5, _F.TYPE_MESSAGE, OPTIONAL, STRING_VALUE),
    Field("allowed_batch_sizes", 6, _F.TYPE_INT64, REPEATED),
    Field("pad_variable_length_inputs", 7, _F.TYPE_BOOL, OPTIONAL),
    Field("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, OPTIONAL, BOOL_VALUE),
    Field("max_execution_batch_size", 9, _F.TYPE_MESSAGE, OPTIONAL, INT64_VALUE),
)

# tensorflow/serving 2.17.1, tensorflow_serving/config/monitoring_config.proto,
# messages PrometheusConfig and MonitoringConfig.
PROMETHEUS_CONFIG = (
    Field("enable", 1, _F.TYPE_BOOL, OPTIONAL),
    Field("path", 2, _F.TYPE_STRING, OPTIONAL),
)
MONITORING_CONFIG = (
    Field("prometheus_config", 1, _F.TYPE_MESSAGE, OPTIONAL, f".{PACKAGE}.PrometheusConfig"),
)

PUBLISHED = {
    "BatchingParameters": BATCHING_PARAMETERS,
    "PrometheusConfig": PROMETHEUS_CONFIG,
    "MonitoringConfig": MONITORING_CONFIG,
}

# Published fields that our copy does not declare. Large-batch splitting is left out: the
# planner keeps every batch within the engines' max_batch_size, so nothing is split.
OMITTED: dict[str, set[str]] = {
    "BatchingParameters": {"enable_large_batch_splitting", "max_execution_batch_size"},
    "PrometheusConfig": set(),
    "MonitoringConfig": set(),
}


def ours(message: str) -> Any:
    """Our descriptor of a message; PrometheusConfig is reached through MonitoringConfig."""
    monitoring = MonitoringConfig.DESCRIPTOR
    return {
        "BatchingParameters": BatchingParameters.DESCRIPTOR,
        "PrometheusConfig": monitoring.fields_by_name["prometheus_config"].message_type,
        "MonitoringConfig": monitoring,
    }[message]


def declared(descriptor: Any) -> dict[str, Field]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {f.name: Field(f.name, f.number, f.type, f.label, f.type_name) for f in proto.field}


def published_class(message: str) -> Any:
    """A message class built from the published table alone, in a pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    file = descriptor_pb2.FileDescriptorProto(
        name="published/tf_serving_2_17_1.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for name, fields in PUBLISHED.items():
        described = file.message_type.add(name=name)
        for f in fields:
            field = described.field.add(name=f.name, number=f.number, type=f.type, label=f.label)
            if f.type_name:
                field.type_name = f.type_name
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{message}"))


@pytest.mark.parametrize("message", list(PUBLISHED))
def test_message_has_published_name_and_package(message: str) -> None:
    descriptor = ours(message)
    assert descriptor.name == message
    assert descriptor.full_name == f"{PACKAGE}.{message}"
    assert descriptor.file.package == PACKAGE


def test_file_is_proto3_like_the_published_ones() -> None:
    # proto3 decides field presence and that repeated int64 is packed on the wire.
    file = descriptor_pb2.FileDescriptorProto()
    BatchingParameters.DESCRIPTOR.file.CopyToProto(file)
    assert file.syntax == "proto3"


@pytest.mark.parametrize("message", list(PUBLISHED))
def test_every_declared_field_is_published_as_declared(message: str) -> None:
    published = {f.name: f for f in PUBLISHED[message]}
    for name, field in declared(ours(message)).items():
        assert name in published, f"{message}.{name} is not a field TF Serving 2.17.1 publishes"
        assert field == published[name]


@pytest.mark.parametrize("message", list(PUBLISHED))
def test_only_the_listed_published_fields_are_left_out(message: str) -> None:
    published = {f.name for f in PUBLISHED[message]}
    assert published - set(declared(ours(message))) == OMITTED[message]


def spec(batching: Batching | None = None) -> BundleSpec:
    return BundleSpec(
        target=TargetConf(), target_option="t", name="b", models=(), batching=batching
    )


BATCHING = Batching(
    max_batch_size=8,
    batch_timeout_micros=1000,
    max_enqueued_batches=100,
    num_batch_threads=4,
    allowed_batch_sizes=(1, 4, 8),
    pad_variable_length_inputs=True,
)


def test_emitted_batching_file_round_trips_through_published_numbers() -> None:
    (text,) = BatchingEmitter().render(spec(BATCHING)).values()
    message = text_format.Parse(text, BatchingParameters())
    published = published_class("BatchingParameters")
    # What the server does: read our text with its own message.
    from_text = text_format.Parse(text, published())
    # And our binary form, read with the published numbers.
    from_wire = published.FromString(message.SerializeToString())
    assert from_wire == from_text
    assert from_wire.max_batch_size.value == 8
    assert from_wire.batch_timeout_micros.value == 1000
    assert from_wire.max_enqueued_batches.value == 100
    assert from_wire.num_batch_threads.value == 4
    assert list(from_wire.allowed_batch_sizes) == [1, 4, 8]
    assert from_wire.pad_variable_length_inputs is True
    # Fields decoded under another number would be unknown fields, which text form leaves out.
    assert text_format.MessageToString(from_wire) == text_format.MessageToString(message)


def test_emitted_monitoring_file_round_trips_through_published_numbers() -> None:
    (text,) = MonitoringEmitter().render(spec()).values()
    message = text_format.Parse(text, MonitoringConfig())
    published = published_class("MonitoringConfig")
    from_text = text_format.Parse(text, published())
    from_wire = published.FromString(message.SerializeToString())
    assert from_wire == from_text
    assert from_wire.prometheus_config.enable is True
    assert from_wire.prometheus_config.path == "/monitoring/prometheus/metrics"
    assert text_format.MessageToString(from_wire) == text_format.MessageToString(message)


ENGINES = BundleVersion(
    version=1,
    artifact="demo/fp16",
    profile="fp16",
    key="k",
    converter="tftrt",
    precision="FP16",
    max_batch_size=8,
    engine_batch_sizes=(1, 4, 8),
)


def target(allowed: list[int]) -> TargetConf:
    conf = BatchingConf(enabled=True, max_batch_size=8, allowed_batch_sizes=allowed)
    return TargetConf(batching=conf)


@pytest.mark.parametrize("allowed", [[4, 1, 8], [1, 4, 4, 8]], ids=["unordered", "repeated"])
def test_allowed_batch_sizes_out_of_increasing_order_are_refused(allowed: list[int]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_batching(target(allowed), [ENGINES], None)
    assert str(err.value) == (
        f"target.batching.allowed_batch_sizes: {allowed} must be positive and increasing"
    )


def test_increasing_allowed_batch_sizes_ending_at_max_are_kept() -> None:
    batching = resolve_batching(target([1, 4, 8]), [ENGINES], None)
    assert batching is not None
    assert batching.allowed_batch_sizes == (1, 4, 8)
    assert batching.max_batch_size == 8
