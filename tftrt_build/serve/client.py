"""Clients of a running TF Serving: REST (requests, keep-alive) and gRPC (PredictionService).

Every failure is a ``ServingError`` whose text says what happened in one line: the server
could not be reached, timed out, answered with an HTTP error (and TF Serving's own
``{"error": ...}`` message), or answered something that is not TF Serving's format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import requests

from tftrt_build.config.schema import ServerConf, TargetConf
from tftrt_build.errors import TftrtError


class ServingError(TftrtError):
    """The server did not give a usable answer."""


def _host(target: TargetConf) -> str:
    """Where the target's published ports are reached from this machine."""
    host = target.ports.host
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def rest_url(target: TargetConf, server: ServerConf) -> str:
    """The REST address: server.url, else the target's published REST port."""
    return (server.url or f"http://{_host(target)}:{target.ports.rest}").rstrip("/")


def grpc_address(target: TargetConf, server: ServerConf) -> str:
    """The gRPC address: server.grpc, else the target's published gRPC port."""
    return server.grpc or f"{_host(target)}:{target.ports.grpc}"


def path(model: str, version: int | None = None, label: str | None = None) -> str:
    base = f"/v1/models/{model}"
    if label is not None:
        return f"{base}/labels/{label}"
    if version is not None:
        return f"{base}/versions/{version}"
    return base


class Predictor(Protocol):
    """What verify asks of a client: one prediction, over REST or gRPC alike."""

    def predict(
        self,
        model: str,
        inputs: dict[str, npt.NDArray[Any]],
        signature: str,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, npt.NDArray[Any]]: ...


@dataclass(frozen=True)
class VersionState:
    version: int
    state: str
    error: str = ""


class RestClient:
    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def _call(self, method: str, route: str, body: bytes | None = None) -> Any:
        where = f"{method} {self.url}{route}"
        try:
            response = self.session.request(
                method, self.url + route, data=body, timeout=self.timeout_s
            )
        except requests.Timeout as exc:
            raise ServingError(f"{where}: no answer within {self.timeout_s:g} s") from exc
        except requests.ConnectionError as exc:
            raise ServingError(f"{where}: cannot connect ({_reason(exc)})") from exc
        try:
            data = response.json()
        except ValueError as exc:
            raise ServingError(
                f"{where}: HTTP {response.status_code} with a body that is not "
                f"JSON: {response.text[:80]!r}"
            ) from exc
        if response.status_code != 200:
            message = data.get("error", "") if isinstance(data, dict) else ""
            raise ServingError(
                f"{where}: HTTP {response.status_code}: {message or response.text[:80]}"
            )
        return data

    def status(
        self, model: str, version: int | None = None, label: str | None = None
    ) -> list[VersionState]:
        data = self._call("GET", path(model, version, label))
        try:
            return [
                VersionState(
                    int(v["version"]),
                    str(v["state"]),
                    str((v.get("status") or {}).get("error_message", "")),
                )
                for v in data["model_version_status"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServingError(
                f"GET {self.url}{path(model, version, label)}: not a model "
                f"status answer: {json.dumps(data)[:80]}"
            ) from exc

    def metadata(self, model: str, version: int) -> dict[str, Any]:
        """The signature defs, as TF Serving's JSON gives them."""
        route = path(model, version) + "/metadata"
        data = self._call("GET", route)
        try:
            return dict(data["metadata"]["signature_def"]["signature_def"])
        except (KeyError, TypeError) as exc:
            raise ServingError(f"GET {self.url}{route}: not a metadata answer") from exc

    def predict_body(self, inputs: dict[str, npt.NDArray[Any]], signature: str) -> bytes:
        """The request body, columnar; encode it once and reuse it (benchmarks do)."""
        return json.dumps(
            {"signature_name": signature, "inputs": {k: v.tolist() for k, v in inputs.items()}}
        ).encode()

    def predict_raw(
        self, model: str, body: bytes, version: int | None = None, label: str | None = None
    ) -> Any:
        return self._call("POST", path(model, version, label) + ":predict", body)

    def predict(
        self,
        model: str,
        inputs: dict[str, npt.NDArray[Any]],
        signature: str,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        data = self.predict_raw(model, self.predict_body(inputs, signature), version, label)
        outputs = data.get("outputs") if isinstance(data, dict) else None
        if outputs is None:
            raise ServingError(
                f"POST {self.url}{path(model, version, label)}:predict: no 'outputs' in the answer"
            )
        if not isinstance(outputs, dict):
            return {"": np.asarray(outputs)}  # a single output is given without its name
        return {k: np.asarray(v) for k, v in outputs.items()}


class GrpcClient:
    """PredictionService over gRPC, with TF Serving's messages (imports TensorFlow's protos)."""

    def __init__(self, target: str, timeout_s: float = 30.0) -> None:
        # TF Serving's messages import TensorFlow; keep its start-up chatter off the console.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target = target
        self.timeout_s = timeout_s
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        # The same call with bytes in and out: a benchmark serialises its requests once.
        self.raw = self.channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=None,
            response_deserializer=None,
        )

    def request(
        self,
        model: str,
        inputs: dict[str, npt.NDArray[Any]],
        signature: str,
        version: int | None = None,
        label: str | None = None,
    ) -> Any:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if label is not None:
            request.model_spec.version_label = label
        elif version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        return request

    def predict(
        self,
        model: str,
        inputs: dict[str, npt.NDArray[Any]],
        signature: str,
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        import grpc
        import tensorflow as tf

        request = self.request(model, inputs, signature, version, label)
        try:
            response = self.stub.Predict(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise ServingError(
                f"gRPC Predict {self.target} {model}: {exc.code().name}: {exc.details()}"
            ) from exc
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "No route to host",
    ):
        if marker in text:
            return marker
    return text.splitlines()[0][:80] if text else type(exc).__name__
