"""Archives a model source names: downloaded with a timeout, unpacked without escaping."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tftrt_build.errors import ConfigError, SourceError
from tftrt_build.store.digest import Progress


def download(url: str, part: Path, progress: Progress | None, file: str | None) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            with Path(parsed.path).open("rb") as src, part.open("wb") as out:
                shutil.copyfileobj(src, out)
        except OSError as exc:
            raise SourceError(f"cannot read {url}: {exc.strerror}") from exc
        return
    if parsed.scheme not in ("http", "https"):
        raise ConfigError(
            f"'{url}' is not an http, https or file URL", key="model.source.url", file=file
        )
    import requests

    try:
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            with part.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
    except requests.RequestException as exc:
        raise SourceError(f"cannot download {url}: {exc}") from exc


def extract(archive: Path, root: Path) -> None:
    """Unpack a tar or zip archive, refusing members that would land outside ``root``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(name)
                zf.extractall(root)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(root, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"cannot unpack {archive.name}: {exc}") from exc


def _check_member(name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise SourceError(f"archive member '{name}' would be written outside the archive folder")
