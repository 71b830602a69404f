"""bundle.json, and the served-models list it shares with the lock.

``served_models`` is the one place that lists what a bundle serves (models, labels, versions,
the artifact and key of each); ``bundle.json`` and the lock's bundle entry both call it and
add only their own fields, so the two can never list different versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tftrt_build.emit.spec import BundleModel, BundleSpec, BundleVersion
from tftrt_build.store.digest import digest_bytes

PATH = "bundle.json"
SCHEMA = 1

# Extra fields of one served version: (model, version) -> fields.
VersionFields = Callable[[BundleModel, BundleVersion], dict[str, Any]]


def served_models(spec: BundleSpec, extra: VersionFields) -> list[dict[str, Any]]:
    """Each served model with its labels and versions, in the spec's order."""
    return [
        {
            "name": m.name,
            "labels": dict(m.labels),
            "versions": [
                {"version": v.version, "artifact": v.artifact, "key": v.key, **extra(m, v)}
                for v in m.versions
            ],
        }
        for m in spec.models
    ]


def file_digests(files: dict[str, str]) -> dict[str, str]:
    """Digest of each rendered file, by its path in the bundle."""
    return {path: digest_bytes(text.encode()) for path, text in sorted(files.items())}


def render(spec: BundleSpec, key: str, files: dict[str, str], digests: dict[str, str]) -> str:
    """bundle.json: what the bundle holds, for people and for deploy/verify.

    ``digests`` maps "<model>/<version>" to the digest of that version folder.
    """
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "key": key,
        "target": spec.target_option,
        "project": spec.project_name,
        "image": spec.target.image,
        "ports": {"rest": spec.target.ports.rest, "grpc": spec.target.ports.grpc},
        "models": served_models(
            spec,
            lambda m, v: {"profile": v.profile, "digest": digests[f"{m.name}/{v.version}"]},
        ),
        "files": file_digests(files),
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
