"""Does what is on disk match what was recorded? Hand edits of a bundle, and the lock's digests.

Two questions, asked by ``mode=plan``, ``mode=check`` and a build alike:

- **Hand edits**: a bundle's ``bundle.json`` records the digest of every file tftrt-build wrote
  (configs, compose file, README) and of every version folder. A file that differs, is missing
  or was added is an edit, named by path; a build replaces it and says so.
- **Output digests**: the lock records the digest of each stage's output. Where that output is
  at hand (the cache entry, checked on lookup, or else the bundle's version folder), the two
  must agree; a lock edited by hand, or a build that is not reproducible, is named.

How far a digest is believed follows ``cache.verify``: with ``stat`` an unchanged size and mtime
means an unchanged file; with ``full`` (the default of ``mode=check``) every file is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.emit import manifest
from tftrt_build.store.cache import Entry
from tftrt_build.store.digest import FileDigest, StatCache, combine, digest_bytes, hash_tree

# Where a version's warm-up records go inside its folder.
WARMUP_DIR = "assets.extra"


@dataclass(frozen=True)
class Edit:
    """A file of a bundle that is not as tftrt-build wrote it."""

    path: str  # relative to the bundle folder, POSIX
    what: str  # edited, missing, added

    def __str__(self) -> str:
        return f"{self.path} {self.what}"


def version_files(layers: list[tuple[Entry, str]]) -> tuple[FileDigest, ...]:
    """The files of a version folder assembled from cache entries, as hash_tree would list them.

    ``layers`` are the entries and the sub-folder each goes to: the artifact at "", its
    warm-up records at WARMUP_DIR.
    """
    files = [
        FileDigest(f"{sub}/{f.path}" if sub else f.path, f.size, f.digest)
        for entry, sub in layers
        for f in entry.tree.files
    ]
    return tuple(sorted(files, key=lambda f: f.path))


def read_manifest(bundle_dir: Path) -> dict[str, Any] | None:
    """The bundle's bundle.json, or None when there is none (or it is not JSON)."""
    try:
        doc = json.loads((bundle_dir / manifest.PATH).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def bundle_edits(
    bundle_dir: Path,
    stat_cache: StatCache,
    expected: dict[str, tuple[FileDigest, ...]] | None = None,
) -> list[Edit]:
    """Files of the bundle that differ from what its bundle.json records.

    ``expected`` holds, per "<model>/<version>", the files the version folder was filled
    with (from the cache), so an edited model file is named; without it the folder is.
    """
    if not bundle_dir.is_dir():
        return []
    doc = read_manifest(bundle_dir)
    if doc is None:
        has_files = any(bundle_dir.iterdir())
        return [Edit(manifest.PATH, "missing or unreadable")] if has_files else []
    edits: list[Edit] = []
    listed = doc.get("files")
    files: dict[str, str] = listed if isinstance(listed, dict) else {}
    versions: dict[str, str] = {}
    for model in doc.get("models") or []:
        for v in model.get("versions") or []:
            versions[f"{model.get('name')}/{v.get('version')}"] = str(v.get("digest"))
    # tftrt-build writes only paths inside the bundle; a bundle.json naming any other was
    # edited, and what it names is neither read nor hashed.
    unsafe = [p for p in files if not _inside(p)] + [n for n in versions if not _inside(n)]
    if unsafe:
        edits.append(Edit(manifest.PATH, "edited"))
        files = {p: d for p, d in files.items() if _inside(p)}
        versions = {n: d for n, d in versions.items() if _inside(n)}
    for path, digest in sorted(files.items()):
        if (bundle_dir / path).is_symlink():
            edits.append(Edit(path, "edited"))  # tftrt-build writes no links; not followed
            continue
        try:
            data = (bundle_dir / path).read_bytes()
        except OSError:
            edits.append(Edit(path, "missing"))
            continue
        if digest_bytes(data) != digest:
            edits.append(Edit(path, "edited"))
    for name, digest in sorted(versions.items()):
        edits += _version_edits(bundle_dir, name, digest, stat_cache, (expected or {}).get(name))
    known = {*files, manifest.PATH}
    # Version folders were compared file by file above: the walk does not go into them.
    skip = {f"models/{name}" for name in versions}
    edits += [Edit(rel, "added") for rel in _files(bundle_dir, skip) if rel not in known]
    return edits


def _version_edits(
    bundle_dir: Path,
    name: str,
    digest: str,
    stat_cache: StatCache,
    expected: tuple[FileDigest, ...] | None,
) -> list[Edit]:
    folder = bundle_dir / "models" / name
    if any(p.is_symlink() for p in (folder, folder.parent, folder.parent.parent)):
        return [Edit(f"models/{name}/", "edited")]  # a link put in by hand: not followed
    if not folder.is_dir():
        return [Edit(f"models/{name}/", "missing")]
    if links := _links(folder):
        # tftrt-build writes no links: each is an edit, and none is followed (a pair of links
        # to "." made the walk endless; a link out of the bundle was read).
        known = {f.path for f in expected or ()}
        return [Edit(f"models/{name}/{p}", "edited" if p in known else "added") for p in links]
    tree = hash_tree(folder, stat_cache)
    if tree.digest == digest:
        return []
    if expected is None or combine(list(expected)) != digest:
        return [Edit(f"models/{name}/", "edited")]
    found = {f.path: f for f in tree.files}
    wanted = {f.path: f for f in expected}
    edits = [Edit(f"models/{name}/{p}", "missing") for p in sorted(set(wanted) - set(found))]
    edits += [Edit(f"models/{name}/{p}", "added") for p in sorted(set(found) - set(wanted))]
    edits += [
        Edit(f"models/{name}/{p}", "edited")
        for p in sorted(set(found) & set(wanted))
        if found[p] != wanted[p]
    ]
    return edits


def _links(folder: Path) -> list[str]:
    """Symbolic links under a folder, not followed, as POSIX paths relative to it."""
    found: list[str] = []
    stack = [("", os.fspath(folder))]
    while stack:
        relative, path = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_symlink():
                    found.append(relative + entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((f"{relative}{entry.name}/", entry.path))
    return sorted(found)


def _inside(relative: str) -> bool:
    """Whether a path bundle.json gives stays inside the bundle: plain names joined by '/'."""
    parts = relative.split("/")
    return all(part not in ("", ".", "..") and "\\" not in part for part in parts)


def _files(root: Path, skip: set[str]) -> list[str]:
    """POSIX paths, relative to root, of the files under it, outside the folders in skip."""
    top = os.fspath(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        folder = dirpath[len(top) :].strip(os.sep).replace(os.sep, "/")
        prefix = f"{folder}/" if folder else ""
        dirnames[:] = sorted(d for d in dirnames if prefix + d not in skip)
        # A link to a folder is not walked into (it may lead anywhere): it is named itself.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        found.extend(prefix + n for n in sorted([*filenames, *links]))
    return found


def artifact_digest_in_bundle(
    bundle_dir: Path,
    doc: dict[str, Any],
    artifact: str,
    key: str,
    warmups: set[tuple[str, int]],
    stat_cache: StatCache,
) -> str | None:
    """The digest of an artifact as a bundle holds it: its version folder, less the warm-up
    records where ``warmups`` says the version has them."""
    for model in doc.get("models") or []:
        for v in model.get("versions") or []:
            if v.get("artifact") != artifact or v.get("key") != key:
                continue
            name, number = str(model.get("name")), v.get("version")
            if not _inside(f"{name}/{number}"):
                return None  # an edited bundle.json (bundle_edits names it)
            folder = bundle_dir / "models" / name / str(number)
            if not folder.is_dir():
                return None
            warm = (name, number) in warmups
            files = [
                f
                for f in hash_tree(folder, stat_cache).files
                if not (warm and f.path.startswith(WARMUP_DIR + "/"))
            ]
            return combine(files)
    return None


def output_mismatch(
    item: str, stage: str, recorded: Any, actual: str | None, where: str
) -> tuple[str, str] | None:
    """A (item, reason) pair when the lock's output digest differs from what is at hand."""
    if actual is None:
        return None
    digest = recorded.get("digest") if isinstance(recorded, dict) else None
    if digest == actual:
        return None
    said = f"{str(digest)[:12]}…" if digest else "nothing"
    return (
        f"{item} {stage}",
        f"output digest in tftrt.lock is {said}, but {where} holds {actual[:12]}… "
        "(the lock was edited, or the build is not reproducible)",
    )
