"""The warnings a reviewer of a serving change must see, each named by a ``DiffWarning`` kind.

- ``precision_lowered``: a label now points at a version of lower precision (``stable`` from
  FP16 to INT8), or a version number clients pin now serves a lower precision.
  FP32 > FP16 > INT8; a native version is FP32.
- ``label_dangling``: a version was removed and the label that pointed at it went with it, so
  clients that ask for the label get errors.
- ``gpu_arch_mismatch``: the TF-TRT engines ``tftrt.lock`` records were built for another
  compute capability than the target's ``gpus.compute_capability``; pre-built engines load
  only on the architecture that built them.
- ``tolerance_loosened``: a profile's ``tolerance.atol`` or ``rtol`` (as applied, defaults
  included) grew, or ``top1_agreement`` fell or was dropped: the correctness check lets more
  through.
- ``lock_stale``: ``tftrt.lock`` is out of date with the configs (what ``mode=check`` fails on).
"""

from __future__ import annotations

from typing import Any

from tftrt_build.config.profiles import tolerance
from tftrt_build.config.schema import DiffWarning
from tftrt_build.review.records import Finding
from tftrt_build.review.sides import Side, lower
from tftrt_build.store.lock import Lock


def find_warnings(
    base: Side | None,
    head: Side | None,
    head_lock: Lock,
    stale: list[tuple[str, str]],
    command: str,
) -> list[tuple[DiffWarning, str]]:
    """The warnings of one target, as (kind, message) in a fixed order."""
    found: list[tuple[DiffWarning, str]] = []
    if base is not None and head is not None:
        found += _precision(base, head)
        found += _tolerance(base, head)
        found += _dangling(base, head)
    if head is not None:
        found += _gpu_arch(head, head_lock)
    if stale:
        shown = "; ".join(f"{item}: {why}" for item, why in stale[:3])
        more = f" (+{len(stale) - 3} more)" if len(stale) > 3 else ""
        found.append(
            (
                DiffWarning.lock_stale,
                f"tftrt.lock is out of date with the configs ({shown}{more}): "
                f"run `{command}` and commit tftrt.lock",
            )
        )
    return found


def mark(
    bundle: str, found: list[tuple[DiffWarning, str]], blocking: set[DiffWarning]
) -> list[Finding]:
    return [Finding(kind, bundle, message, kind in blocking) for kind, message in found]


def _precision(base: Side, head: Side) -> list[tuple[DiffWarning, str]]:
    found = []
    old, new = base.versions(), head.versions()
    for (model, number), now in sorted(new.items()):
        was = old.get((model, number))
        if was is None:
            continue
        before, after = base.precision(was.artifact), head.precision(now.artifact)
        if lower(before, after):
            labels = sorted(
                label for (m, label), v in head.labels().items() if (m, v) == (model, number)
            )
            named = f" (labels: {', '.join(labels)})" if labels else ""
            found.append(
                (
                    DiffWarning.precision_lowered,
                    f"{model} version {number}{named} now serves {after} ({now.artifact}), "
                    f"was {before} ({was.artifact})",
                )
            )
    old_labels, new_labels = base.labels(), head.labels()
    for (model, label), number in sorted(new_labels.items()):
        was_number = old_labels.get((model, label))
        if was_number is None or was_number == number:
            continue  # a label that stayed on its version is covered by the version above
        was_v, now_v = old.get((model, was_number)), new.get((model, number))
        before = base.precision(was_v.artifact) if was_v else None
        after = head.precision(now_v.artifact) if now_v else None
        if lower(before, after):
            found.append(
                (
                    DiffWarning.precision_lowered,
                    f"label '{label}' of {model} moved from version {was_number} ({before}) "
                    f"to {number} ({after})",
                )
            )
    return found


def _dangling(base: Side, head: Side) -> list[tuple[DiffWarning, str]]:
    # A target removed as a whole is shown as removed; this is about one that stays.
    new_versions, new_labels = head.versions(), head.labels()
    found = []
    for (model, label), number in sorted(base.labels().items()):
        if (model, number) in new_versions or (model, label) in new_labels:
            continue
        found.append(
            (
                DiffWarning.label_dangling,
                f"{model} version {number} is removed, and so is label '{label}' that pointed "
                f"at it: requests for /v1/models/{model}/labels/{label} will fail",
            )
        )
    return found


def _tolerance(base: Side, head: Side) -> list[tuple[DiffWarning, str]]:
    found = []
    for artifact in sorted(base.artifacts.keys() & head.artifacts.keys()):
        old, new = base.profile(artifact), head.profile(artifact)
        if old is None or new is None:
            continue
        (atol0, rtol0), (atol1, rtol1) = tolerance(old), tolerance(new)
        top0, top1 = old.tolerance.top1_agreement, new.tolerance.top1_agreement
        loosened = []
        if atol1 > atol0:
            loosened.append(f"atol {atol0:g} -> {atol1:g}")
        if rtol1 > rtol0:
            loosened.append(f"rtol {rtol0:g} -> {rtol1:g}")
        if top0 is not None and (top1 is None or top1 < top0):
            loosened.append(
                f"top1_agreement {top0:g} -> {'not checked' if top1 is None else f'{top1:g}'}"
            )
        if loosened:
            found.append(
                (
                    DiffWarning.tolerance_loosened,
                    f"{artifact}: the correctness check allows more: {', '.join(loosened)}",
                )
            )
    return found


def _gpu_arch(head: Side, head_lock: Lock) -> list[tuple[DiffWarning, str]]:
    declared = _get(head.serving, "gpus", "compute_capability")
    if not declared:
        return []
    built_for: dict[str, list[str]] = {}
    for artifact in sorted(head.artifacts):
        built = _get(
            head_lock.artifacts.get(artifact), "convert", "toolchain", "compute_capability"
        )
        if built and str(built) != str(declared):
            built_for.setdefault(str(built), []).append(artifact)
    return [
        (
            DiffWarning.gpu_arch_mismatch,
            f"{', '.join(artifacts)}: the TF-TRT engines in tftrt.lock were built for compute "
            f"capability {built}, but target '{head.target}' declares {declared} "
            f"(gpus.compute_capability): they will not load there; rebuild them on a GPU of "
            f"compute capability {declared}",
        )
        for built, artifacts in sorted(built_for.items())
    ]


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
