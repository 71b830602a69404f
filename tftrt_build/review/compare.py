"""Compare one target's two sides: which artifacts are added, removed, rebuilt and why, and what
changes in what TF Serving loads (models, versions, labels, warm-up, parameters, files).

Why an artifact is rebuilt is said the way ``mode=plan`` says it (``plan.reasons.moves``): the
config keys that moved with old -> new values, then the input files whose content moved (by
path), then the toolchain. Stage inputs that only echo a config key are not repeated.
"""

from __future__ import annotations

import re
from typing import Any

from tftrt_build.plan.reasons import moves
from tftrt_build.review.records import (
    ADDED,
    CHANGED,
    MOVED,
    ORDER,
    REBUILT,
    REMOVED,
    UNCHANGED,
    ArtifactDiff,
    ServingChange,
)
from tftrt_build.review.sides import Side

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Stage inputs that belong to tftrt-build's key recipe rather than to any config key.
_RECIPE = {"runner", "format"}
_STAGES = ("source", "convert")


def compare_artifacts(base: Side | None, head: Side | None) -> list[ArtifactDiff]:
    """Every artifact either side serves, added and removed ones first, then by id."""
    before = _served_ids(base)
    after = _served_ids(head)
    found = []
    for artifact in sorted(before | after):
        if artifact not in before:
            assert head is not None
            found.append(
                ArtifactDiff(
                    artifact, ADDED, None, head.artifact_key(artifact), head.precision(artifact)
                )
            )
        elif artifact not in after:
            assert base is not None
            found.append(
                ArtifactDiff(
                    artifact, REMOVED, base.artifact_key(artifact), None, base.precision(artifact)
                )
            )
        else:
            assert base is not None and head is not None
            found.append(_compare_artifact(artifact, base, head))
    return sorted(found, key=lambda a: (ORDER[a.status], a.id))


def _served_ids(side: Side | None) -> set[str]:
    return {v.artifact for v in side.versions().values()} if side is not None else set()


def _compare_artifact(artifact: str, base: Side, head: Side) -> ArtifactDiff:
    old, new = base.artifacts.get(artifact) or {}, head.artifacts.get(artifact) or {}
    key_before, key_after = base.artifact_key(artifact), head.artifact_key(artifact)
    diff = ArtifactDiff(
        artifact,
        UNCHANGED,
        key_before,
        key_after,
        head.precision(artifact) or base.precision(artifact),
        config=moves(old.get("config"), new.get("config")) if old else [],
    )
    if key_before != key_after:
        diff.status = REBUILT
        for stage in _STAGES:
            was, now = old.get(stage) or {}, new.get(stage) or {}
            diff.files += moves(_files(was.get("inputs")), _files(now.get("inputs")))
            diff.toolchain += moves(
                was.get("toolchain") or {}, now.get("toolchain") or {}, f"{stage}.toolchain"
            )
            echoes = _other_inputs(was.get("inputs"))
            changed = moves(echoes, _other_inputs(now.get("inputs")), stage)
            if diff.config:
                # Those inputs restate config keys already listed; keep the recipe's own.
                changed = [c for c in changed if c.path.rsplit(".", 1)[-1] in _RECIPE]
            diff.inputs += changed
    elif diff.config:
        # Same key, other config: a key the cache key leaves out (tolerances, names).
        diff.status = CHANGED
    return diff


def _files(inputs: Any) -> dict[str, str]:
    """The content digests among a stage's inputs, by the file they are of."""
    found: dict[str, str] = {}
    if not isinstance(inputs, dict):
        return found

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, (*path, key))
            elif isinstance(value, str) and _DIGEST.match(value) and _is_file(path, key):
                if not path and key == "script_digest":
                    name = str(node.get("script", key))
                elif path and path[-1] in ("deps", "files"):
                    name = key  # {path: digest}
                else:
                    name = ".".join((*path, key))
                found[name] = value

    walk(inputs, ())
    return found


def _is_file(path: tuple[str, ...], key: str) -> bool:
    # The convert stage's "source" is the source stage's key, and an archive's sha256 is the
    # config's own pin: neither is a file of the project.
    return bool(path) or key not in ("source", "sha256")


def _other_inputs(inputs: Any) -> dict[str, Any]:
    """A stage's inputs without file digests and, for convert, without the source key."""
    if not isinstance(inputs, dict):
        return {}

    def strip(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict):
                kept[key] = strip(value, (*path, key))
            elif not (isinstance(value, str) and _DIGEST.match(value)):
                kept[key] = value
            elif not _is_file(path, key) and key != "source":
                kept[key] = value  # an archive pin: a value, not a file
        return kept

    return strip(inputs, ())


def compare_serving(base: Side | None, head: Side | None) -> tuple[list[ServingChange], list[str]]:
    """What changes in what TF Serving loads and how it runs; and notes on what cannot be told."""
    notes: list[str] = []
    found: list[ServingChange] = []
    old_models = base.models() if base else []
    new_models = head.models() if head else []
    for name in old_models:
        if name not in new_models:
            found.append(ServingChange("model", name, REMOVED))
    for name in new_models:
        if name not in old_models:
            found.append(ServingChange("model", name, ADDED))
    found += _versions(base, head)
    found += _labels(base, head)
    if base is not None and head is not None:
        if base.serving is None:
            notes.append(
                "the base lock records no serving parameters (written before tftrt-build kept "
                "them): image, GPUs, ports, batching and monitoring are not compared; the "
                "rendered files below still are"
            )
        else:
            found += [
                ServingChange("parameter", c.path, c.kind, c.before, c.after)
                for c in moves(base.serving, head.serving or {})
            ]
        found += [
            ServingChange("file", c.path, c.kind, c.before, c.after)
            for c in moves(base.bundle.get("files") or {}, head.bundle.get("files") or {})
        ]
    return found, notes


def _versions(base: Side | None, head: Side | None) -> list[ServingChange]:
    old = base.versions() if base else {}
    new = head.versions() if head else {}
    found = []
    for model, version in sorted(old.keys() | new.keys()):
        item = f"{model}:{version}"
        was, now = old.get((model, version)), new.get((model, version))
        before = _served(base, was.artifact) if was is not None and base is not None else None
        after = _served(head, now.artifact) if now is not None and head is not None else None
        if was is None or now is None:
            found.append(
                ServingChange("version", item, ADDED if was is None else REMOVED, before, after)
            )
        elif was.artifact != now.artifact:
            found.append(ServingChange("version", item, CHANGED, before, after))
        elif was.warmup != now.warmup:
            found.append(ServingChange("warmup", item, CHANGED, was.warmup, now.warmup))
    return found


def _served(side: Side, artifact: str) -> dict[str, Any]:
    return {"artifact": artifact, "precision": side.precision(artifact)}


def _labels(base: Side | None, head: Side | None) -> list[ServingChange]:
    old = base.labels() if base else {}
    new = head.labels() if head else {}
    old_versions = base.versions() if base else {}
    new_versions = head.versions() if head else {}

    def at(side: Side | None, versions: dict[Any, Any], model: str, number: int | None) -> Any:
        if side is None or number is None:
            return None
        served = versions.get((model, number))
        precision = side.precision(served.artifact) if served is not None else None
        return {"version": number, "precision": precision}

    found = []
    for model, label in sorted(old.keys() | new.keys()):
        was, now = old.get((model, label)), new.get((model, label))
        if was == now:
            continue
        change = ADDED if was is None else REMOVED if now is None else MOVED
        found.append(
            ServingChange(
                "label",
                f"{model}:{label}",
                change,
                at(base, old_versions, model, was),
                at(head, new_versions, model, now),
            )
        )
    return found
