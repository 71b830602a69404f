"""The base of a diff: ``tftrt.lock`` as it was at a git commit, or a lock file given by path.

By default the base is the lock at the merge-base of ``HEAD`` and ``origin/main`` (else
``main``): what a pull request's branch started from, as GitHub and GitLab show its changes,
not what the main branch has moved on to since. Git is only read (``rev-parse``,
``merge-base``, ``cat-file``); nothing in the repository or the working tree changes.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tftrt_build.config.paths import relative, under
from tftrt_build.config.schema import DiffConf
from tftrt_build.errors import ConfigError
from tftrt_build.store.lock import Lock

# Tried in order when diff.base is not set.
DEFAULT_BASES = ("origin/main", "main")
GIT_TIMEOUT_S = 60


@dataclass(frozen=True)
class Base:
    """The lock a diff compares with, and where it came from."""

    lock: Lock
    # How messages name it: "tftrt.lock at origin/main (merge-base 1a2b3c4d5e6f)".
    description: str
    ref: str | None = None
    commit: str | None = None
    # The lock file: a path in the repository at ``commit``, or a file on disk.
    path: str = ""
    # False when the base commit has no lock file: everything is new.
    found: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "description": self.description,
            "ref": self.ref,
            "commit": self.commit,
            "path": self.path,
            "found": self.found,
        }


_NAME_A_LOCK = "diff.base_lock names a lock file, such as a tftrt.lock saved from another branch"


def load_base(project: Path, lock_path: Path, conf: DiffConf) -> Base:
    """The base lock that ``conf`` names (``diff.base_lock``, ``diff.base`` or the default)."""
    if conf.base and conf.base_lock:
        raise ConfigError(
            "diff.base and diff.base_lock both name the base; set one of them",
            key="diff.base_lock",
        )
    if conf.base_lock:
        path = under(project, conf.base_lock)
        shown = relative(path, project)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            problem = f"'{shown}' is {what}" if path.exists() else f"file '{shown}' not found"
            raise ConfigError(
                problem, key="diff.base_lock", hint=_NAME_A_LOCK if path.exists() else ""
            )
        lock = Lock.from_bytes(path.read_bytes(), shown)
        return Base(lock, shown, path=shown)
    return _from_git(project, lock_path, conf.base)


def _from_git(project: Path, lock_path: Path, ref: str | None) -> Base:
    toplevel = _try_git(project, "rev-parse", "--show-toplevel")
    if toplevel is None:
        raise ConfigError(
            f"{project} is not in a git repository, so there is no base to compare with",
            key="diff.base",
            hint="compare with a lock file: diff.base_lock=<file>",
        )
    top = Path(toplevel)
    try:
        in_repo = lock_path.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise ConfigError(
            f"'{lock_path}' is outside the git repository at {top}, so it has no base version",
            key="lock",
            hint="set diff.base_lock=<file>",
        ) from None
    chosen, commit = _base_commit(project, ref)
    merge_base = _git(project, "merge-base", "HEAD", commit, what=f"the merge-base with {chosen}")
    where = f"{chosen} (merge-base {merge_base[:12]})"
    blob = _try_git(project, "rev-parse", "--verify", "--quiet", f"{merge_base}:{in_repo}")
    if blob is None:
        return Base(Lock(), f"{in_repo} at {where}", chosen, merge_base, in_repo, found=False)
    data = _git_bytes(project, "cat-file", "blob", blob, what=f"{in_repo} at {where}")
    lock = Lock.from_bytes(data, f"{in_repo} at {chosen}")
    return Base(lock, f"{in_repo} at {where}", chosen, merge_base, in_repo)


def _base_commit(project: Path, ref: str | None) -> tuple[str, str]:
    """The ref to compare with and its commit: ``ref``, else the first default that exists."""
    for candidate in (ref,) if ref else DEFAULT_BASES:
        commit = _try_git(project, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if commit:
            return candidate, commit
    if ref:
        raise ConfigError(f"'{ref}' is not a commit in the git repository", key="diff.base")
    raise ConfigError(
        "neither origin/main nor main exists in the git repository, so there is no default base",
        key="diff.base",
        hint="set diff.base=<git ref> (in CI: fetch the target branch first) "
        "or diff.base_lock=<file>",
    )


def _git(project: Path, *args: str, what: str) -> str:
    return _git_bytes(project, *args, what=what).decode("utf-8", "replace").strip()


def _git_bytes(project: Path, *args: str, what: str) -> bytes:
    out = _run_git(project, *args)
    if out is None:
        raise ConfigError(
            f"git cannot read {what} in {project}",
            key="diff.base",
            hint="mode=diff needs a git repository with history (in CI: a full clone), "
            "or diff.base_lock=<file>",
        )
    return out


def _try_git(project: Path, *args: str) -> str | None:
    """git's output, or None when git fails (no repository, unknown ref, missing path)."""
    out = _run_git(project, *args)
    return None if out is None else out.decode("utf-8", "replace").strip()


def _run_git(project: Path, *args: str) -> bytes | None:
    """git's output as bytes (a blob need not be text), or None when git fails."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(project), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigError(
            "git is not installed", key="diff.base", hint="compare with diff.base_lock=<file>"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"git {args[0]} did not answer within {GIT_TIMEOUT_S} s in {project}",
            key="diff.base",
            hint="compare with diff.base_lock=<file>",
        ) from None
    if proc.returncode != 0:
        return None
    return proc.stdout
