"""Moving a stage's files in and out of a container: where inputs go, upload and download.

Inside the container a folder input is ``/tftrt/in/<name>``; a file input sits in
``/tftrt/in/<name>/`` with its companions (an export script's declared deps) at the same
relative places as on the host, and nothing else of its folder (``layout``). With a local
engine these are bind mounts; with a remote one there is no shared disk: the task file and
the inputs go in as one tar (read-only, owned by the stage's uid) before the container starts,
and the output folder comes back as a tar, of which only folders and regular files are taken.
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

from tftrt_build.errors import StageError
from tftrt_build.execute.task import Task

# Where the stage's inputs, output and task file are inside the container.
IN, OUT, IO = "/tftrt/in", "/tftrt/out", "/tftrt/io"


def layout(task: Task) -> list[tuple[str, Path]]:
    """(path inside the container, path on this machine) of every input file and folder."""
    placed: list[tuple[str, Path]] = []
    for name, path in task.inputs.items():
        base = PurePosixPath(IN) / name
        if not path.is_file():
            placed.append((str(base), path))
            continue
        files = [path.absolute(), *(p.absolute() for p in task.companions.get(name, ()))]
        common = Path(os.path.commonpath([f.parent for f in files]))
        placed.extend((str(base / f.relative_to(common).as_posix()), f) for f in files)
    return placed


def inside(task: Task, name: str) -> str:
    """Where the input ``name`` is inside the container."""
    path = task.inputs[name]
    if not path.is_file():
        return str(PurePosixPath(IN) / name)
    wanted = path.absolute()
    return next(target for target, source in layout(task) if source == wanted)


def upload(task: Task, io_dir: Path, user: tuple[int, int]) -> bytes:
    """A tar of /tftrt with the task file and the inputs, read-only, for put_archive.

    The task and output folders belong to the stage's uid with mode 0700; inputs are
    read-only files of that uid.
    """
    buffer = io.BytesIO()
    uid, gid = user

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
            ("tftrt/io", 0o700),
            ("tftrt/out", 0o700),
        ):
            add_dir(tar, name, mode)
        tar.add(io_dir / "task.json", "tftrt/io/task.json", filter=owned)
        made = {"tftrt", "tftrt/in"}
        for target, source in layout(task):
            arcname = target.lstrip("/")
            for parent in reversed(PurePosixPath(arcname).parents):
                if str(parent) not in made and str(parent) != ".":
                    add_dir(tar, str(parent), 0o555)
                    made.add(str(parent))
            tar.add(source, arcname, filter=owned)
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
    """Copy a container folder's content into dest (which exists and is empty).

    Only folders and regular files are taken: a link the container sent back (to a host
    file, or to a folder of the cache) is refused, naming it, before anything is written.
    """
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
                name = str(PurePosixPath(*parts[1:]))
                if not (member.isreg() or member.isdir()):
                    what = (
                        f"a link to '{member.linkname}'"
                        if member.issym() or member.islnk()
                        else "not a regular file or folder"
                    )
                    raise StageError(
                        f"the stage's output '{name}' is {what}: a stage output holds "
                        "folders and files only"
                    )
                member.name = name
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
