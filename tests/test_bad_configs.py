"""The catalogue of bad configs: one line naming file and key, exit 2, nothing written.

Each case runs the installed ``tftrt-build`` in a copy of tests/fixtures/catalogue (whose conf/
holds the broken options) with an empty cache. The message text is pinned: changing it is a
deliberate act.
"""

from __future__ import annotations

import pytest
from conftest import Project

BUILTIN = "tftrt_build/conf"
CASES = [
    pytest.param(
        ["profile=fp61"],
        "command line: profile: no profile option 'fp61' (options: fast, fp16, fp32, int8, "
        "native, native_fp16, seed_fp16, zero_batch) (did you mean 'fp16'?)",
        id="misspelt-option",
    ),
    pytest.param(
        ["profile.precison=FP32"],
        "command line: profile.precison: unknown key (did you mean 'precision'?)",
        id="misspelt-key-override",
    ),
    pytest.param(
        ["profile.max_batch_size=abc"],
        "command line: profile.max_batch_size: 'abc' is not an integer",
        id="wrong-type-override",
    ),
    pytest.param(
        ["mode=plna"],
        "command line: mode: 'plna' is not one of build, plan, check, diff (did you mean 'plan'?)",
        id="misspelt-mode",
    ),
    pytest.param(
        ["+foo=1"],
        "command line: foo: unknown key",
        id="unknown-top-level-key",
    ),
    pytest.param(
        ["model=["],
        "command line: cannot parse an override: no viable alternative at input '['",
        id="override-syntax",
    ),
    pytest.param(
        ["model=typo_key"],
        "conf/model/typo_key.yaml: model.inptus: unknown key (did you mean 'inputs'?)",
        id="misspelt-key-in-file",
    ),
    pytest.param(
        ["model=broken_yaml"],
        "conf/model/broken_yaml.yaml:3:1: invalid YAML: expected ',' or '}', but got "
        "'<stream end>'",
        id="yaml-syntax",
    ),
    pytest.param(
        ["model=no_name"],
        "conf/model/no_name.yaml: model.name: has no value; set it in the file or on the "
        "command line",
        id="missing-value",
    ),
    pytest.param(
        ["model=bad_dtype"],
        "conf/model/bad_dtype.yaml: model.inputs[0].dtype: unknown dtype 'flot32' "
        "(did you mean 'float32'?)",
        id="misspelt-dtype",
    ),
    pytest.param(
        ["model.inputs.0.dtype=flot32"],
        "command line: model.inputs[0].dtype: unknown dtype 'flot32' (did you mean 'float32'?)",
        id="misspelt-dtype-override",
    ),
    pytest.param(
        ["model=zero_dim"],
        "conf/model/zero_dim.yaml: model.inputs[0].shape: [-1, 0, 3]: sizes are positive or -1",
        id="zero-dimension",
    ),
    pytest.param(
        ["model=no_script"],
        "conf/model/no_script.yaml: model.source.script: source.kind=export needs a script "
        "under models/",
        id="export-without-script",
    ),
    pytest.param(
        ["model=missing_script"],
        "conf/model/missing_script.yaml: model.source.script: file 'models/nowhere.py' not "
        "found in {root}",
        id="script-not-found",
    ),
    pytest.param(
        ["model=bad_sha"],
        "conf/model/bad_sha.yaml: model.source.sha256: 'abc123' is not 64 hex digits",
        id="malformed-sha256",
    ),
    pytest.param(
        ["model=bad_source_kind"],
        "conf/model/bad_source_kind.yaml: model.source.kind: 'tarball' is not one of export, "
        "archive, local",
        id="unknown-source-kind",
    ),
    pytest.param(
        ["profile=native_fp16"],
        "conf/profile/native_fp16.yaml: profile.precision: the native converter serves the "
        "SavedModel as-is; FP16 needs converter: tftrt",
        id="native-with-fp16",
    ),
    pytest.param(
        ["profile=zero_batch"],
        "conf/profile/zero_batch.yaml: profile.max_batch_size: must be at least 1",
        id="zero-batch",
    ),
    pytest.param(
        ["target=unpinned"],
        "conf/target/unpinned.yaml: target.image: 'tensorflow/serving:latest' is not pinned; "
        "name a tag such as :2.17.1-gpu",
        id="unpinned-image",
    ),
    pytest.param(
        ["target=port_clash"],
        "conf/target/port_clash.yaml: target.ports.grpc: REST and gRPC both use port 8501",
        id="port-clash",
    ),
    pytest.param(
        ["target=unknown_model"],
        "conf/target/unknown_model.yaml: target.models[0].model: no model option 'dmeo' "
        "(did you mean 'demo'?)",
        id="target-unknown-model",
    ),
    pytest.param(
        ["target=bad_label"],
        "conf/target/bad_label.yaml: target.models[0].labels.stable: label 'stable' points at "
        "version 2, which is not served (versions: 1)",
        id="label-on-missing-version",
    ),
    pytest.param(
        ["target=dup_version"],
        "conf/target/dup_version.yaml: target.models[0].versions[1].version: version 1 of "
        "model 'demo' is listed twice",
        id="duplicate-version",
    ),
    pytest.param(
        ["target=gpu_both"],
        "conf/target/gpu_both.yaml: target.gpus.count: set either gpus.count or "
        "gpus.device_ids, not both",
        id="gpu-count-and-ids",
    ),
    pytest.param(
        ["target.bundle_dir=."],
        "command line: target.bundle_dir: '{root}' overlaps the project folder; pick a folder "
        "of its own",
        id="bundle-dir-is-project",
    ),
    pytest.param(
        ["target=batch_clash"],
        "conf/target/batch_clash.yaml: target.batching.max_batch_size: 16 is above "
        "max_batch_size 8 of artifact demo/fp16 (profile fp16); the server would send it "
        "batches its engines were not built for",
        id="batching-above-engines",
    ),
    pytest.param(
        ["target=allowed_clash"],
        "conf/target/allowed_clash.yaml: target.batching.allowed_batch_sizes: the last of "
        "[1, 4] must equal max_batch_size 8",
        id="allowed-batch-sizes-end",
    ),
    pytest.param(
        ["target=too_new"],
        "conf/target/too_new.yaml: target.image: cannot serve demo/fp16: "
        "tensorflow/serving:2.19.0-gpu cannot load TF-TRT models: TF Serving 2.18 and newer "
        "ship no TRTEngineOp kernels (tensorflow/serving#4018); use 2.17.1-gpu or older",
        id="tftrt-on-serving-2.19",
    ),
    pytest.param(
        ["target=k8s_ids"],
        "conf/target/k8s_ids.yaml: target.gpus.device_ids: Kubernetes schedules GPUs by count; "
        "use gpus.count",
        id="k8s-device-ids",
    ),
    pytest.param(
        ["target=per_gpu_no_ids"],
        "conf/target/per_gpu_no_ids.yaml: target.services: per_gpu needs gpus.device_ids, one "
        "service per id",
        id="per-gpu-without-ids",
    ),
    pytest.param(
        ["target.gpus.count=some"],
        "command line: target.gpus.count: 'some' is neither a number of GPUs nor 'all'",
        id="gpu-count-word",
    ),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(
    catalogue: Project, args: list[str], message: str
) -> None:
    result = catalogue.run(*args)
    assert result.code == 2, result.err
    assert result.error_line == message.replace("{root}", str(catalogue.root))
    assert "Traceback" not in result.err
    assert catalogue.leftovers() == []


def test_traceback_on_request(catalogue: Project) -> None:
    result = catalogue.run("model=bad_dtype", env={"HYDRA_FULL_ERROR": "1"})
    assert result.code != 0
    assert "Traceback" in result.err


def test_bad_lock_schema_is_refused(catalogue: Project) -> None:
    catalogue.lock.write_text("schema: 99\nhash: blake3\nartifacts: {}\nbundles: {}\n")
    result = catalogue.run("mode=check")
    assert result.code == 2
    assert result.error_line == (
        "tftrt.lock: schema 99 is not the supported 1 (written by another version of "
        "tftrt-build) (restore it from version control, or delete it and run tftrt-build to "
        "write it again)"
    )
