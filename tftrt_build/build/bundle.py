"""Write a serving bundle to disk: model repository, config files and bundle.json, whole.

The one place a bundle is written. It is assembled in a hidden sibling folder and swapped into
place (``store.fs.replace_dir``), so a failed write leaves the previous bundle untouched.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.store.cache import Entry
from tftrt_build.store.digest import FileDigest, StatCache, combine, digest_bytes, hash_tree
from tftrt_build.emit import manifest
from tftrt_build.emit.spec import BundleSpec
from tftrt_build.errors import ConfigError
from tftrt_build.store.fs import link_tree, replace_dir, restore_dir


@dataclass(frozen=True)
class BundleWrite:
    spec: BundleSpec
    key: str
    files: dict[str, str]  # relative path -> content
    # (model name, version) -> the cache entries that fill the version folder, with the
    # sub-folder each goes to: the artifact at "", its warm-up records at "assets.extra".
    layers: dict[tuple[str, int], list[tuple[Entry, str]]]
    hardlink: bool


def version_digest(layers: list[tuple[Entry, str]]) -> str:
    """Digest of a version folder assembled from layers, as hash_tree would find it."""
    files = [
        FileDigest(f"{sub}/{f.path}" if sub else f.path, f.size, f.digest)
        for entry, sub in layers
        for f in entry.tree.files
    ]
    return combine(files)


def is_current(bundle_dir: Path, key: str, write: BundleWrite, stat_cache: StatCache) -> bool:
    """True when the bundle on disk is exactly what this write would produce."""
    try:
        doc = json.loads((bundle_dir / manifest.PATH).read_text())
    except (OSError, ValueError):
        return False
    if doc.get("key") != key:
        return False
    for path, digest in manifest.file_digests(write.files).items():
        try:
            if digest_bytes((bundle_dir / path).read_bytes()) != digest:
                return False
        except OSError:
            return False
    for (name, version), layers in write.layers.items():
        folder = bundle_dir / "models" / name / str(version)
        if not folder.is_dir() or hash_tree(folder, stat_cache).digest != version_digest(layers):
            return False
    return True


def write_bundle(bundle_dir: Path, write: BundleWrite) -> None:
    restore_dir(bundle_dir)
    if bundle_dir.exists() and not (bundle_dir / manifest.PATH).is_file() and any(bundle_dir.iterdir()):
        raise ConfigError(
            f"'{bundle_dir}' exists and is not a tftrt-build bundle; refusing to replace it",
            key="target.bundle_dir",
        )
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = bundle_dir.with_name(f".{bundle_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        digests: dict[str, str] = {}
        for (name, version), layers in sorted(write.layers.items()):
            folder = staged / "models" / name / str(version)
            for entry, sub in layers:
                target = folder / sub if sub else folder
                if sub and target.exists():
                    raise ConfigError(
                        f"model '{name}' already carries {sub}/; set target.warmup.enabled=false "
                        "to keep its own warm-up records",
                        key="target.warmup.enabled",
                    )
                link_tree(entry.data, target, write.hardlink)
            digests[f"{name}/{version}"] = version_digest(layers)
        for path, text in write.files.items():
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        (staged / manifest.PATH).write_text(
            manifest.render(write.spec, write.key, write.files, digests)
        )
        replace_dir(staged, bundle_dir)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
