"""Shared fixtures: projects in tmp_path, the installed console script, Hydra's compose API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
REPO = TESTS.parent
# Set by .ci/run: tests that could run here must not skip.
IN_CI = os.environ.get("TFTRT_CI") == "1"
# Set by .ci/run, which builds the test images while the tests that need none run: a file
# that holds the build's exit status once it has ended.
IMAGES_READY = os.environ.get("TFTRT_TEST_IMAGES_READY")
IMAGES_WAIT_S = 45 * 60


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output instead of comparing",
    )
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (real exports, Docker, concurrent builds); "
        "TFTRT_CI=1 and any -m expression imply it",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The README's test command stays quick: slow tests run under .ci/run, --slow or -m.

    Files with Docker tests go last (whole files: xdist hands out a file at a time), so the
    images .ci/run builds meanwhile are ready when they start.
    """
    docker_files = {item.path for item in items if item.get_closest_marker("docker")}
    items.sort(key=lambda item: item.path in docker_files)  # stable: otherwise as collected
    if IN_CI or config.getoption("--slow") or config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(
        reason="slow (real exports, Docker or concurrent builds): .ci/run runs it; "
        "here pytest --slow does"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    # In CI only the GPU suite may skip: everything else can run there and must.
    if IN_CI and report.skipped and "gpu" not in item.keywords and call.when != "teardown":
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run: {report.longrepr}"


def wait_for_test_images() -> None:
    """Under .ci/run, wait until the test images it builds in the background are built."""
    if not IMAGES_READY:
        return
    status = Path(IMAGES_READY)
    deadline = time.monotonic() + IMAGES_WAIT_S
    while not status.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the test images were not built within {IMAGES_WAIT_S} s")
        time.sleep(2)
    code = status.read_text().strip()
    if code != "0":
        pytest.fail(f"building the test images failed (exit {code}); its log: {status}.log")


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Compare text with tests/golden/<name>; --regen-golden rewrites the file."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if request.config.getoption("--regen-golden"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.is_file(), f"no golden file {path}; run pytest --regen-golden"
        assert text == path.read_text(), f"{name} differs from {path} (pytest --regen-golden)"

    return check


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, f"expected one error line, got:\n{self.err}"
        return lines[0].removeprefix("error: ")


@dataclass
class Project:
    """A project folder with its own cache; ``run`` calls the installed tftrt-build there."""

    root: Path
    cache: Path

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: int = 600,
        prefix: tuple[str, ...] = (),
    ) -> Result:
        """``prefix`` runs it through another command (``ip netns exec <name>``)."""
        exe = shutil.which("tftrt-build", path=str(Path(sys.executable).parent))
        assert exe, "tftrt-build is not installed next to this Python"
        full_env = {**os.environ, "TFTRT_CACHE_DIR": str(self.cache), "COLUMNS": "200"}
        full_env.pop("HYDRA_FULL_ERROR", None)
        full_env.update(env or {})
        proc = subprocess.run(
            [*prefix, exe, *args],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    @property
    def lock(self) -> Path:
        return self.root / "tftrt.lock"

    def cache_entries(self) -> list[Path]:
        objects = self.cache / "objects"
        return sorted(objects.glob("*/*")) if objects.is_dir() else []

    def leftovers(self) -> list[Path]:
        """Anything a failed run must not leave: entries, staging folders, bundles, lock."""
        found = self.cache_entries()
        tmp = self.cache / "tmp"
        if tmp.is_dir():
            found += list(tmp.iterdir())
        bundles = self.root / "bundles"
        if bundles.is_dir():
            found += list(bundles.iterdir())
        if self.lock.exists():
            found.append(self.lock)
        return found


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the names of the files whose bytes are hashed (not answered from a stat
    cache), in order."""
    from tftrt_build.store import digest

    reads: list[str] = []
    real = digest._blake3_file

    def counted(path: Path, *args: Any) -> str:
        reads.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(digest, "_blake3_file", counted)
    return reads


def make_project(root: Path, fixture: str | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    if fixture:
        shutil.copytree(FIXTURES / fixture, root, dirs_exist_ok=True)
    return Project(root, root / ".tftrt-cache")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project (built-in options only) with a cache of its own."""
    return make_project(tmp_path / "project")


@pytest.fixture
def catalogue(tmp_path: Path) -> Project:
    """A project whose conf/ holds good and broken options (tests/fixtures/catalogue)."""
    return make_project(tmp_path / "catalogue", "catalogue")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for tests that need built artifacts but do not test the cache itself."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Project:
    """The default build (demo/native) done once per session, in its own project folder."""
    p = Project(tmp_path_factory.mktemp("demo-project"), shared_cache)
    result = p.run()
    assert result.code == 0, result.err
    return p


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run Hydra's compose API as if from a project folder (set with chdir by the test)."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_request(monkeypatch: pytest.MonkeyPatch, in_project: None):  # type: ignore[no-untyped-def]
    """Resolve a BuildRequest with Hydra's compose API, as the CLI would in ``root``."""
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from tftrt_build.cli.app import prepare, to_config
    from tftrt_build.config.options import HydraOptions
    from tftrt_build.config.resolve import resolve

    def make(root: Path, *overrides: str):  # type: ignore[no-untyped-def]
        monkeypatch.chdir(root)
        from hydra.core.global_hydra import GlobalHydra

        prepare(list(overrides))
        GlobalHydra.instance().clear()
        with initialize_config_module("tftrt_build.conf", version_base="1.3"):
            cfg = compose("tftrt_build", list(overrides), return_hydra_config=True)
            choices = dict(cfg.hydra.runtime.choices)
            with open_dict(cfg):
                del cfg["hydra"]
            options = HydraOptions(cfg, [], list(overrides))
            return resolve(to_config(cfg, choices, options), choices, options, root)

    return make


@dataclass
class S3Server:
    """An S3 server on 127.0.0.1 (moto in server mode) and the environment a client needs."""

    endpoint: str
    server: object

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def bucket(self, name: str) -> str:
        """Create a bucket; returns its s3:// URL."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_S3_KEYS)
        client.create_bucket(Bucket=name)
        client.close()
        return f"s3://{name}"


_S3_KEYS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_s3(port: int | None = None) -> S3Server:
    import logging

    from moto.server import ThreadedMotoServer

    # Werkzeug logs every request at INFO; a failing test's report would be nothing else.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Server(f"http://127.0.0.1:{port}", server)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session's cache.remote tests, stopped at the end."""
    s3 = start_s3()
    yield s3
    s3.server.stop()  # type: ignore[attr-defined]


@pytest.fixture(params=["file", "s3"])
def remote_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh, empty remote: a folder, or a bucket of the session's S3 server."""
    if request.param == "file":
        return (tmp_path / "remote").as_uri()
    s3: S3Server = request.getfixturevalue("s3_server")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3.bucket(f"remote-{uuid.uuid4().hex[:12]}") + "/team/cache"
