"""Stage faults: a stage that fails, hangs, lies or fills the disk is one line, and nothing is kept.

Each case of ``STAGES`` is a build of a small project through the installed CLI (the stages
run real TensorFlow in a child process), checked for its exit code, its one error line, that
nothing was cached, bundled or locked, and, where the stage ran, that its full output is in
the run folder's ``stages/`` log the line names. The full-disk cases use a small tmpfs where
this machine can mount one (root in CI), else a fault hook for the in-process steps.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project

from tftrt_build.config.schema import ModelConf, SourceConf, SourceKind
from tftrt_build.errors import SourceError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.stages.source import Source
from tftrt_build.store.digest import StatCache

MODEL = {
    "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 64, 64, 3]}],
    "outputs": ["probabilities"],
}
DEMO = (Path(__file__).parents[2] / "models" / "demo.py").read_text()
# Prints its pid, then never returns.
SLEEPY = """\
import os, time

def build(**args):
    print("sleepy export", os.getpid(), flush=True)
    time.sleep(3600)
"""
# Prints a line, then ends its process the way a crash in TensorFlow's C++ does.
ABORTS = """\
import os

def build(**args):
    print("about to abort", flush=True)
    os.abort()
"""
# Killed from outside (the OOM killer, a user's kill -9).
KILLED = """\
import os, signal

def build(**args):
    print("about to be killed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
# Kills the TensorFlow worker it was forked from (executor.worker=fork), then waits.
KILLS_WORKER = """\
import os, signal, time

def build(**args):
    print("killing the worker", flush=True)
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(3600)
"""


def _model(p: Project, name: str, source: dict[str, object], **extra: object) -> None:
    folder = p.root / "conf" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    body = {"name": name, "source": source, **MODEL, **extra}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(body))


def _export(p: Project, name: str, script: str, text: str, **extra: object) -> None:
    (p.root / script).parent.mkdir(parents=True, exist_ok=True)
    (p.root / script).write_text(text)
    _model(p, name, {"kind": "export", "script": script}, **extra)


@dataclass
class Case:
    name: str
    # Writes the project's files; returns the command line.
    setup: Callable[[Project, Path], list[str]]
    code: int
    # The one error line: its start, and words it holds.
    starts: str
    words: list[str] = field(default_factory=list)
    # Whether the line points at the stage's log (which holds the whole traceback).
    logged: bool = True
    # What the stage printed last, shown under the line (a stage stopped for its timeout).
    shows: str = ""
    # The line shown last, under the stage's own lines: how its process ended.
    ends: str = ""


def failing_export(p: Project, tmp: Path) -> list[str]:
    return ["model.source.args.classes=-3"]


def outputs_on_the_command_line(p: Project, tmp: Path) -> list[str]:
    return ["model.outputs=[scores,logits]"]


def outputs_in_the_model_file(p: Project, tmp: Path) -> list[str]:
    _export(p, "two", "models/two.py", DEMO, outputs=["scores", "logits"])
    return ["model=two"]


def garbage_saved_model(p: Project, tmp: Path) -> list[str]:
    (p.root / "exported" / "variables").mkdir(parents=True)
    (p.root / "exported" / "saved_model.pb").write_bytes(b"not a protocol buffer \xff\xfe")
    _model(p, "garbage", {"kind": "local", "path": "exported"})
    return ["model=garbage"]


def sleeping_export(p: Project, tmp: Path) -> list[str]:
    _export(p, "sleepy", "models/sleepy.py", SLEEPY)
    # Long enough for TensorFlow to load and the script to print before it is stopped.
    return ["model=sleepy", "executor.timeout_s=20"]


def link_in_the_output(p: Project, tmp: Path) -> list[str]:
    # A script that saves a real SavedModel, then links a host file into its output.
    secret = tmp / "secret.txt"
    text = (
        "import os, shutil\n\n"
        "def export(output_dir, source, secret):\n"
        "    shutil.copytree(source, output_dir, dirs_exist_ok=True)\n"
        "    os.symlink(secret, os.path.join(output_dir, 'pw'))\n"
    )
    args = {"source": str(tmp / "saved_model"), "secret": str(secret)}
    (p.root / "models").mkdir(exist_ok=True)
    (p.root / "models" / "linker.py").write_text(text)
    _model(p, "linker", {"kind": "export", "script": "models/linker.py", "args": args})
    return ["model=linker"]


def aborting_export(p: Project, tmp: Path) -> list[str]:
    _export(p, "aborts", "models/aborts.py", ABORTS)
    return ["model=aborts"]


def aborting_export_in_a_fresh_process(p: Project, tmp: Path) -> list[str]:
    return [*aborting_export(p, tmp), "executor.worker=process"]


def killed_export(p: Project, tmp: Path) -> list[str]:
    _export(p, "killed", "models/killed.py", KILLED)
    return ["model=killed"]


def export_that_kills_its_worker(p: Project, tmp: Path) -> list[str]:
    _export(p, "killer", "models/killer.py", KILLS_WORKER)
    return ["model=killer", "executor.worker=fork"]


STAGES = [
    Case(
        "failing export",
        failing_export,
        1,
        "export of models/demo.py failed: ValueError: Received an invalid value for `units`, "
        "expected a positive integer. Received: units=-3 (full log: ",
    ),
    Case(
        "model.outputs on the command line",
        outputs_on_the_command_line,
        2,
        "command line: model.outputs: names 2 outputs (scores, logits), but the model has 1",
        logged=False,
    ),
    Case(
        "model.outputs in the model's file",
        outputs_in_the_model_file,
        2,
        "conf/model/two.yaml: model.outputs: names 2 outputs (scores, logits), but the model has 1",
        logged=False,
    ),
    Case(
        "a SavedModel that does not parse",
        garbage_saved_model,
        1,
        "reading the SavedModel failed: ",
        ["(full log: "],
    ),
    Case(
        "an export that never ends",
        sleeping_export,
        1,
        "export of models/sleepy.py did not end within executor.timeout_s=20 s: stopped, "
        "nothing cached",
        logged=False,
        shows="sleepy export",
    ),
    Case(
        "an export that aborts (SIGABRT), forked from the TensorFlow worker",
        aborting_export,
        1,
        "export of models/aborts.py failed: the stage process died (full log: ",
        logged=False,
        shows="about to abort",
        ends="(killed by signal SIGABRT)",
    ),
    Case(
        "an export that aborts (SIGABRT), executor.worker=process",
        aborting_export_in_a_fresh_process,
        1,
        "export of models/aborts.py failed: the stage process died (full log: ",
        logged=False,
        shows="about to abort",
        ends="(killed by signal SIGABRT)",
    ),
    Case(
        "an export killed by SIGKILL",
        killed_export,
        1,
        "export of models/killed.py failed: the stage process died (full log: ",
        logged=False,
        shows="about to be killed",
        ends="(killed by signal SIGKILL)",
    ),
    Case(
        "an export that kills its TensorFlow worker",
        export_that_kills_its_worker,
        1,
        "export of models/killer.py failed: the stage process died (full log: ",
        logged=False,
        shows="killing the worker",
        ends="(the TensorFlow worker process died: killed by signal SIGKILL)",
    ),
    Case(
        "a link to a host file in the output",
        link_in_the_output,
        1,
        "export of models/linker.py: its output 'pw' is a link to '",
        ["secret.txt', outside the folder kept"],
        logged=False,
    ),
]


@pytest.fixture
def saved_model_copy(demo_build: Project, tmp_path: Path) -> Path:
    lock = yaml.safe_load(demo_build.lock.read_text())
    key = lock["artifacts"]["demo/native"]["source"]["key"]
    copy = tmp_path / "saved_model"
    shutil.copytree(demo_build.cache / "objects" / key[:2] / key / "data", copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    return copy


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds marker (a stage inherits the CLI's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("case", STAGES, ids=[c.name for c in STAGES])
def test_stage_fault_is_one_line_and_keeps_nothing(
    case: Case, tmp_path: Path, saved_model_copy: Path
) -> None:
    p = make_project(tmp_path / "p")
    args = case.setup(p, tmp_path)
    marker = f"TFTRT_TEST_MARK={uuid.uuid4().hex}"
    key, _, value = marker.partition("=")
    result = p.run(*args, env={key: value}, timeout=180)
    assert result.code == case.code, result.err
    line = result.error_line
    assert line.startswith(case.starts), line
    for word in case.words:
        assert word in line, line
    # One line: no traceback, no autograph source listing, no log tail under it.
    assert "Traceback" not in result.err and "in user code" not in result.err, result.err
    assert p.leftovers() == []
    assert _processes_with(marker) == [], "a stage process outlived the build"
    if (tmp_path / "secret.txt").exists():
        assert (tmp_path / "secret.txt").stat().st_mode & 0o777 == 0o600
    under = [text.strip() for text in result.err.split("error: ", 1)[1].splitlines()[1:]]
    if case.ends:
        # How the stage's process ended is said last, after its own lines.
        assert under and under[-1] == case.ends, result.err
        under = under[:-1]
    if case.shows:
        # The stage's last lines, under the error line: the end of its full log.
        log = p.root / line.rsplit("(full log: ", 1)[1].rstrip(")")
        logged = [text.strip() for text in log.read_text().splitlines()]
        # Rich wraps long lines: compare the words of the last (at most 12) lines.
        assert under and " ".join(under).split() == " ".join(logged[-12:]).split(), result.err
        assert any(case.shows in text for text in under), result.err
    else:
        assert under == [], result.err
    logs = sorted((p.cache / "runs").glob("*/stages/*.log"))
    if case.logged:
        shown = line.rsplit("(full log: ", 1)[1].rstrip(")")
        assert (p.root / shown).resolve() == logs[-1].resolve()
        assert "Traceback (most recent call last)" in logs[-1].read_text()


# -- a full disk -----------------------------------------------------------------------------


@dataclass
class SmallDisk:
    folder: Path
    # Called once the test's own files are written: fills the disk (a no-op on a tmpfs).
    fill: Callable[[], None]


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    """A folder on a 256 kB tmpfs; where mounting is not allowed, a fault hook that fails every
    file copy of the unpack, copy and download steps with ENOSPC instead."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )

    def fill() -> None:
        if mounted.returncode == 0:
            return

        def full(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))

        for target in ("tarfile.copyfileobj", "shutil.copyfileobj", "shutil.copyfile"):
            monkeypatch.setattr(target, full)

    try:
        yield SmallDisk(folder, fill)
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)


def _big_archive(path: Path) -> str:
    data = path.parent / "weights"
    data.write_bytes(os.urandom(1 << 20))  # incompressible: 1 MiB does not fit in 256 kB
    with tarfile.open(path, "w:gz") as tar:
        tar.add(data, "m/variables/v.data")
        (path.parent / "pb").write_bytes(b"pb")
        tar.add(path.parent / "pb", "m/saved_model.pb")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source(project: Path, conf: SourceConf, downloads: Path) -> Source:
    model = ModelConf(name="m", source=conf)
    return Source(model, None, project, StatCache(None), LocalExecutor(), downloads)


def _unpack(project: Path, disk: SmallDisk) -> None:
    sha = _big_archive(project / "a.tar.gz")
    source = _source(
        project, SourceConf(kind=SourceKind.archive, path="a.tar.gz", sha256=sha), disk.folder
    )
    dest = disk.folder / "tmp" / "key" / "data"
    dest.mkdir(parents=True)
    archive = source.fetch()
    disk.fill()
    source._unpack(archive, dest)


def _copy(project: Path, disk: SmallDisk) -> None:
    (project / "exported" / "variables").mkdir(parents=True)
    (project / "exported" / "saved_model.pb").write_bytes(b"pb")
    (project / "exported" / "variables" / "v.data").write_bytes(os.urandom(1 << 20))
    source = _source(project, SourceConf(kind=SourceKind.local, path="exported"), disk.folder)
    disk.fill()
    source._copy_local(disk.folder / "tmp" / "key" / "data")


def _download(project: Path, disk: SmallDisk) -> None:
    sha = _big_archive(project / "a.tar.gz")
    url = f"file://{project}/a.tar.gz"
    source = _source(project, SourceConf(kind=SourceKind.archive, url=url, sha256=sha), disk.folder)
    disk.fill()
    source.fetch()


FULL_DISK = [
    ("unpack", _unpack, "cannot unpack a.tar.gz into "),
    ("copy of a local folder", _copy, "cannot copy exported into "),
    ("download", _download, "cannot download file://"),
]


@pytest.mark.parametrize(("step", "run", "starts"), FULL_DISK, ids=[c[0] for c in FULL_DISK])
def test_full_disk_is_one_line_naming_the_step_and_the_path(
    tmp_path: Path,
    small_disk: SmallDisk,
    step: str,
    run: Callable[[Path, SmallDisk], None],
    starts: str,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(SourceError) as info:
        run(project, small_disk)
    message = str(info.value)
    assert message.startswith(starts) and "\n" not in message, message
    assert message.endswith(": no space left on device"), message
    assert f"into {small_disk.folder}/" in message, message
    # Nothing half-written is left (no unpack folder, no partial download) but in the staging
    # folder, which the store removes when the stage fails. A destination on another file
    # system than the cache keeps its (git-ignored) temporary folder .tftrt-tmp/ for next time.
    staging = small_disk.folder / "tmp" / "key" / "data"
    side_ignore = small_disk.folder / ".tftrt-tmp" / ".gitignore"
    leftovers = [
        p
        for p in small_disk.folder.rglob("*")
        if p.is_file() and staging not in p.parents and p != side_ignore
    ]
    assert leftovers == [], leftovers


@pytest.mark.slow
def test_full_disk_during_an_export_is_one_line(tmp_path: Path) -> None:
    disk = tmp_path / "cache"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the export writes in a child process")
    try:
        p = Project(make_project(tmp_path / "p").root, disk)
        result = p.run(timeout=180)
        assert result.code == 1, result.err
        line = result.error_line
        assert line.startswith("export of models/demo.py failed: "), line
        assert f"{disk}/tmp/" in line and "No space left on device" in line, line
        assert p.cache_entries() == [] and not list((disk / "tmp").iterdir())
    finally:
        subprocess.run(["umount", str(disk)], check=True)
