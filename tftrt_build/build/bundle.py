"""Write a serving bundle to disk: model repository, config files and bundle.json, whole.

The one place a bundle's content is made. It is assembled in a commit folder of the store
(``store.commit.BundleCommit``) and swapped into place by the commit, with the lock. Every file
is a copy of its own (a reflink where the file system can make one): the bundle never shares
an inode with the cache, so an edit of either cannot change the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tftrt_build.emit import manifest
from tftrt_build.emit.spec import BundleSpec
from tftrt_build.errors import ConfigError
from tftrt_build.plan.integrity import bundle_edits, read_manifest, version_files
from tftrt_build.store.cache import Entry
from tftrt_build.store.digest import StatCache, combine
from tftrt_build.store.fs import copy_tree
from tftrt_build.store.steps import reached, step


@dataclass(frozen=True)
class BundleWrite:
    spec: BundleSpec
    key: str
    files: dict[str, str]  # relative path -> content
    # (model name, version) -> the cache entries that fill the version folder, with the
    # sub-folder each goes to: the artifact at "", its warm-up records at "assets.extra".
    layers: dict[tuple[str, int], list[tuple[Entry, str]]]


def version_digest(layers: list[tuple[Entry, str]]) -> str:
    """Digest of a version folder assembled from layers, as hash_tree would find it."""
    return combine(list(version_files(layers)))


def is_current(bundle_dir: Path, key: str, write: BundleWrite, stat_cache: StatCache) -> bool:
    """True when the bundle on disk is exactly what this write would produce."""
    doc = read_manifest(bundle_dir)
    if doc is None or doc.get("key") != key:
        return False
    if doc.get("files") != manifest.file_digests(write.files):
        return False
    recorded = {
        (m.get("name"), v.get("version")): v.get("digest")
        for m in doc.get("models") or []
        for v in m.get("versions") or []
    }
    wanted = {k: version_digest(layers) for k, layers in write.layers.items()}
    if recorded != wanted:
        return False
    expected = {f"{n}/{v}": version_files(layers) for (n, v), layers in write.layers.items()}
    return not bundle_edits(bundle_dir, stat_cache, expected)


def stage_bundle(staged: Path, write: BundleWrite, final: Path) -> None:
    """Assemble the whole bundle in ``staged`` (a folder that does not exist yet).

    ``final`` is where it is going, for the error line of a failed write.
    """
    with step("bundle", final):
        staged.mkdir()
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
                copy_tree(entry.data, target)
            digests[f"{name}/{version}"] = version_digest(layers)
        for path, text in write.files.items():
            target = staged / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        (staged / manifest.PATH).write_text(
            manifest.render(write.spec, write.key, write.files, digests)
        )
    reached("bundle-staged")
