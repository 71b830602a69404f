"""Escapes: what a model source could do to files outside the project, and what it may not.

Rule: no symbolic or hard link of any source reaches the cache. A link is resolved to a copy
of its target only when that target is a regular file inside the SavedModel folder kept (not
the archive's unpack folder); any other link is refused, naming it, before anything is kept.
Archives are also held to a size and a member-count limit, and a damaged archive is one line.

Each case of ``ARCHIVES`` builds an archive in ``tmp_path`` and unpacks it as the source stage
does (``Source._unpack``), in-process: no TensorFlow is needed to refuse, and nothing outside
``tmp_path`` is touched. The cases that need the whole build (the escape as reported, a local
folder, the Docker executor's download) are below the table, and last the stage process,
which must not import a module of the project folder it is started from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project

from tftrt_build.config.schema import ModelConf, SourceConf, SourceKind
from tftrt_build.errors import SourceError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import python_command, runner_env, stage_command
from tftrt_build.execute.trees import copy_plain, make_plain
from tftrt_build.stages.source import Source
from tftrt_build.store.digest import StatCache

SECRET = b"host secret\n"
# Depth of the SavedModel folder inside the archive and of the link below it: deep enough that
# "../" x (both) stays inside the unpack folder, yet climbs to / once the folder is moved up.
WRAP, DEEP = 20, 12


@dataclass
class Host:
    """A file outside the project that no archive may touch."""

    secret: Path

    def untouched(self) -> None:
        assert self.secret.read_bytes() == SECRET
        assert stat.S_IMODE(self.secret.stat().st_mode) == 0o600
        assert self.secret.stat().st_nlink == 1


def _tar(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz"
) -> None:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


MODEL = "m"  # the SavedModel folder of the simple cases


def _model(folder: str = MODEL) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [_file(f"{folder}/saved_model.pb", b"pb"), _file(f"{folder}/variables/v.data", b"v")]


def _zip(path: Path, members: list[tuple[str, bytes, int]]) -> None:
    """Members as (name, data, unix mode with file type); a link's data is its target."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)


def escape_deep(tmp: Path, host: Host) -> Path:
    """As reported: d0/.../d11/pw -> ../ x N + the host file, inside the unpack folder until
    the SavedModel folder is moved up into the cache."""
    folder = "/".join(f"w{i}" for i in range(WRAP)) + "/model"
    link = folder + "/" + "/".join(f"d{i}" for i in range(DEEP)) + "/pw"
    target = "../" * (WRAP + 1 + DEEP) + str(host.secret).lstrip("/")
    _tar(tmp / "a.tar.gz", [*_model(folder), _link(link, target)])
    return tmp / "a.tar.gz"


def escape_absolute(tmp: Path, host: Host) -> Path:
    _tar(tmp / "a.tar.gz", [*_model(), _link(f"{MODEL}/pw", str(host.secret))])
    return tmp / "a.tar.gz"


def escape_up(tmp: Path, host: Host) -> Path:
    _tar(tmp / "a.tar.gz", [*_model(), _link(f"{MODEL}/pw", "../" * 40 + "etc/passwd")])
    return tmp / "a.tar.gz"


def link_to_folder_outside(tmp: Path, host: Host) -> Path:
    # Inside the archive, outside the SavedModel folder: its files must not come along.
    _tar(
        tmp / "a.tar.gz",
        [*_model(), _dir("other"), _file("other/x", b"o"), _link(f"{MODEL}/extra", "../other")],
    )
    return tmp / "a.tar.gz"


def link_to_folder_inside(tmp: Path, host: Host) -> Path:
    _tar(tmp / "a.tar.gz", [*_model(), _link(f"{MODEL}/again", "variables")])
    return tmp / "a.tar.gz"


def link_to_file_outside_model(tmp: Path, host: Host) -> Path:
    _tar(tmp / "a.tar.gz", [*_model(), _file("README", b"r"), _link(f"{MODEL}/r", "../README")])
    return tmp / "a.tar.gz"


def hard_link_outside_model(tmp: Path, host: Host) -> Path:
    members = [
        *_model(),
        _file("other.data", b"o"),
        _link(f"{MODEL}/h", "other.data", tarfile.LNKTYPE),
    ]
    _tar(tmp / "a.tar.gz", members)
    return tmp / "a.tar.gz"


def hard_link_to_host(tmp: Path, host: Host) -> Path:
    target = "../" * 30 + str(host.secret).lstrip("/")
    _tar(tmp / "a.tar.gz", [*_model(), _link(f"{MODEL}/h", target, tarfile.LNKTYPE)])
    return tmp / "a.tar.gz"


def zip_symlink_outside(tmp: Path, host: Host) -> Path:
    _zip(
        tmp / "a.zip",
        [
            ("m/saved_model.pb", b"pb", stat.S_IFREG | 0o644),
            ("m/pw", str(host.secret).encode(), stat.S_IFLNK | 0o777),
        ],
    )
    return tmp / "a.zip"


def zip_symlink_up(tmp: Path, host: Host) -> Path:
    _zip(
        tmp / "a.zip",
        [
            ("m/saved_model.pb", b"pb", stat.S_IFREG | 0o644),
            ("m/pw", b"../../../../../../../../etc/passwd", stat.S_IFLNK | 0o777),
        ],
    )
    return tmp / "a.zip"


def zip_member_up(tmp: Path, host: Host) -> Path:
    _zip(
        tmp / "a.zip",
        [
            ("m/saved_model.pb", b"pb", stat.S_IFREG | 0o644),
            ("../evil", b"e", stat.S_IFREG | 0o644),
        ],
    )
    return tmp / "a.zip"


def fifo_member(tmp: Path, host: Host) -> Path:
    info = tarfile.TarInfo(f"{MODEL}/fifo")
    info.type = tarfile.FIFOTYPE
    _tar(tmp / "a.tar.gz", [*_model(), (info, None)])
    return tmp / "a.tar.gz"


def tar_bomb(tmp: Path, host: Host) -> Path:
    # 64 MiB of zeros compress to about 64 kB: a thousand times the archive's size.
    with tarfile.open(tmp / "a.tar.gz", "w:gz") as tar:
        for info, data in _model():
            tar.addfile(info, io.BytesIO(data or b""))
        info = tarfile.TarInfo(f"{MODEL}/variables/zeros")
        info.size = 64 << 20
        tar.addfile(info, _Zeros(info.size))
    return tmp / "a.tar.gz"


def zip_bomb(tmp: Path, host: Host) -> Path:
    with zipfile.ZipFile(tmp / "a.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m/saved_model.pb", b"pb")
        zf.writestr("m/variables/zeros", bytes(32 << 20))
    return tmp / "a.zip"


def member_bomb(tmp: Path, host: Host) -> Path:
    # With model.source.max_members=50 (below): 200 empty files.
    _tar(tmp / "a.tar.gz", [*_model(), *(_file(f"{MODEL}/assets/{i}", b"") for i in range(200))])
    return tmp / "a.tar.gz"


def _gz_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A .tar.gz of these headers and members, block by block, in order: tarfile's writer
    would not write a metadata header (pax, GNU long name) on its own."""
    with gzip.open(path, "wb") as out:
        for info, data in entries:
            info.size = len(data or b"")
            out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            out.write((data or b"") + bytes(-info.size % tarfile.BLOCKSIZE))
        out.write(bytes(2 * tarfile.BLOCKSIZE))
    return path


def _header(kind: bytes, body: bytes) -> tuple[tarfile.TarInfo, bytes]:
    """A metadata header: tarfile reads it whole into memory before the member it describes."""
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    info.type = kind
    return info, body


def _pax(size: int) -> bytes:
    """A pax header body: one record of about ``size`` bytes."""
    record = b"comment=" + b"a" * size + b"\n"
    length = len(record) + 1
    while len(f"{length} ".encode() + record) != length:
        length = len(f"{length} ".encode() + record)
    return f"{length} ".encode() + record


# 32 MiB of one repeated byte compress to about 32 kB.
def pax_header_bomb(tmp: Path, host: Host) -> Path:
    return _gz_tar(tmp / "a.tar.gz", [_header(tarfile.XHDTYPE, _pax(32 << 20)), *_model()])


def long_name_bomb(tmp: Path, host: Host) -> Path:
    body = b"n" * (32 << 20) + b"\0"
    return _gz_tar(tmp / "a.tar.gz", [_header(tarfile.GNUTYPE_LONGNAME, body), *_model()])


def many_pax_headers(tmp: Path, host: Host) -> Path:
    # Each header under the size cap, 40 MiB of them in all: more than the limit allows for
    # the headers of 10000 members, though the members' data is a few bytes.
    members = [*_model(), *(_file(f"{MODEL}/x{i}", b"") for i in range(38))]
    entries = [e for m in members for e in (_header(tarfile.XHDTYPE, _pax(1_000_000)), m)]
    return _gz_tar(tmp / "a.tar.gz", entries)


def truncated(tmp: Path, host: Host) -> Path:
    _tar(tmp / "whole.tar.gz", [*_model(), _file(f"{MODEL}/variables/r", os.urandom(200_000))])
    data = (tmp / "whole.tar.gz").read_bytes()
    (tmp / "a.tar.gz").write_bytes(data[: len(data) // 2])
    return tmp / "a.tar.gz"


def random_bytes(tmp: Path, host: Host) -> Path:
    (tmp / "a.tar.gz").write_bytes(os.urandom(100_000))
    return tmp / "a.tar.gz"


def empty_file(tmp: Path, host: Host) -> Path:
    (tmp / "a.tar.gz").write_bytes(b"")
    return tmp / "a.tar.gz"


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


Make = Callable[[Path, Host], Path]
REFUSED: list[tuple[str, Make, list[str]]] = [
    # (case, archive, words the one line must hold)
    (
        "12-level ../ link",
        escape_deep,
        ["member 'w0/", "/d11/pw' is a link to", "outside the folder kept"],
    ),
    ("absolute link", escape_absolute, ["a.tar.gz", "absolute"]),
    ("link above the archive", escape_up, ["a.tar.gz", "outside"]),
    ("link to a folder outside the model", link_to_folder_outside, ["member 'm/extra'", "outside"]),
    ("link to a folder inside the model", link_to_folder_inside, ["member 'm/again'", "folder"]),
    ("link to a file beside the model", link_to_file_outside_model, ["member 'm/r'", "outside"]),
    ("hard link beside the model", hard_link_outside_model, ["member 'm/h'", "outside"]),
    ("hard link to a host file", hard_link_to_host, ["a.tar.gz", "outside"]),
    ("zip symlink to a host file", zip_symlink_outside, ["a.zip", "member 'm/pw'", "outside"]),
    ("zip symlink up", zip_symlink_up, ["a.zip", "member 'm/pw'", "outside the archive"]),
    ("zip member above", zip_member_up, ["a.zip", "'../evil'", "outside the archive folder"]),
    ("fifo member", fifo_member, ["a.tar.gz", "m/fifo"]),
    ("tar bomb", tar_bomb, ["a.tar.gz unpacks to more than", "model.source.max_unpacked_ratio"]),
    ("zip bomb", zip_bomb, ["a.zip unpacks to more than", "model.source.max_unpacked_ratio"]),
    ("member-count bomb", member_bomb, ["a.tar.gz holds more than 50 members", "max_members"]),
    ("pax-header bomb", pax_header_bomb, ["a.tar.gz", "header of more than", "nothing was kept"]),
    ("GNU long-name bomb", long_name_bomb, ["a.tar.gz", "header of more than"]),
    ("many pax headers", many_pax_headers, ["a.tar.gz unpacks to more than", "plus headers"]),
    ("truncated .tar.gz", truncated, ["cannot unpack", "a.tar.gz", "truncated or damaged"]),
    ("random bytes", random_bytes, ["cannot unpack", "a.tar.gz", "not a tar", "or zip archive"]),
    ("empty file", empty_file, ["cannot unpack", "a.tar.gz", "not a tar"]),
]


def _source(tmp: Path, archive: Path, **extra: object) -> Source:
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    model = ModelConf(
        name="m", source=SourceConf(kind=SourceKind.archive, path=archive.name, sha256=sha, **extra)
    )
    return Source(model, "conf/model/m.yaml", tmp, StatCache(None), LocalExecutor(), tmp / "dl")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    return Host(secret)


def _staging(tmp_path: Path) -> Path:
    dest = tmp_path / "cache" / "tmp" / "key.1.abc" / "data"
    dest.mkdir(parents=True)
    return dest


@pytest.mark.parametrize(("case", "make", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_archive_is_refused_in_one_line_and_nothing_is_kept(
    tmp_path: Path, host: Host, case: str, make: Make, words: list[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    archive = make(project, host)
    source = _source(project, archive, **({"max_members": 50} if make is member_bomb else {}))
    dest = _staging(tmp_path)
    with pytest.raises(SourceError) as info:
        source._unpack(source.fetch(), dest)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    host.untouched()
    # Nothing kept: the staging folder is empty and the unpack folder is gone.
    assert list(dest.iterdir()) == []
    assert [p.name for p in dest.parent.iterdir()] == ["data"]


def test_pax_headers_of_a_real_size_are_read(tmp_path: Path) -> None:
    """The header limits leave real pax headers alone: long names and attributes on every
    member of an archive with many small members."""
    long = "/".join(["d" * 60] * 4)
    members = [
        *_model(f"{long}/m"),
        *(_file(f"{long}/m/assets/{'a' * 120}{i}", b"") for i in range(300)),
    ]
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data or b"")
            info.pax_headers = {"comment": "c" * 2000, "mtime": "1700000000.123456789"}
            tar.addfile(info, io.BytesIO(data or b""))
    source = _source(tmp_path, tmp_path / "a.tar.gz")
    dest = _staging(tmp_path)
    source._unpack(source.fetch(), dest)
    assert (dest / "saved_model.pb").read_bytes() == b"pb"
    assert len(list((dest / "assets").iterdir())) == 300


# Links that resolve to a file of the SavedModel folder become plain copies of it.
RESOLVED: list[tuple[str, Make, dict[str, bytes]]] = [
    (
        "tar symlink inside",
        lambda tmp, host: _tar_to(tmp, [*_model(), _link(f"{MODEL}/alias", "variables/v.data")]),
        {"alias": b"v"},
    ),
    (
        "tar chain of links inside",
        lambda tmp, host: _tar_to(
            tmp,
            [*_model(), _link(f"{MODEL}/a", "b"), _link(f"{MODEL}/b", "variables/v.data")],
        ),
        {"a": b"v", "b": b"v"},
    ),
    (
        "tar hard link inside",
        lambda tmp, host: _tar_to(
            tmp, [*_model(), _link(f"{MODEL}/h", f"{MODEL}/variables/v.data", tarfile.LNKTYPE)]
        ),
        {"h": b"v", "variables/v.data": b"v"},
    ),
    (
        "zip symlink inside",
        lambda tmp, host: _zip_to(
            tmp,
            [
                ("m/saved_model.pb", b"pb", stat.S_IFREG | 0o644),
                ("m/variables/v.data", b"v", stat.S_IFREG | 0o644),
                ("m/alias", b"variables/v.data", stat.S_IFLNK | 0o777),
            ],
        ),
        {"alias": b"v"},
    ),
]


def _tar_to(tmp: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    _tar(tmp / "a.tar.gz", members)
    return tmp / "a.tar.gz"


def _zip_to(tmp: Path, members: list[tuple[str, bytes, int]]) -> Path:
    _zip(tmp / "a.zip", members)
    return tmp / "a.zip"


@pytest.mark.parametrize(("case", "make", "files"), RESOLVED, ids=[c[0] for c in RESOLVED])
def test_link_to_a_file_of_the_model_becomes_a_plain_copy(
    tmp_path: Path, host: Host, case: str, make: Make, files: dict[str, bytes]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    source = _source(project, make(project, host))
    dest = _staging(tmp_path)
    source._unpack(source.fetch(), dest)
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data
    for path in dest.rglob("*"):
        st = path.lstat()
        assert stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1), path


def test_local_folder_link_to_a_host_file_is_refused(tmp_path: Path, host: Host) -> None:
    project = tmp_path / "project"
    folder = project / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "variables" / "v.data").write_bytes(b"v")

    def source() -> Source:
        model = ModelConf(name="m", source=SourceConf(kind=SourceKind.local, path="exported"))
        return Source(
            model, "conf/model/m.yaml", project, StatCache(None), LocalExecutor(), project
        )

    for name, target in (("pw", host.secret), ("tree", host.secret.parent)):
        link = folder / name
        link.symlink_to(target)
        with pytest.raises(SourceError, match=f"exported/{name} is a link to '{target}', outside"):
            source().inputs()  # refused before any file is hashed through the link
        link.unlink()
    host.untouched()
    # A link to a file of the folder itself is copied as that file.
    (folder / "alias").symlink_to("variables/v.data")
    dest = _staging(tmp_path)
    source()._copy_local(dest)
    assert (dest / "alias").read_bytes() == b"v" and not (dest / "alias").is_symlink()


def test_plain_trees_never_share_an_inode_or_follow_a_link(tmp_path: Path, host: Host) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a")
    os.link(src / "a", src / "b")  # hard links inside: each becomes its own file
    make_plain(src, lambda rel, problem: SourceError(f"{rel} {problem}"))
    assert (src / "a").stat().st_nlink == 1 and (src / "b").read_bytes() == b"a"
    copy_plain(src, tmp_path / "dst", lambda rel, problem: SourceError(f"{rel} {problem}"))
    assert (tmp_path / "dst" / "a").stat().st_ino != (src / "a").stat().st_ino
    # A hard link to a host file: it is the host file's inode, so it is copied, never chmodded.
    os.link(host.secret, src / "h")
    make_plain(src, lambda rel, problem: SourceError(f"{rel} {problem}"))
    (src / "h").chmod(0o444)
    host.untouched()


@pytest.mark.slow
def test_reported_escape_through_the_cli_changes_nothing_outside(
    demo_build: Project, tmp_path: Path, host: Host
) -> None:
    """The issue's reproduction: a pinned archive of a real SavedModel plus the 12-level link.

    Before the fix the build exited 0, chmodded the host file to 444 through the link and put
    it in the bundle and the lock.
    """
    lock = yaml.safe_load(demo_build.lock.read_text())
    key = lock["artifacts"]["demo/native"]["source"]["key"]
    saved_model = demo_build.cache / "objects" / key[:2] / key / "data"
    p = make_project(tmp_path / "p")
    folder = "/".join(f"w{i}" for i in range(WRAP)) + "/model"
    link = folder + "/" + "/".join(f"d{i}" for i in range(DEEP)) + "/pw"
    with tarfile.open(p.root / "model.tar.gz", "w:gz") as tar:
        tar.add(saved_model, arcname=folder)
        info, _ = _link(link, "../" * (WRAP + 1 + DEEP) + str(host.secret).lstrip("/"))
        tar.addfile(info)
    sha = hashlib.sha256((p.root / "model.tar.gz").read_bytes()).hexdigest()
    (p.root / "conf" / "model").mkdir(parents=True)
    (p.root / "conf" / "model" / "evil.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "evil",
                "source": {"kind": "archive", "path": "model.tar.gz", "sha256": sha},
                "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 64, 64, 3]}],
                "outputs": ["probabilities"],
            }
        )
    )
    result = p.run("model=evil")
    assert result.code == 1, result.err
    assert "/d11/pw' is a link to '../../" in result.error_line
    assert "outside the folder kept" in result.error_line
    host.untouched()
    assert p.leftovers() == []


# A module of the user's project named like one the stage imports: it must never run there.
SHADOW = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\nraise SystemExit(99)\n"


@pytest.mark.parametrize("command", ["stage", "python"])
def test_stage_process_never_imports_from_the_project_folder(tmp_path: Path, command: str) -> None:
    """The stage process is started from the project folder, which holds a json.py: the
    runner (which imports json first thing) must get the standard library's."""
    project, marker = tmp_path / "project", tmp_path / "json-was-imported"
    project.mkdir()
    (project / "json.py").write_text(SHADOW.format(marker=str(marker)))
    result = tmp_path / "result.json"
    task = tmp_path / "task.json"
    # An operation the runner does not know: it reads the task, fails and records why.
    task.write_text(json.dumps({"op": "nope", "params": {}, "result": str(result)}))
    if command == "stage":
        cmd = stage_command(sys.executable, str(task))
    else:
        cmd = python_command(sys.executable, "import json; print(json.loads('[7]'))")
    ran = subprocess.run(
        cmd, cwd=project, env=runner_env(), capture_output=True, text=True, timeout=120
    )
    assert not marker.exists(), ran.stdout + ran.stderr
    if command == "stage":
        # The runner ran to its end, with the real json module.
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert '"KeyError"' in result.read_text()
    else:
        assert ran.returncode == 0 and ran.stdout == "[7]\n", ran.stdout + ran.stderr


@dataclass(frozen=True)
class RunFolderCase:
    """Arguments (and option files) that point something Hydra writes outside the project.

    ``{out}`` stands for a folder beside the project; nothing may appear in it.
    """

    args: tuple[str, ...]
    error: str  # the start of the one error line
    files: tuple[tuple[str, str], ...] = ()
    # Refused while composing, before Hydra makes the run folder (in the project) too.
    before_run_folder: bool = True
    # Symbolic links made in the project: (name, target with {out}).
    links: tuple[tuple[str, str], ...] = ()


GLOBAL = "# @package _global_\nexecutor: {kind: local}\n"
RUN_FOLDER_CASES = [
    pytest.param(
        RunFolderCase(("hydra.run.dir={out}/run",), "command line: hydra.run.dir: '"),
        id="run-dir-on-the-command-line",
    ),
    pytest.param(
        RunFolderCase(("-m", "hydra.sweep.dir={out}/sweep"), "command line: hydra.sweep.dir: '"),
        id="sweep-dir-on-the-command-line",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.output_subdir: '",
            (("conf/executor/evil.yaml", GLOBAL + "hydra: {output_subdir: '{out}/copies'}\n"),),
        ),
        id="config-copies-set-in-a-config-file",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: cache.dir: '",
            (("conf/executor/evil.yaml", GLOBAL + "cache: {dir: '{out}/cache'}\n"),),
        ),
        id="cache-dir-in-a-config-file-before-the-run-folder-is-made",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: cache.dir: '",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "allow_outside_project: true\ncache: {dir: '{out}/cache'}\n",
                ),
            ),
        ),
        id="a-config-file-cannot-allow-itself-outside",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: allow_outside_project: true in a config file",
            (("conf/executor/evil.yaml", GLOBAL + "allow_outside_project: true\n"),),
            before_run_folder=False,
        ),
        id="allow-outside-only-from-the-command-line",
    ),
    pytest.param(
        RunFolderCase(
            ("hydra.output_subdir=../../{out}/copies",),
            "command line: hydra.output_subdir: '",
        ),
        id="config-copies-up-and-out",
    ),
    pytest.param(
        RunFolderCase(
            ("hydra.job_logging.handlers.file.filename={out}/run.log",),
            "command line: hydra.job_logging.handlers.file.filename: '",
        ),
        id="job-log-file",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.hydra_logging.handlers.f.filename: '",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra:\n  hydra_logging:\n    handlers:\n      f: "
                    "{class: logging.FileHandler, filename: '{out}/hydra.log'}\n"
                    "    root: {handlers: [f]}\n",
                ),
            ),
        ),
        id="hydra-log-file-opened-while-composing",
    ),
    pytest.param(
        RunFolderCase(("hydra.job.chdir=true",), "command line: hydra.job.chdir: true;"),
        id="job-chdir",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.callbacks.evil: a config file may not add a callback",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {callbacks: {evil: {_target_: os.makedirs, "
                    "name: '{out}/from-callback'}}}\n",
                ),
            ),
        ),
        id="callback-runs-what-a-file-names",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.hydra_logging.formatters.evil.(): 'os.makedirs' is",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {hydra_logging: {formatters: {evil: "
                    "{'()': os.makedirs, name: '{out}/from-logging'}}}}\n",
                ),
            ),
        ),
        id="logging-factory-runs-what-a-file-names",
    ),
    pytest.param(
        RunFolderCase(
            ("-m", "executor=evil"),
            "conf/executor/evil.yaml: hydra.sweeper.params: a config file may not add overrides",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {sweeper: {params: {allow_outside_project: 'true', "
                    "lock: '{out}/stolen.lock'}}}\n",
                ),
            ),
        ),
        id="sweeper-params-pass-for-the-command-line",
    ),
    pytest.param(
        RunFolderCase(
            ("-m", "executor=evil"),
            "conf/executor/evil.yaml: cache.dir: '${oc.select:",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "cache: {dir: '${oc.select:model.source.args.n"
                    "${oc.select:hydra.job.num,x},.tftrt-cache}'}\n",
                ),
            ),
        ),
        id="a-path-that-resolves-differently-once-the-job-is-numbered",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.job.env_set.N0: a config file may not set the job's",
            (("conf/executor/evil.yaml", GLOBAL + "hydra: {job: {env_set: {N0: '{out}'}}}\n"),),
        ),
        id="env-set-from-a-file",
    ),
    pytest.param(
        RunFolderCase(
            ("-m", "executor=evil", "hydra.sweep.subdir=${hydra.job.override_dirname}"),
            "conf/executor/evil.yaml: hydra.job.config.override_dirname.kv_sep: '/../../",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {job: {config: {override_dirname: "
                    "{kv_sep: '/../../../../../../../../../../../../{out}/kv/'}}}}\n",
                ),
            ),
        ),
        id="override-dirname-separators-make-folders",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: cache.dir: 'l/../cache' is outside the project folder",
            (("conf/executor/evil.yaml", GLOBAL + "cache: {dir: l/../cache}\n"),),
            links=(("l", "{out}/deep"),),
        ),
        id="dot-dot-after-a-link-leaves-through-it",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.job_logging.handlers.extra: is not a mapping",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {job_logging: {handlers: {extra: null}}}\n",
                ),
            ),
        ),
        id="a-handler-that-is-not-a-mapping-was-an-internal-error",
    ),
    pytest.param(
        RunFolderCase(
            ("executor=evil",),
            "conf/executor/evil.yaml: hydra.job.env_set.TFTRT_CACHE_DIR: sets TFTRT_CACHE_DIR",
            (
                (
                    "conf/executor/evil.yaml",
                    GLOBAL + "hydra: {job: {env_set: {TFTRT_CACHE_DIR: '{out}/cache'}}}\n",
                ),
            ),
        ),
        id="env-set-passes-a-folder-off-as-the-machines",
    ),
    pytest.param(
        RunFolderCase(
            ("hydra/job_logging=evil",),
            "conf/hydra/job_logging/evil.yaml: hydra.job_logging.handlers.f.filename: '",
            (
                (
                    "conf/hydra/job_logging/evil.yaml",
                    "version: 1\nhandlers:\n  f: {class: logging.FileHandler, "
                    "filename: '{out}/job.log'}\nroot: {handlers: [f]}\n",
                ),
            ),
        ),
        id="a-logging-option-names-its-own-file",
    ),
]


@pytest.mark.parametrize("case", RUN_FOLDER_CASES)
def test_hydra_never_writes_outside_the_project(tmp_path: Path, case: RunFolderCase) -> None:
    """Refused before Hydra makes a folder or opens a file, through the real CLI: the check
    sits on Hydra's own compose, which only the console command runs."""
    out = tmp_path / "outside"
    p = make_project(tmp_path / "project")
    for rel, text in case.files:
        path = p.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{out}", str(out)))
    made = []  # link targets made outside: they stay as they are, with nothing beside them
    for name, target in case.links:
        real = Path(target.replace("{out}", str(out)))
        real.mkdir(parents=True)
        made.append(real)
        (p.root / name).symlink_to(real)
    args = [a.replace("{out}", str(out)) for a in case.args]
    flags = [a for a in args if a.startswith("-")]
    result = p.run(*flags, "mode=plan", *(a for a in args if not a.startswith("-")))
    assert result.code == 2, result.err
    assert result.error_line.startswith(case.error), result.error_line
    assert sorted(out.rglob("*")) == made
    if case.before_run_folder:
        assert not (p.cache / "runs").exists()


EVIL_ENV = "hydra: {job: {env_set: {N0: x}}}\n"
# (choices, files, sources before the project's conf/, the file named: an index into files,
# the names as a message gives them, or None)
SETTING_FILE_CASES = {
    "a global option": ({"executor": "evil"}, {"executor/evil.yaml": GLOBAL + EVIL_ENV}, [], 0),
    "a hydra group's option, under its group": (
        {"hydra/job": "evil"},
        {"hydra/job/evil.yaml": "env_set: {N0: x}\n"},
        [],
        0,
    ),
    "a package given in the defaults list": (
        {"executor@_global_": "evil"},
        {"executor/evil.yaml": EVIL_ENV},
        [],
        0,
    ),
    "the defaults list's package over the file's header": (
        {"executor@_global_": "evil"},
        {"executor/evil.yaml": "# @package executor\n" + EVIL_ENV},
        [],
        0,
    ),
    "the file is the mapping above the key": (
        {"hydra/job": "evil"},
        {"hydra/job/evil.yaml": "# @package hydra.job.env_set\nN0: x\n"},
        [],
        0,
    ),
    "two files, both named": (
        {"executor": "evil", "target": "worse"},
        {"executor/evil.yaml": GLOBAL + EVIL_ENV, "target/worse.yaml": GLOBAL + EVIL_ENV},
        [],
        "conf/executor/evil.yaml and conf/target/worse.yaml",
    ),
    "a structured config comes first on the search path": (
        {"hydra/launcher": "basic"},
        {"hydra/launcher/basic.yaml": "# @package _global_\n" + EVIL_ENV},
        [{"schema": "structured", "path": "", "provider": "schema"}],
        None,
    ),
    "an option in its own package does not reach hydra": (
        {"executor": "evil"},
        {"executor/evil.yaml": EVIL_ENV},
        [],
        None,
    ),
    "a package's own option comes first on the search path": (
        {"executor": "local"},
        {"executor/local.yaml": GLOBAL + EVIL_ENV},
        [{"schema": "pkg", "path": "tftrt_build.conf", "provider": "tftrt-build"}],
        None,
    ),
    "a date YAML could not make is text to OmegaConf": (
        {"executor": "evil"},
        {"executor/evil.yaml": GLOBAL + "hydra: {job: {env_set: {N0: 2024-02-30}}}\n"},
        [],
        0,
    ),
    "a group left unchosen in a sweep's first compose": (
        {"extra": "???", "executor": "evil"},
        {"executor/evil.yaml": GLOBAL + EVIL_ENV},
        [],
        0,
    ),
    "a header after a plain comment is not one to Hydra": (
        {"hydra/job": "evil"},
        {"hydra/job/evil.yaml": "# our job settings\n# @package _global_\n" + EVIL_ENV},
        [],
        None,
    ),
    "unreadable YAML names no file": (
        {"executor": "evil"},
        {"executor/evil.yaml": GLOBAL + EVIL_ENV + ": [\n"},
        [],
        None,
    ),
}


@pytest.mark.parametrize("case", list(SETTING_FILE_CASES))
def test_a_refused_hydra_value_names_the_file_that_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """In-process: what Hydra composed says which option files a key could come from."""
    from omegaconf import OmegaConf

    from tftrt_build.config.origin import setting_file

    choices, files, before, named = SETTING_FILE_CASES[case]
    monkeypatch.chdir(tmp_path)
    for rel, text in files.items():
        (tmp_path / "conf" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "conf" / rel).write_text(text)
    sources = [*before, {"schema": "file", "path": str(tmp_path / "conf"), "provider": "main"}]
    cfg = OmegaConf.create(
        {
            "hydra": {
                "runtime": {"choices": choices, "config_sources": sources},
                "job": {"config_name": "tftrt_build"},
            }
        }
    )
    if isinstance(named, int):
        named = f"conf/{list(files)[named]}"
    assert setting_file(cfg, "hydra.job.env_set.N0") == named


def test_run_folders_may_leave_the_project_when_the_command_line_says_so(tmp_path: Path) -> None:
    out = tmp_path / "outside"
    p = make_project(tmp_path / "project")
    allowed = p.run("mode=plan", "allow_outside_project=true", f"hydra.run.dir={out}/run")
    assert allowed.code == 0, allowed.err
    assert (out / "run" / "run.log").is_file()
    # The machine's cache folder (TFTRT_CACHE_DIR) may be anywhere: runs go in it.
    machine = tmp_path / "machine-cache"
    elsewhere = p.run("mode=plan", env={"TFTRT_CACHE_DIR": str(machine)})
    assert elsewhere.code == 0, elsewhere.err
    assert list((machine / "runs").glob("*/run.log"))


# -- a bundle's own record: what bundle.json names stays inside the bundle ---------------------


def _bundle(root: Path) -> Path:
    """A small bundle as tftrt-build writes one: a file, one version folder, bundle.json."""
    from tftrt_build.store.digest import digest_bytes, hash_tree

    bundle = root / "bundle"
    (bundle / "models" / "m" / "1").mkdir(parents=True)
    (bundle / "models" / "m" / "1" / "saved_model.pb").write_bytes(b"graph")
    (bundle / "README.md").write_text("served\n")
    doc = {
        "files": {"README.md": digest_bytes(b"served\n")},
        "models": [
            {
                "name": "m",
                "versions": [{"version": 1, "digest": hash_tree(bundle / "models/m/1").digest}],
            }
        ],
    }
    (bundle / "bundle.json").write_text(json.dumps(doc))
    return bundle


def _edited_bundle(tmp_path: Path, edit: Callable[[Path, Path], None]) -> Path:
    """A bundle with one hand edit, and beside it a folder of the host's it must not read."""
    bundle = _bundle(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    edit(bundle, outside)
    return bundle


def _within(seconds: float, work: Callable[[], list[str]]) -> list[str] | None:
    """What ``work`` returns, or None when it has not finished in time (it is left running)."""
    done: list[list[str]] = []
    worker = threading.Thread(target=lambda: done.append(work()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    return done[0] if done else None


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def edit(bundle: Path, outside: Path) -> None:
        doc = json.loads((bundle / "bundle.json").read_text())
        change(doc)
        (bundle / "bundle.json").write_text(json.dumps(doc))

    return edit


def _relink(path: str, to: str) -> Callable[[Path, Path], None]:
    def edit(bundle: Path, outside: Path) -> None:
        target = bundle / path
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.symlink_to(outside / to)

    return edit


MANIFEST_CASES = [
    pytest.param(
        _edit_manifest(lambda d: d["files"].update({"../outside/secret": "0" * 64})),
        "bundle.json edited",
        id="file-up",
    ),
    pytest.param(
        _edit_manifest(lambda d: d["files"].update({"/etc/hostname": "0" * 64})),
        "bundle.json edited",
        id="file-absolute",
    ),
    pytest.param(
        _edit_manifest(
            lambda d: d["models"].append({"name": "..", "versions": [{"version": ".."}]})
        ),
        "bundle.json edited",
        id="version-up",
    ),
    pytest.param(_relink("README.md", "secret"), "README.md edited", id="file-link"),
    pytest.param(_relink("models/m/1", "."), "models/m/1/ edited", id="version-link"),
    pytest.param(_relink("models/m", "."), "models/m/1/ edited", id="model-link"),
    pytest.param(_relink("config", "."), "config added", id="folder-link-added"),
]


@pytest.mark.parametrize(("edit", "named"), MANIFEST_CASES)
def test_a_bundle_check_reads_nothing_outside_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[Path, Path], None], named: str
) -> None:
    # bundle.json and the bundle are the user's to edit: a name leading out of the bundle, or a
    # link put in, is named as an edit, and nothing outside is read or hashed.
    from tftrt_build.plan.integrity import bundle_edits
    from tftrt_build.store import digest

    bundle = _edited_bundle(tmp_path, edit)
    read: list[Path] = []
    real_read, real_hash = Path.read_bytes, digest._blake3_file

    def read_bytes(path: Path) -> bytes:
        read.append(path)
        return real_read(path)

    def hashed(path: Path, *args: object) -> str:
        read.append(path)
        return real_hash(path, *args)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(digest, "_blake3_file", hashed)
    edits = [str(e) for e in bundle_edits(bundle, StatCache(None, trust=False))]
    assert named in edits
    assert read, "the check read nothing at all"
    for path in read:
        assert Path(os.path.realpath(path)).is_relative_to(bundle.resolve()), path


def _links_in_version(*links: tuple[str, str]) -> Callable[[Path, Path], None]:
    def edit(bundle: Path, outside: Path) -> None:
        for name, to in links:
            (bundle / "models/m/1" / name).symlink_to(outside / to if to != "." else ".")

    return edit


# Links put inside a version folder: named, never followed (two links to "." made the walk
# 2^40 paths long, and a check or a build hung).
LINK_CASES = [
    pytest.param(
        _links_in_version(("a", "."), ("b", ".")),
        ["models/m/1/a added", "models/m/1/b added"],
        id="link-cycles-in-version",
    ),
    pytest.param(
        _links_in_version(("x", "secret")), ["models/m/1/x added"], id="link-out-of-version"
    ),
]


@pytest.mark.parametrize(("edit", "named"), LINK_CASES)
def test_links_inside_a_version_are_named_not_followed(
    tmp_path: Path, edit: Callable[[Path, Path], None], named: list[str]
) -> None:
    from tftrt_build.plan.integrity import bundle_edits

    bundle = _edited_bundle(tmp_path, edit)
    edits = _within(
        20, lambda: [str(e) for e in bundle_edits(bundle, StatCache(None, trust=False))]
    )
    assert edits is not None, "the bundle check did not finish in 20 s"
    assert edits == named


def test_a_walk_does_not_go_round_a_link_cycle(tmp_path: Path) -> None:
    from tftrt_build.store.digest import relative_files

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    for name in ("a", "b"):
        (tmp_path / "d" / name).symlink_to(".")
    (tmp_path / "d" / "up").symlink_to("..")
    listed = _within(20, lambda: [rel for rel, _ in relative_files(tmp_path)])
    assert listed is not None, "the walk did not finish in 20 s"
    assert listed == ["d/f"]
