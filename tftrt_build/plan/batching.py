"""Server-side batching that agrees with the engines: resolved, or refused with the numbers.

TF Serving's batching is global to the server. Its ``max_batch_size`` must not exceed what any
TF-TRT artifact it serves was built for, and ``allowed_batch_sizes`` (to which batches are
padded) should be the sizes whose engines were pre-built, so no request makes the server build
an engine. A user's setting that breaks this is an error naming the artifact and the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from tftrt_build.config.schema import TargetConf
from tftrt_build.emit.spec import Batching, BundleVersion
from tftrt_build.errors import ConfigError


def resolve_batching(
    target: TargetConf, versions: Sequence[BundleVersion], file: str | None
) -> Batching | None:
    conf = target.batching
    if not conf.enabled:
        return None

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(message, key=f"target.batching.{key}", file=file)

    trt = [v for v in versions if v.converter == "tftrt"]
    bounding = trt or list(versions)
    smallest = min(bounding, key=lambda v: v.max_batch_size)
    max_batch = conf.max_batch_size or smallest.max_batch_size
    if max_batch < 1:
        raise fail("max_batch_size", "must be at least 1")
    if trt and max_batch > smallest.max_batch_size:
        raise fail(
            "max_batch_size",
            f"{max_batch} is above max_batch_size {smallest.max_batch_size} of artifact "
            f"{smallest.artifact} (profile {smallest.profile}); the server would send it "
            "batches its engines were not built for",
        )
    if conf.allowed_batch_sizes is None:
        allowed = _derived(trt, max_batch)
    else:
        allowed = list(conf.allowed_batch_sizes)
        if not allowed or any(b < 1 for b in allowed) or allowed != sorted(set(allowed)):
            raise fail("allowed_batch_sizes", f"{allowed} must be positive and increasing")
        if allowed[-1] != max_batch:
            raise fail(
                "allowed_batch_sizes",
                f"the last of {allowed} must equal max_batch_size {max_batch}",
            )
        for v in trt:
            if v.engine_batch_sizes and allowed[-1] > max(v.engine_batch_sizes):
                raise fail(
                    "allowed_batch_sizes",
                    f"{allowed[-1]} is above the largest engine of artifact {v.artifact} "
                    f"(pre-built for {list(v.engine_batch_sizes)}); the server would build "
                    "engines at run time",
                )
    return Batching(
        max_batch_size=max_batch,
        batch_timeout_micros=conf.batch_timeout_micros,
        max_enqueued_batches=conf.max_enqueued_batches,
        num_batch_threads=conf.num_batch_threads,
        allowed_batch_sizes=tuple(allowed),
        pad_variable_length_inputs=conf.pad_variable_length_inputs,
    )


def _derived(trt: Sequence[BundleVersion], max_batch: int) -> list[int]:
    """The pre-built engine sizes up to the max, ending with it; none for native-only targets."""
    if not trt:
        return []
    sizes = {b for v in trt for b in v.engine_batch_sizes if b <= max_batch}
    return sorted(sizes | {max_batch})
