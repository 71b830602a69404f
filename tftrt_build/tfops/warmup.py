"""Warm-up records: a TFRecord of PredictionLog, replayed by TF Serving before a version serves.

One PredictRequest per batch size (times ``requests``), filled from the model's sample
generator, so every engine the server will use is ready before the first real request.
Written with TensorFlow's TFRecord writer and TF Serving's own protobuf messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILENAME = "tf_serving_warmup_requests"
# TF Serving reads at most this many warm-up records.
MAX_RECORDS = 1000


def run(task: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from tftrt_build.stages.samples import from_task, make

    params = task["params"]
    samples = from_task(task)
    output = Path(task["output"])
    sizes = list(params["batch_sizes"])
    count = len(sizes) * int(params["requests"])
    if count > MAX_RECORDS:
        raise ValueError(f"{count} warm-up records; TF Serving reads at most {MAX_RECORDS}")
    with tf.io.TFRecordWriter(str(output / FILENAME)) as writer:
        for i, rows in enumerate(sizes):
            batch = make(params["inputs"], samples, rows=rows, seed_offset=100 + i)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = params["model"]
            request.model_spec.signature_name = params["signature"]
            for name, value in sorted(batch.items()):
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            for _ in range(int(params["requests"])):
                writer.write(log.SerializeToString())
    return {"records": count, "batch_sizes": sizes}
