"""A TEST DOUBLE of TensorFlow Serving's model server, for tests only.

No TF Serving binary can be installed on the machines this project's tests run on, so this
stands in for ``tensorflow_model_server``: same flags, same model repository and
``--model_config_file``, and the documented REST (status, labels, metadata, predict in row and
columnar form, error bodies) and gRPC (PredictionService.Predict, GetModelMetadata) interfaces,
answering with real TensorFlow running the bundle's SavedModels. It is not TF Serving: no
batching, no TensorRT, no file-system polling. ``--double_faults`` makes it misbehave on
purpose, for the tests of verify, bench and deploy: ``{"garbage_after": N}`` answers every
predict request after the first N (REST and gRPC counted together) with random bytes and
HTTP 200 / gRPC OK.

    python tests/doubles/tfserving.py --port=8500 --rest_api_port=8501 \\
        --model_config_file=bundles/demo-native/config/models.config
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import re
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:predict)?$"
)


class NotFound(Exception):
    pass


class Invalid(Exception):
    pass


class Version:
    def __init__(self, name: str, number: int, path: Path, warmup: bool, faults: dict[str, Any]):
        self.name, self.number, self.path = name, number, path
        self.state = "START"
        self.error = ""
        self.model: Any = None
        self.faults = faults
        self.warmup = warmup

    def load(self) -> None:
        self.state = "LOADING"
        if self.faults.get("never_available") == self.name:
            return  # stays LOADING for ever
        time.sleep(float(self.faults.get("load_delay_s", 0)))
        try:
            self.model = tf.saved_model.load(str(self.path))
            if self.warmup:
                self._replay_warmup()
            self.state = "AVAILABLE"
        except Exception as exc:
            self.state, self.error = "END", str(exc)

    def _replay_warmup(self) -> None:
        records = self.path / "assets.extra" / "tf_serving_warmup_requests"
        if not records.is_file():
            return
        for raw in tf.data.TFRecordDataset(str(records)):
            log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
            request = log.predict_log.request
            self.run(
                request.model_spec.signature_name or "serving_default",
                {k: tf.make_ndarray(v) for k, v in request.inputs.items()},
            )

    def signature(self, key: str) -> Any:
        signatures = self.model.signatures
        if key not in signatures:
            raise Invalid(f'Serving signature name: "{key}" not found in signature def')
        return signatures[key]

    def run(self, key: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fn = self.signature(key)
        specs = fn.structured_input_signature[1]
        missing = set(specs) - set(inputs)
        if missing or set(inputs) - set(specs):
            raise Invalid(
                f"input names {sorted(inputs)} do not match the signature {sorted(specs)}"
            )
        feed = {
            k: tf.constant(np.asarray(v, dtype=specs[k].dtype.as_numpy_dtype))
            for k, v in inputs.items()
        }
        try:
            outputs = {k: v.numpy() for k, v in fn(**feed).items()}
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise Invalid(str(exc).splitlines()[0]) from exc
        shift = self.faults.get("wrong_numbers")
        if shift and shift.get("model") == self.name and shift.get("version") == self.number:
            outputs = {k: v + float(shift.get("delta", 0.5)) for k, v in outputs.items()}
        return outputs


class Model:
    def __init__(
        self,
        config: Any,
        warmup: bool,
        faults: dict[str, Any],
        mapping: tuple[str, str] | None = None,
    ):
        self.name = config.name
        base_path = config.base_path
        if mapping and base_path.startswith(mapping[0]):
            base_path = mapping[1] + base_path[len(mapping[0]) :]
        base = Path(base_path)
        found = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
        policy = config.model_version_policy
        if policy.HasField("specific"):
            numbers = [v for v in policy.specific.versions if v in found]
        elif policy.HasField("all"):
            numbers = found
        else:
            numbers = found[-max(policy.latest.num_versions, 1) :]
        self.versions = {n: Version(self.name, n, base / str(n), warmup, faults) for n in numbers}
        self.labels = dict(config.version_labels)

    def pick(self, version: str | None, label: str | None) -> Version:
        if label is not None:
            if label not in self.labels:
                raise NotFound(f"Unrecognized servable version label: {label}")
            number = self.labels[label]
        elif version is not None:
            number = int(version)
        else:
            available = [n for n, v in self.versions.items() if v.state == "AVAILABLE"]
            if not available:
                raise NotFound(f"Servable not found for request: Latest({self.name})")
            number = max(available)
        chosen = self.versions.get(number)
        if chosen is None or chosen.state != "AVAILABLE":
            raise NotFound(f"Servable not found for request: Specific({self.name}, {number})")
        return chosen


class Server:
    def __init__(
        self,
        config_file: Path,
        warmup: bool,
        faults: dict[str, Any],
        mapping: tuple[str, str] | None = None,
    ):
        config = text_format.Parse(
            config_file.read_text(), model_server_config_pb2.ModelServerConfig()
        )
        self.models = {
            c.name: Model(c, warmup, faults, mapping) for c in config.model_config_list.config
        }
        self.faults = faults
        self.predicts = 0
        self.counting = threading.Lock()

    def garbage(self) -> bytes | None:
        """Random bytes instead of this predict answer, when the fault asks for them."""
        after = self.faults.get("garbage_after")
        if after is None:
            return None
        with self.counting:
            self.predicts += 1
            n = self.predicts
        return random.Random(n).randbytes(64) if n > int(after) else None

    def load_all(self) -> None:
        for model in self.models.values():
            for version in model.versions.values():
                version.load()

    def model(self, name: str) -> Model:
        if name not in self.models:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return self.models[name]


def status(version: Version) -> dict[str, Any]:
    code = "OK" if version.state != "END" or not version.error else "UNKNOWN"
    return {
        "version": str(version.number),
        "state": version.state,
        "status": {"error_code": code, "error_message": version.error},
    }


def metadata(version: Version) -> dict[str, Any]:
    from tensorflow.python.saved_model import loader_impl

    proto = loader_impl.parse_saved_model(str(version.path))
    graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
    # TF Serving writes protobuf JSON with the proto's own field names (tensor_shape, ...).
    signature_map = {
        "signature_def": {
            k: json_format.MessageToDict(v, preserving_proto_field_name=True)
            for k, v in graph.signature_def.items()
            if not k.startswith("__")
        }
    }
    return {
        "model_spec": {"name": version.name, "signature_name": "", "version": str(version.number)},
        "metadata": {"signature_def": signature_map},
    }


def _to_inputs(body: dict[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    if "instances" in body:
        rows = body["instances"]
        if rows and isinstance(rows[0], dict):
            return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}, True
        return {"__single__": np.asarray(rows)}, True
    if "inputs" in body:
        columns = body["inputs"]
        if isinstance(columns, dict):
            return {k: np.asarray(v) for k, v in columns.items()}, False
        return {"__single__": np.asarray(columns)}, False
    raise Invalid("Missing 'inputs' or 'instances' key")


def rest_handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out together, no 40 ms stall

        def _send(self, code: int, body: dict[str, Any]) -> None:
            if server.faults.get("malformed"):
                data = b"{not json"
            else:
                data = json.dumps(body, indent=1).encode()
            if server.faults.get("http_500"):
                code, data = 500, json.dumps({"error": "injected failure"}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[Model, re.Match[str]]:
            match = URL.match(self.path)
            if not match:
                raise NotFound(f"Malformed request: {self.command} {self.path}")
            return server.model(match["name"]), match

        def do_GET(self) -> None:
            if self.path == "/monitoring/prometheus/metrics":
                data = b"# a test double: no metrics\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            try:
                model, match = self._route()
                if match["rest"] == "/metadata":
                    self._send(200, metadata(model.pick(match["version"], match["label"])))
                elif match["version"] or match["label"]:
                    number = (
                        int(match["version"])
                        if match["version"]
                        else model.labels.get(match["label"] or "")
                    )
                    if number not in model.versions:
                        raise NotFound(
                            f"Servable not found for request: Specific({model.name}, {number})"
                        )
                    self._send(200, {"model_version_status": [status(model.versions[number])]})
                else:
                    self._send(
                        200,
                        {
                            "model_version_status": [
                                status(v) for _, v in sorted(model.versions.items())
                            ]
                        },
                    )
            except NotFound as exc:
                self._send(404, {"error": str(exc)})

        def do_POST(self) -> None:
            delay = float(server.faults.get("slow_s", 0))
            if delay:
                time.sleep(delay)
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            junk = server.garbage()
            if junk is not None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(junk)))
                self.end_headers()
                self.wfile.write(junk)
                return
            try:
                model, match = self._route()
                if match["rest"] != ":predict":
                    raise NotFound(f"Malformed request: POST {self.path}")
                version = model.pick(match["version"], match["label"])
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise Invalid(f"JSON Parse error: {exc}") from exc
                key = body.get("signature_name", "serving_default")
                inputs, rows = _to_inputs(body)
                if "__single__" in inputs:
                    names = list(version.signature(key).structured_input_signature[1])
                    inputs = {names[0]: inputs["__single__"]}
                outputs = version.run(key, inputs)
                if rows:
                    if len(outputs) == 1:
                        answer = {"predictions": next(iter(outputs.values())).tolist()}
                    else:
                        n = len(next(iter(outputs.values())))
                        answer = {
                            "predictions": [
                                {k: v[i].tolist() for k, v in outputs.items()} for i in range(n)
                            ]
                        }
                else:
                    single = len(outputs) == 1
                    answer = {
                        "outputs": next(iter(outputs.values())).tolist()
                        if single
                        else {k: v.tolist() for k, v in outputs.items()}
                    }
                self._send(200, answer)
            except NotFound as exc:
                self._send(404, {"error": str(exc)})
            except Invalid as exc:
                self._send(400, {"error": str(exc)})

        def log_message(self, *args: object) -> None:
            return None

    return Handler


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: Server):
        self.server = server

    def _version(self, spec: Any, context: Any) -> Version:
        try:
            model = self.server.model(spec.name)
            version = str(spec.version.value) if spec.HasField("version") else None
            label = spec.version_label or None
            return model.pick(version, label)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise

    def Predict(self, request: Any, context: Any) -> Any:
        version = self._version(request.model_spec, context)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = version.run(request.model_spec.signature_name or "serving_default", inputs)
        except Invalid as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        version = self._version(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.number
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(metadata(version)["metadata"]["signature_def"], signature_map)
        response.metadata["signature_def"].Pack(signature_map)
        return response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--rest_api_port", type=int, default=8501)
    parser.add_argument("--model_config_file", type=Path, required=True)
    parser.add_argument("--enable_model_warmup", default="true")
    parser.add_argument("--double_faults", default=os.environ.get("TFSERVING_DOUBLE_FAULTS", "{}"))
    # Outside a container the repository is not at /models: --double_map=/models=<folder>.
    parser.add_argument("--double_map", default="")
    args, _ignored = parser.parse_known_args(argv)  # batching, monitoring: accepted, not used
    faults = json.loads(args.double_faults)
    # In a container the faults come with the bundle's config folder.
    beside = args.model_config_file.parent / "double_faults.json"
    if beside.is_file():
        faults.update(json.loads(beside.read_text()))
    mapping = tuple(args.double_map.split("=", 1)) if args.double_map else None
    server = Server(args.model_config_file, args.enable_model_warmup == "true", faults, mapping)  # type: ignore[arg-type]
    rest = http.server.ThreadingHTTPServer(("0.0.0.0", args.rest_api_port), rest_handler(server))
    rpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    service = PredictionService(server)
    if "garbage_after" in faults:
        # Predict with bytes in and out, so an answer can be bytes that are no message at all.
        def predict(raw: bytes, context: Any) -> bytes:
            junk = server.garbage()
            if junk is not None:
                return junk
            request = predict_pb2.PredictRequest.FromString(raw)
            return bytes(service.Predict(request, context).SerializeToString())

        rpc.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "tensorflow.serving.PredictionService",
                    {"Predict": grpc.unary_unary_rpc_method_handler(predict)},
                ),
            )
        )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, rpc)
    rpc.add_insecure_port(f"0.0.0.0:{args.port}")
    rpc.start()
    threading.Thread(target=server.load_all, daemon=True).start()
    print(
        f"test double of tensorflow_model_server: REST {args.rest_api_port}, gRPC {args.port}",
        flush=True,
    )
    try:
        rest.serve_forever()
    finally:
        rpc.stop(0)


if __name__ == "__main__":
    sys.exit(main())
