"""Probe TensorFlow's TensorRT support and the GPUs, without ever aborting.

``get_loaded_tensorrt_version()`` aborts the process (SIGABRT, "getInferLibVersion symbol not
found") when TensorRT is absent, so it is called only after ``is_tensorrt_enabled()`` has
loaded the library. The executor runs this in a child process all the same.
"""

from __future__ import annotations

from typing import Any


def _version(parts: Any) -> str | None:
    values = [int(p) for p in parts] if parts else []
    return ".".join(map(str, values)) if any(values) else None


def describe() -> dict[str, Any]:
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    result: dict[str, Any] = {
        "tensorflow": tf.__version__,
        "tensorrt_build": bool(build.get("is_tensorrt_build")),
        "tensorrt_linked": None,
        "tensorrt_enabled": False,
        "tensorrt_loaded": None,
        "gpus": [],
        "error": "",
    }
    if result["tensorrt_build"]:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as trt_utils

        result["tensorrt_linked"] = _version(trt_utils.get_linked_tensorrt_version())
        result["tensorrt_enabled"] = bool(trt_utils.is_tensorrt_enabled())
        if result["tensorrt_enabled"]:
            result["tensorrt_loaded"] = _version(trt_utils.get_loaded_tensorrt_version())
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        major, minor = details.get("compute_capability", (0, 0))
        result["gpus"].append(
            {
                "name": details.get("device_name", device.name),
                "compute_capability": f"{major}.{minor}",
            }
        )
    return result


def run(task: dict[str, Any]) -> dict[str, Any]:
    return describe()
