"""batching.config and monitoring.config, written with protobuf's text format."""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format

from tftrt_build.emit.protos import BatchingParameters, MonitoringConfig
from tftrt_build.emit.spec import BundleSpec

BATCHING = "config/batching.config"
MONITORING = "config/monitoring.config"


def batching_message(spec: BundleSpec) -> Any:
    b = spec.batching
    assert b is not None
    message = BatchingParameters()
    message.max_batch_size.value = b.max_batch_size
    message.batch_timeout_micros.value = b.batch_timeout_micros
    message.max_enqueued_batches.value = b.max_enqueued_batches
    message.num_batch_threads.value = b.num_batch_threads
    message.allowed_batch_sizes.extend(b.allowed_batch_sizes)
    message.pad_variable_length_inputs = b.pad_variable_length_inputs
    return message


class BatchingEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        if spec.batching is None:
            return {}
        header = "# BatchingParameters for --batching_parameters_file; written by tftrt-build\n"
        return {BATCHING: header + text_format.MessageToString(batching_message(spec))}


class MonitoringEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        conf = spec.target.monitoring
        if not conf.enabled:
            return {}
        message = MonitoringConfig()
        message.prometheus_config.enable = True
        message.prometheus_config.path = conf.path
        header = "# MonitoringConfig for --monitoring_config_file; written by tftrt-build\n"
        return {MONITORING: header + text_format.MessageToString(message)}


def parse_batching(text: str) -> Any:
    return text_format.Parse(text, BatchingParameters())


def parse_monitoring(text: str) -> Any:
    return text_format.Parse(text, MonitoringConfig())
