"""Moving a stage's files in and out of a container: the upload and download of the Docker executor.

With a remote engine there is no shared disk: the task file and the inputs go in as one tar
(read-only, owned by the caller's uid) before the container starts, and the output folder comes
back as a tar, unpacked with tar's ``data`` filter.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from tftrt_build.execute.task import Task

# Where the stage's inputs, output and task file are inside the container.
IN, OUT, IO = "/tftrt/in", "/tftrt/out", "/tftrt/io"


def upload(task: Task, io_dir: Path) -> bytes:
    """A tar of /tftrt with the task file and the inputs, read-only, for put_archive."""
    buffer = io.BytesIO()
    uid, gid = os.getuid(), os.getgid()

    def add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
        tar.addfile(info)

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid = uid, gid
        info.mode = 0o555 if info.isdir() else 0o444
        return info

    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in (
            ("tftrt", 0o755),
            ("tftrt/in", 0o555),
            ("tftrt/io", 0o777),
            ("tftrt/out", 0o777),
        ):
            add_dir(tar, name, mode)
        tar.add(io_dir / "task.json", "tftrt/io/task.json", filter=owned)
        for name, path in task.inputs.items():
            source = path.parent if path.is_file() else path
            tar.add(source, f"tftrt/in/{name}", filter=owned)
    return buffer.getvalue()


def fetch_json(container: Any, path: str) -> dict[str, Any]:
    from docker.errors import NotFound

    try:
        stream, _ = container.get_archive(path)
    except NotFound:
        return {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member else None
        return dict(json.loads(handle.read())) if handle else {}


def download(container: Any, path: str, dest: Path) -> None:
    """Copy a container folder's content into dest (which exists and is empty)."""
    stream, _ = container.get_archive(path)
    with tempfile.TemporaryFile() as spool:
        for chunk in stream:
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool) as tar:
            top = PurePosixPath(path).name
            members = []
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if parts[0] != top or len(parts) == 1:
                    continue
                member.name = str(PurePosixPath(*parts[1:]))
                members.append(member)
            tar.extractall(dest, members=members, filter="data")


def lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace").rstrip()
    if pending:
        yield pending.decode(errors="replace").rstrip()
