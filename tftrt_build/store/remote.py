"""A shared remote cache (``cache.remote``): entries pushed to and pulled from any fsspec URL.

Machines that share a remote reuse what one of them built: a CI runner without a GPU pulls
the TF-TRT conversions a GPU host pushed. The remote holds the local store's own entries
(the same ``manifest.json``, the same BLAKE3 digests), laid out by content::

    <url>/blobs/<d[:2]>/<d>        a file of an entry, or an entry's manifest, named by digest
    <url>/entries/<k[:2]>/<k>      the digest of the manifest of the entry of cache key k
    <url>/tmp/<owner>.<random>     uploads in flight; never read (expire them with a bucket rule)

A push uploads every blob under ``tmp/`` and moves it to its digest's name, then the
manifest blob, and publishes the entry's pointer last: a push stopped anywhere before that
leaves no entry. A pull trusts nothing it fetched: the manifest must hash to the pointer's
digest and every file to the manifest's digest and size, or the entry is reported damaged
and the caller rebuilds it (and pushes the rebuilt one over it).

Credentials come from where the backend looks (environment, profiles, instance metadata);
the URL holds none (``config`` refuses one) and nothing here writes one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tftrt_build.errors import CacheError
from tftrt_build.store.digest import FileDigest, combine, digest_bytes, hash_file
from tftrt_build.store.steps import reached, step
from tftrt_build.store.tmp import Owner

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# What a failed remote call says, cut to this many characters of its first line.
_DETAIL = 200


class RemoteError(CacheError):
    """The remote cannot be used: unreachable, refused, or a call failed."""

    def __init__(self, message: str, hint: str) -> None:
        self.message = message
        super().__init__(f"{message} ({hint})")


class RemoteDamaged(Exception):
    """A remote entry that must not be used; ``str`` says what is wrong with it."""


@dataclass(frozen=True)
class Pulled:
    manifest: dict[str, Any]
    text: str  # the manifest as published, written locally unchanged


class Remote:
    """One remote cache, by URL; every call that fails raises ``RemoteError`` naming it."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        # Blobs this process found damaged: a push overwrites them even where they exist.
        self.suspect: set[str] = set()
        self._local = "file" in _protocols(fs)

    @classmethod
    def open(cls, url: str) -> Remote:
        """Connect and look once, so an unreachable remote fails before any work."""
        # fsspec and its backends (s3fs, gcsfs) only for builds that name a remote.
        import fsspec

        try:
            # A fresh client: fsspec would reuse one made for an earlier endpoint or credentials.
            fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
        except (ImportError, ValueError) as exc:
            raise RemoteError(
                f"cache.remote: {url}: {_detail(exc)}",
                "install 'tftrt-build[remote]', and gcsfs for gs://",
            ) from exc
        remote = cls(url, fs, root)
        remote._call("reach it", lambda: remote._probe())
        return remote

    def _probe(self) -> None:
        # An empty prefix is not found; a missing bucket is reported by the first push.
        with contextlib.suppress(FileNotFoundError):
            self.fs.ls(self.root)

    def _call(self, what: str, func: Any) -> Any:
        try:
            return func()
        except (RemoteDamaged, CacheError, FileNotFoundError):
            raise
        except Exception as exc:
            # Backends raise their own types (botocore, aiohttp, google.auth), not OSError.
            raise RemoteError(
                f"cache.remote: {self.url}: cannot {what}: {_detail(exc)}",
                "check the URL, the network and the credentials, or set "
                "cache.remote_required=false to build without it",
            ) from exc

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _pointer(self, key: str) -> str:
        return self._path("entries", key[:2], key)

    def _blob(self, digest: str) -> str:
        return self._path("blobs", digest[:2], digest)

    def has(self, key: str) -> bool:
        """Whether the remote publishes an entry for the key (not checked: plan, check)."""
        return bool(self._call("look up an entry", lambda: self.fs.exists(self._pointer(key))))

    def pull(self, key: str, data: Path) -> Pulled | None:
        """Fetch the entry of ``key`` into ``data`` and check it; None if there is none.

        Raises ``RemoteDamaged`` when anything fetched differs from its digest.
        """
        try:
            pointer = self._call("read an entry", lambda: self.fs.cat_file(self._pointer(key)))
        except FileNotFoundError:
            return None
        digest = pointer.decode("ascii", "replace").strip()
        if not _DIGEST.match(digest):
            raise RemoteDamaged("its pointer is not a digest")
        text_bytes = self._fetch(digest, "the manifest")
        if digest_bytes(text_bytes) != digest:
            self.suspect.add(digest)
            raise RemoteDamaged("its manifest does not match its digest")
        try:
            manifest = json.loads(text_bytes)
            files = [FileDigest(str(p), int(s), str(d)) for p, s, d in manifest["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteDamaged(f"unreadable manifest ({exc.__class__.__name__})") from exc
        if manifest.get("key") != key or combine(files) != manifest.get("digest"):
            raise RemoteDamaged("its manifest does not match the entry")
        for f in files:
            target = data / f.path
            if not target.resolve().is_relative_to(data.resolve()) or not _DIGEST.match(f.digest):
                raise RemoteDamaged(f"bad file name or digest in its manifest: {f.path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            blob = self._blob(f.digest)
            try:
                self._call("download a file", lambda b=blob, t=target: self.fs.get_file(b, str(t)))
            except FileNotFoundError as exc:
                raise RemoteDamaged(f"missing file {f.path}") from exc
            if target.stat().st_size != f.size or hash_file(target) != f.digest:
                self.suspect.add(f.digest)
                raise RemoteDamaged(f"{f.path} does not match its digest")
        return Pulled(manifest, text_bytes.decode())

    def _fetch(self, digest: str, what: str) -> bytes:
        try:
            blob = self._blob(digest)
            data: bytes = self._call("download a file", lambda: self.fs.cat_file(blob))
        except FileNotFoundError as exc:
            raise RemoteDamaged(f"{what} is missing") from exc
        return data

    def push(self, key: str, entry_path: Path) -> None:
        """Publish a committed local entry: its files, its manifest, then its pointer."""
        manifest_text = (entry_path / "manifest.json").read_bytes()
        manifest = json.loads(manifest_text)
        data = entry_path / "data"
        for rel, size, digest in manifest["files"]:
            local = data / rel
            self._put_blob(digest, size, lambda tmp, p=local: self.fs.put_file(str(p), tmp))
        reached("remote-files-pushed")
        digest = digest_bytes(manifest_text)
        self._put_blob(
            digest, len(manifest_text), lambda tmp: self.fs.pipe_file(tmp, manifest_text)
        )
        with step("remote-entry", self._pointer(key)):
            self._publish(self._pointer(key), lambda tmp: self.fs.pipe_file(tmp, digest.encode()))
        reached("remote-entry-published")
        log.info("cache.remote: pushed %s", key)

    def _put_blob(self, digest: str, size: int, upload: Any) -> None:
        blob = self._blob(digest)
        if digest not in self.suspect:
            try:
                if int(self._call("look up a file", lambda: self.fs.size(blob))) == size:
                    return  # content-addressed: already there
            except FileNotFoundError:
                pass
        with step("remote-blob", blob):
            self._publish(blob, upload)
        self.suspect.discard(digest)

    def _publish(self, final: str, upload: Any) -> None:
        """Upload under a temporary name, then move it to ``final`` in one step."""
        tmp = self._path("tmp", f"{Owner.me().tag()}.{uuid.uuid4().hex}")

        def run() -> None:
            if self._local:
                # A local folder has no implicit parents; object stores need none made.
                self.fs.makedirs(tmp.rsplit("/", 1)[0], exist_ok=True)
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            upload(tmp)
            self.fs.mv(tmp, final)

        self._call("upload", run)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _detail(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else exc.__class__.__name__
    return first if len(first) <= _DETAIL else first[:_DETAIL] + "…"
