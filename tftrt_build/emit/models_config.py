"""models.config: a text-format ModelServerConfig built with TF Serving's own protobuf message."""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tftrt_build.emit.spec import BundleSpec

PATH = "config/models.config"


def build_message(spec: BundleSpec) -> model_server_config_pb2.ModelServerConfig:
    message = model_server_config_pb2.ModelServerConfig()
    base = spec.target.model_base_path.rstrip("/")
    for model in spec.models:
        config = message.model_config_list.config.add()
        config.name = model.name
        config.base_path = f"{base}/{model.name}"
        config.model_platform = "tensorflow"
        versions = sorted(v.version for v in model.versions)
        if len(versions) > 1:
            config.model_version_policy.specific.versions.extend(versions)
        else:
            config.model_version_policy.latest.num_versions = 1
        for label, version in model.labels:
            config.version_labels[label] = version
    return message


class ModelsConfigEmitter:
    def render(self, spec: BundleSpec) -> dict[str, str]:
        header = (
            "# ModelServerConfig for TF Serving's --model_config_file; written by tftrt-build\n"
        )
        return {PATH: header + text_format.MessageToString(build_message(spec))}


def parse(text: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse models.config back (tests and verify use this)."""
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
