"""Archives a model source names: downloaded with timeouts and retries, unpacked within limits.

A download has a connect and a read timeout; transient failures (refused connections, HTTP
429/5xx) are retried with exponential backoff by urllib3's ``Retry``, and a body cut off
mid-way restarts the download from the start into a truncated file, so a partial file is never
used (the sha256 pin is checked afterwards anyway).

Unpacking refuses what the archive could do to the machine: members outside the unpack
folder (tar's ``data`` filter, and the same rules for zip), special files, more members or
more bytes than the limits allow (a bomb; for a tar, metadata headers count too, and none may
be larger than ``tarstream.MAX_HEADER``), and a damaged or foreign file, each as one line naming the
archive. Links are never written while files are: symbolic and hard links (and zip
members marked as symbolic links) are made last, as symbolic links checked to stay inside the
unpack folder, and ``execute.trees.make_plain`` then resolves them within the SavedModel
folder that is kept, or refuses them.
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tftrt_build.errors import SourceError
from tftrt_build.stages.tarstream import open_tar
from tftrt_build.store.digest import Progress


@dataclass(frozen=True)
class Retries:
    """How hard a download tries; the defaults suit a large file on a flaky link."""

    attempts: int = 5
    # Seconds before the second attempt; doubled for each one after.
    backoff_s: float = 0.5
    connect_timeout_s: float = 10.0
    # Longest silence while waiting for a response or the next bytes of the body.
    read_timeout_s: float = 60.0


@dataclass(frozen=True)
class Limits:
    """The most an archive may unpack to."""

    max_bytes: int
    max_members: int
    # Why max_bytes is what it is, for the message ("10 x the archive's 2.0 MB").
    bytes_reason: str = ""


# HTTP statuses worth another try: rate limiting and a server or gateway in trouble.
_TRANSIENT = (429, 500, 502, 503, 504)


def download(
    url: str,
    part: Path,
    progress: Progress | None,
    retries: Retries = Retries(),
) -> None:
    """Fetch url into part (created or truncated), or raise SourceError."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            with Path(parsed.path).open("rb") as src, part.open("wb") as out:
                shutil.copyfileobj(src, out)
        except OSError as exc:
            raise SourceError(io_problem(exc, f"download {url} into {part}")) from exc
        return
    # config.checks refused every other scheme when the config was resolved.
    assert parsed.scheme in ("http", "https"), url
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries.attempts - 1,
        backoff_factor=retries.backoff_s,
        status_forcelist=_TRANSIENT,
        allowed_methods=frozenset({"GET"}),
        # A server's Retry-After could ask for hours: the backoff above bounds the wait.
        respect_retry_after_header=False,
        raise_on_status=True,
    )
    timeout = (retries.connect_timeout_s, retries.read_timeout_s)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        for attempt in range(1, retries.attempts + 1):
            receiving = False
            try:
                with session.get(url, stream=True, timeout=timeout) as response:
                    response.raise_for_status()
                    receiving = True
                    # "wb" truncates: a restarted download never keeps a previous attempt's bytes.
                    with part.open("wb") as out:
                        for chunk in response.iter_content(1 << 20):
                            out.write(chunk)
                            if progress:
                                progress(len(chunk))
                return
            except requests.RequestException as exc:
                # Before the body, urllib3 has retried already; a body cut off restarts here.
                if not receiving or attempt == retries.attempts:
                    tries = f" (after {attempt} attempts)" if receiving else ""
                    raise SourceError(f"cannot download {url}{tries}: {_first(exc)}") from exc
            except OSError as exc:
                raise SourceError(io_problem(exc, f"download {url} into {part}")) from exc
            time.sleep(retries.backoff_s * 2 ** (attempt - 1))


def extract(archive: Path, root: Path, label: str, limits: Limits) -> None:
    """Unpack a tar or zip archive into the empty folder ``root``, within ``limits``.

    ``label`` names the archive in messages (its URL or project path).
    """
    try:
        if zipfile.is_zipfile(archive):
            links = _extract_zip(archive, root, label, limits)
        else:
            links = _extract_tar(archive, root, label, limits)
        for name, target in links:
            _make_link(root, name, target, label)
    except SourceError:
        raise
    except tarfile.ReadError as exc:
        if "could not be opened successfully" in str(exc) or "empty file" in str(exc):
            raise SourceError(
                f"cannot unpack {label}: it is not a tar (.tar, .tar.gz, .tar.bz2, .tar.xz) "
                "or zip archive"
            ) from exc
        raise SourceError(f"cannot unpack {label}: {_first(exc)} (a damaged archive?)") from exc
    except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise SourceError(
            f"cannot unpack {label}: {_first(exc)} (a truncated or damaged archive?)"
        ) from exc
    except (tarfile.TarError, ValueError) as exc:
        raise SourceError(f"cannot unpack {label}: {_first(exc)}") from exc
    except OSError as exc:
        if exc.errno is None:  # gzip's BadGzipFile, bz2's "Invalid data stream"
            raise SourceError(f"cannot unpack {label}: {_first(exc)} (a damaged archive?)") from exc
        raise SourceError(io_problem(exc, f"unpack {label} into {root}")) from exc


def _extract_tar(archive: Path, root: Path, label: str, limits: Limits) -> list[tuple[str, str]]:
    links: list[tuple[str, str]] = []
    total = 0
    with contextlib.ExitStack() as stack:
        tar = open_tar(archive, label, limits.max_bytes, limits.max_members, stack)
        # Member by member: a bomb of tiny members stops at the limit, not after listing all.
        for count, member in enumerate(tar, start=1):
            if count > limits.max_members:
                raise _too_many(label, limits)
            if member.isreg():
                total += member.size
                if total > limits.max_bytes:
                    raise _too_big(label, limits)
            # Names stay inside root, no device files, no absolute or outward links.
            checked = tarfile.data_filter(member, str(root))
            if member.issym():
                links.append((checked.name, checked.linkname))
            elif member.islnk():
                # A hard link names its target from the archive's root: the same link,
                # relative to the member's own folder.
                target = posixpath.relpath(checked.linkname, posixpath.dirname(checked.name) or ".")
                links.append((checked.name, target))
            elif member.isreg() or member.isdir():
                tar.extract(checked, root, filter="data")
            else:
                raise SourceError(
                    f"{label}: member '{member.name}' is not a file, folder or link; nothing "
                    "was unpacked"
                )
    return links


def _extract_zip(archive: Path, root: Path, label: str, limits: Limits) -> list[tuple[str, str]]:
    links: list[tuple[str, str]] = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise _too_many(label, limits)
        # zipfile stops every member at its declared size, so the sum is what is written.
        if sum(i.file_size for i in infos) > limits.max_bytes:
            raise _too_big(label, limits)
        for info in infos:
            name = info.filename
            p = PurePosixPath(name)
            if p.is_absolute() or ".." in p.parts or "\\" in name:
                raise SourceError(
                    f"{label}: member '{name}' would be written outside the archive folder"
                )
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                links.append((name.rstrip("/"), zf.read(info).decode("utf-8", "replace")))
            elif kind in (0, stat.S_IFREG, stat.S_IFDIR):
                zf.extract(info, root)
            else:
                raise SourceError(
                    f"{label}: member '{name}' is not a file, folder or link; nothing was unpacked"
                )
    return links


def _make_link(root: Path, name: str, target: str, label: str) -> None:
    """A symbolic link at root/name, refused unless it and what it names stay inside root.

    Checked now, on the real paths of a tree that already holds every file and every link
    made before it, so a link through an earlier link cannot point or land elsewhere.
    """
    real_root = os.path.realpath(root)
    folder = os.path.realpath(os.path.join(real_root, posixpath.dirname(name)))
    at = os.path.join(folder, posixpath.basename(name))
    to = os.path.realpath(os.path.join(folder, target))
    inside = all(os.path.commonpath([p, real_root]) == real_root for p in (folder, to))
    if posixpath.isabs(target) or not inside:
        raise SourceError(
            f"{label}: member '{name}' is a link to '{target}', outside the archive; nothing "
            "was unpacked"
        )
    if os.path.lexists(at):
        raise SourceError(f"{label}: member '{name}' is a link over another member")
    os.makedirs(folder, exist_ok=True)  # resolved and inside root: no link is followed out
    os.symlink(target, at)


def _too_many(label: str, limits: Limits) -> SourceError:
    return SourceError(
        f"{label} holds more than {limits.max_members} members (model.source.max_members); "
        "nothing was kept"
    )


def _too_big(label: str, limits: Limits) -> SourceError:
    return SourceError(
        f"{label} unpacks to more than {limits.max_bytes} bytes ({limits.bytes_reason}); "
        "nothing was kept"
    )


def io_problem(exc: OSError, step: str) -> str:
    """A file-system error in one line: the step that failed (naming where it writes), why,
    and the file concerned. A full disk names no file: the one an error carries may be the
    source of a copy, while the step already names the folder being written."""
    if exc.errno == errno.ENOSPC:
        return f"cannot {step}: no space left on device"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"cannot {step}: {exc.strerror or exc}{where}"


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
