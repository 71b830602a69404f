"""Archive and local-folder sources: through the CLI with a real SavedModel (the demo's), and
downloads against a local HTTP server that fails the way networks do.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from conftest import Project, make_project

from tftrt_build.config.schema import ModelConf, SourceConf, SourceKind
from tftrt_build.errors import SourceError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.stages.archive import Retries, download
from tftrt_build.stages.source import Source
from tftrt_build.store.digest import StatCache

MODEL = """\
name: {name}
source:
{source}
inputs:
  - {{name: {input}, dtype: float32, shape: [-1, 64, 64, 3]}}
outputs: [probabilities]
"""


@pytest.fixture
def saved_model(demo_build: Project) -> Path:
    """The demo's exported SavedModel as the cache holds it (the bundle adds warm-up records)."""
    lock = yaml.safe_load(demo_build.lock.read_text())
    key = lock["artifacts"]["demo/native"]["source"]["key"]
    return demo_build.cache / "objects" / key[:2] / key / "data"


def write_model(p: Project, name: str, source: dict[str, str], input_name: str = "image") -> None:
    body = "".join(f"  {k}: {v}\n" for k, v in source.items())
    folder = p.root / "conf" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        MODEL.format(name=name, source=body.rstrip("\n"), input=input_name)
    )


def make_archive(saved_model: Path, path: Path, folders: tuple[str, ...] = ("demo/1",)) -> str:
    # A separate copy per folder: tarfile stores a file added twice as a hard link to the
    # first, and a link out of the kept SavedModel folder is refused (tests/reliability).
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "w:gz") as tf:
        for i, folder in enumerate(folders):
            copy = Path(tmp) / str(i)
            shutil.copytree(saved_model, copy)
            tf.add(copy, arcname=folder)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact_digest(p: Project, artifact: str) -> str:
    lock = yaml.safe_load(p.lock.read_text())
    return str(lock["artifacts"][artifact]["convert"]["output"]["digest"])


@pytest.mark.slow
def test_archive_by_path_and_url_give_the_exported_model(
    demo_build: Project, saved_model: Path, tmp_path: Path
) -> None:
    # Separate projects and caches: with one cache the second source would be a hit (same
    # sha256, same key) and nothing would be downloaded.
    by_path, by_url = make_project(tmp_path / "p"), make_project(tmp_path / "u")
    sha = make_archive(saved_model, tmp_path / "model.tar.gz")
    write_model(
        by_path, "m", {"kind": "archive", "path": str(tmp_path / "model.tar.gz"), "sha256": sha}
    )
    write_model(
        by_url, "m", {"kind": "archive", "url": f"file://{tmp_path}/model.tar.gz", "sha256": sha}
    )
    for p in (by_path, by_url):
        result = p.run("model=m")
        assert result.code == 0, result.err
    expected = artifact_digest(demo_build, "demo/native")
    assert artifact_digest(by_path, "m/native") == artifact_digest(by_url, "m/native") == expected
    assert (by_url.cache / "downloads" / sha).is_file()


@pytest.mark.slow
def test_unpinned_archive_says_its_sha256_and_writes_nothing(
    saved_model: Path, tmp_path: Path
) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, tmp_path / "model.tar.gz")
    write_model(p, "unpinned", {"kind": "archive", "url": f"file://{tmp_path}/model.tar.gz"})
    result = p.run("model=unpinned")
    assert result.code == 2
    assert result.error_line == (
        f"conf/model/unpinned.yaml: model.source.sha256: is not set; "
        f"file://{tmp_path}/model.tar.gz has sha256 {sha}: add it to pin the archive"
    )
    assert p.leftovers() == [] and not list((p.cache / "downloads").iterdir())


@pytest.mark.slow
def test_archive_with_wrong_sha256_fails(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, p.root / "model.tar.gz")
    write_model(p, "wrong", {"kind": "archive", "path": "model.tar.gz", "sha256": repr("0" * 64)})
    result = p.run("model=wrong")
    assert result.code == 1
    assert (
        f"has sha256 {sha}, but conf/model/wrong.yaml pins model.source.sha256 "
        in result.error_line
    )
    assert p.leftovers() == []


@pytest.mark.slow
def test_archive_with_two_saved_models_needs_subdir(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    sha = make_archive(saved_model, p.root / "two.tar.gz", ("m/1", "m/2"))
    write_model(p, "two", {"kind": "archive", "path": "two.tar.gz", "sha256": sha})
    result = p.run("model=two")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/two.yaml: model.source.subdir: the archive holds m/1, m/2; name the folder "
        "to use"
    )
    assert p.leftovers() == []
    assert p.run("model=two", "model.source.subdir=m/2").code == 0


@pytest.mark.slow
def test_local_folder_is_copied_and_checked(
    demo_build: Project, saved_model: Path, tmp_path: Path
) -> None:
    p = make_project(tmp_path / "p")
    shutil.copytree(saved_model, p.root / "exported")
    write_model(p, "mine", {"kind": "local", "path": "exported"})
    result = p.run("model=mine")
    assert result.code == 0, result.err
    assert artifact_digest(p, "mine/native") == artifact_digest(demo_build, "demo/native")


@pytest.mark.slow
def test_declared_input_missing_from_signature(saved_model: Path, tmp_path: Path) -> None:
    p = make_project(tmp_path / "p")
    shutil.copytree(saved_model, p.root / "exported")
    write_model(p, "misnamed", {"kind": "local", "path": "exported"}, input_name="imgae")
    result = p.run("model=misnamed")
    assert result.code == 2
    assert result.error_line == (
        "conf/model/misnamed.yaml: model.inputs[0].name: 'imgae' is not an input of signature "
        "'serving_default' (inputs: image) (did you mean 'image'?)"
    )
    assert p.leftovers() == []


BODY = bytes(range(256)) * 4096  # 1 MiB
# Quick retries for the cases that exhaust them; the others use the defaults users get.
QUICK = Retries(attempts=3, backoff_s=0.01, connect_timeout_s=2, read_timeout_s=0.5)


class Flaky(http.server.BaseHTTPRequestHandler):
    """/<behaviour>/<n>: misbehave for the first n requests of a path, then serve BODY."""

    counts: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.counts[self.path] = seen = self.counts.get(self.path, 0) + 1
        _, behaviour, times = self.path.split("/")
        if seen <= int(times):
            if behaviour == "status":
                self.send_error(503)
                return
            if behaviour == "missing":
                self.send_error(404)
                return
            if behaviour == "cut":
                # Promise the whole body, send half of it, drop the connection.
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[: len(BODY) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if behaviour == "silent":
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[:1000])
                self.wfile.flush()
                threading.Event().wait(3)  # longer than QUICK's read timeout
                return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    Flaky.counts = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Flaky.counts
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize(("path", "requests"), [("/status/2", 3), ("/cut/2", 3)])
def test_download_retries_transient_failures_and_restarts_cleanly(
    server: tuple[str, dict[str, int]], tmp_path: Path, path: str, requests: int
) -> None:
    base, counts = server
    part = tmp_path / "download.part"
    download(base + path, part, None)  # the defaults a user gets
    # The whole body once: a restarted download never keeps the cut-off bytes before it.
    assert part.read_bytes() == BODY
    assert counts[path] == requests


@pytest.mark.parametrize(
    ("path", "requests", "words"),
    [
        ("/status/9", 3, "too many 503 error responses"),
        ("/cut/9", 3, "(after 3 attempts)"),
        ("/silent/9", 3, "(after 3 attempts)"),
        ("/missing/9", 1, "404"),
    ],
)
def test_download_that_keeps_failing_is_one_line_and_leaves_no_file(
    server: tuple[str, dict[str, int]],
    tmp_path: Path,
    path: str,
    requests: int,
    words: str,
) -> None:
    base, counts = server
    with pytest.raises(SourceError) as info:
        download(base + path, tmp_path / "x.part", None, QUICK)
    message = str(info.value)
    assert message.startswith(f"cannot download {base}{path}") and "\n" not in message
    assert words in message, message
    assert counts[path] == requests


def test_failed_download_leaves_nothing_in_the_cache(
    server: tuple[str, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    monkeypatch.setattr("tftrt_build.stages.source.download", _quick_download)
    source = _archive_source(tmp_path, f"{base}/cut/9", "0" * 64)
    with pytest.raises(SourceError, match="after 3 attempts"):
        source.fetch()
    assert list((tmp_path / "downloads").iterdir()) == []


def _quick_download(url: str, part: Path, progress: object) -> None:
    download(url, part, None, QUICK)


def _archive_source(project: Path, url: str, sha: str) -> Source:
    model = ModelConf(name="m", source=SourceConf(kind=SourceKind.archive, url=url, sha256=sha))
    downloads = project / "downloads"
    return Source(model, "conf/model/m.yaml", project, StatCache(None), LocalExecutor(), downloads)


def test_cached_download_is_checked_against_its_pin_every_time(tmp_path: Path) -> None:
    """A file replaced under downloads/<sha256> is not served under that pin."""
    pinned, other = tmp_path / "pinned.tar", tmp_path / "other.tar"
    for path, data in ((pinned, b"the pinned model"), (other, b"another model")):
        (tmp_path / "f").write_bytes(data)
        with tarfile.open(path, "w") as tar:
            tar.add(tmp_path / "f", "m/saved_model.pb")
    sha = hashlib.sha256(pinned.read_bytes()).hexdigest()
    source = _archive_source(tmp_path, f"file://{pinned}", sha)
    first = source.fetch()
    assert first == tmp_path / "downloads" / sha
    shutil.copyfile(other, first)  # replaced with another valid archive
    again = source.fetch()
    assert hashlib.sha256(again.read_bytes()).hexdigest() == sha  # downloaded afresh
    # And a replaced file that cannot be fetched again is refused, not used.
    shutil.copyfile(other, first)
    pinned.unlink()
    with pytest.raises(SourceError, match="cannot download file://"):
        source.fetch()
    assert not first.exists()
