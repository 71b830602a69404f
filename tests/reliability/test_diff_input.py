"""mode=diff refuses bad input with one line naming the file and key, and writes nothing.

In-process through the job function, as the CLI calls it (Hydra's compose API, the CLI's own
composer and command-line attribution); one case also through the console script, for the
exit code and the absent output file.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project
from reviewing import REVIEW, commit, git, init_repo, plan_lock, review_repo, write_lock

Setup = Callable[[Path, Path], None]


def _repo(root: Path, cache: Path) -> None:
    review_repo(root, cache)


def _repo_with_folder(root: Path, cache: Path) -> None:
    review_repo(root, cache)
    (root / "locks").mkdir()


def _trunk(root: Path, cache: Path) -> None:
    """A repository whose only branch is 'trunk': no origin/main, no main."""
    init_repo(root, "trunk")
    shutil.copytree(REVIEW, root, dirs_exist_ok=True)
    write_lock(root, plan_lock(root, cache, "target=prod"))
    commit(root, "trunk")


def _plain(root: Path, cache: Path) -> None:
    root.mkdir(parents=True)
    shutil.copytree(REVIEW, root, dirs_exist_ok=True)


def _orphan(root: Path, cache: Path) -> None:
    review_repo(root, cache)
    git(root, "checkout", "-q", "--orphan", "orphan")
    commit(root, "unrelated history")
    git(root, "checkout", "-q", "main")


def _base_lock(data: bytes, what: str) -> Setup:
    """A repository whose main branch holds a lock of these bytes; HEAD is a fixed branch."""

    def setup(root: Path, cache: Path) -> None:
        init_repo(root)
        shutil.copytree(REVIEW, root, dirs_exist_ok=True)
        (root / "tftrt.lock").write_bytes(data)
        commit(root, what)
        git(root, "checkout", "-q", "-b", "fix")
        (root / "tftrt.lock").unlink()
        write_lock(root, plan_lock(root, cache, "target=prod"))
        commit(root, "fixed lock")

    return setup


_broken_base = _base_lock(b"schema: [\n", "a broken lock")
_latin1_base = _base_lock(b"schema: 1\n# caf\xe9\n", "a lock that is not UTF-8")


def _latin1_file(root: Path, cache: Path) -> None:
    review_repo(root, cache)
    (root / "old.lock").write_bytes(b"schema: 1\n# caf\xe9\n")


def _old_schema_file(root: Path, cache: Path) -> None:
    review_repo(root, cache)
    (root / "old.lock").write_text("schema: 2\nhash: blake3\n")


CASES: list[tuple[str, Setup, tuple[str, ...], str]] = [
    (
        "both bases",
        _repo,
        ("diff.base=main", "diff.base_lock=old.lock"),
        "command line: diff.base_lock: diff.base and diff.base_lock both name the base; "
        "set one of them",
    ),
    (
        "unknown ref",
        _repo,
        ("diff.base=nope",),
        "command line: diff.base: 'nope' is not a commit in the git repository",
    ),
    (
        "no default base",
        _trunk,
        (),
        "diff.base: neither origin/main nor main exists in the git repository, so there is no "
        "default base (set diff.base=<git ref> (in CI: fetch the target branch first) or "
        "diff.base_lock=<file>)",
    ),
    (
        "not a repository",
        _plain,
        (),
        "diff.base: {root} is not in a git repository, so there is no base to compare with "
        "(compare with a lock file: diff.base_lock=<file>)",
    ),
    (
        "unrelated history",
        _orphan,
        ("diff.base=orphan",),
        "command line: diff.base: git cannot read the merge-base with orphan in {root} "
        "(mode=diff needs a git repository with history (in CI: a full clone), or "
        "diff.base_lock=<file>)",
    ),
    (
        "lock outside the repository",
        _repo,
        ("lock=/dev/null/tftrt.lock",),
        "command line: lock: '/dev/null/tftrt.lock' is outside the git repository at {root}, "
        "so it has no base version (set diff.base_lock=<file>)",
    ),
    (
        "missing lock file",
        _repo,
        ("diff.base_lock=missing.lock",),
        "command line: diff.base_lock: file 'missing.lock' not found",
    ),
    (
        # Said "file not found", though the path was there.
        "base lock is a folder",
        _repo_with_folder,
        ("diff.base_lock=locks",),
        "command line: diff.base_lock: 'locks' is a folder (diff.base_lock names a lock file, "
        "such as a tftrt.lock saved from another branch)",
    ),
    (
        # Said "restore it from version control, or delete it", and named no key.
        "lock is a folder",
        _repo_with_folder,
        ("lock=locks",),
        "command line: lock: 'locks' is a folder; a lock is a file (set lock=<a file path>)",
    ),
    (
        "lock file of another schema",
        _old_schema_file,
        ("diff.base_lock=old.lock",),
        "old.lock: schema 2 is not the supported 1 (written by another version of tftrt-build) "
        "(restore it from version control, or delete it and run tftrt-build to write it again)",
    ),
    (
        "base lock not YAML",
        _broken_base,
        (),
        "tftrt.lock at main: not valid YAML (ParserError at line 2) (restore it from version "
        "control, or delete it and run tftrt-build to write it again)",
    ),
    (
        # Was an internal error (exit 3): the file was decoded before the lock's own checks.
        "base lock file not UTF-8",
        _latin1_file,
        ("diff.base_lock=old.lock",),
        "old.lock: is not UTF-8 text (byte 0xe9 on line 2) (restore it from version control, "
        "or delete it and run tftrt-build to write it again)",
    ),
    (
        "base lock at the ref not UTF-8",
        _latin1_base,
        (),
        "tftrt.lock at main: is not UTF-8 text (byte 0xe9 on line 2) (restore it from version "
        "control, or delete it and run tftrt-build to write it again)",
    ),
    (
        # Was an internal error (exit 3) after all the planning: the folder could not be made.
        "output below a file",
        _repo,
        ("diff.output=tftrt.lock/review.md",),
        "command line: diff.output: 'tftrt.lock/review.md' is below 'tftrt.lock', which is a "
        "file; name a file in a folder",
    ),
    (
        "misspelt warning",
        _repo,
        ("diff.blocking=[precision_lowerd]",),
        "command line: diff.blocking[0]: 'precision_lowerd' is not one of precision_lowered, "
        "label_dangling, gpu_arch_mismatch, tolerance_loosened, lock_stale "
        "(did you mean 'precision_lowered'?)",
    ),
    (
        "unknown format",
        _repo,
        ("diff.format=html",),
        "command line: diff.format: 'html' is not one of text, markdown, json",
    ),
    (
        "unknown target",
        _repo,
        ("diff.targets=[prdo]",),
        "command line: diff.targets[0]: no target option 'prdo' (did you mean 'prod'?)",
    ),
    (
        "targets chosen twice",
        _repo,
        ("diff.targets=[prod]", "target=prod"),
        "command line: diff.targets: diff.targets and target= both choose what to compare; "
        "give one",
    ),
]


def run_diff(root: Path, cache: Path, overrides: tuple[str, ...]) -> str:
    """The one-line error mode=diff ends with, as the CLI would print it ('' if none)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from tftrt_build import job
    from tftrt_build.cli.app import from_command_line, to_config
    from tftrt_build.cli.review import CHOOSERS, composer
    from tftrt_build.config.explain import explain
    from tftrt_build.config.options import HydraOptions
    from tftrt_build.config.schema import register_configs
    from tftrt_build.errors import TftrtError

    register_configs()
    args = ["mode=diff", *overrides]
    choices: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("TFTRT_CACHE_DIR", str(cache))
        GlobalHydra.instance().clear()
        try:
            with initialize_config_module("tftrt_build.conf", version_base="1.3"):
                try:
                    cfg = compose("tftrt_build", args, return_hydra_config=True)
                except Exception as exc:
                    raise explain(exc, {}, HydraOptions()) from exc
                choices = dict(cfg.hydra.runtime.choices)
                with open_dict(cfg):
                    del cfg["hydra"]
                options = HydraOptions(cfg)
                config = to_config(cfg, choices, options)
                chosen = {o.split("=")[0].split(".")[0] for o in args} & set(CHOOSERS)
                job.diff(config, choices, options, root, composer(args), chosen)
        except TftrtError as exc:
            return str(from_command_line(exc, args, choices))
        finally:
            GlobalHydra.instance().clear()
    return ""


@pytest.mark.parametrize(
    ("setup", "overrides", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_diff_input(
    setup: Setup, overrides: tuple[str, ...], message: str, tmp_path: Path, shared_cache: Path
) -> None:
    root = tmp_path / "repo"
    setup(root, shared_cache)
    before = sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts)
    assert run_diff(root, shared_cache, overrides) == message.format(root=root)
    after = sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts)
    assert after == before


def test_the_cli_prints_one_line_exits_2_and_writes_nothing(
    tmp_path: Path, shared_cache: Path
) -> None:
    root = tmp_path / "repo"
    _trunk(root, shared_cache)
    project = Project(root, shared_cache)
    result = project.run("mode=diff", "diff.output=review.md")
    assert result.code == 2, result.err
    assert result.error_line.startswith("diff.base: neither origin/main nor main exists")
    assert result.out == ""
    assert not (root / "review.md").exists()
    (root / "out").mkdir()
    folder = project.run("mode=diff", "diff.base=trunk", "diff.output=out")
    assert folder.code == 2, folder.err
    assert folder.error_line == "command line: diff.output: 'out' is a folder; name a file"
    assert list((root / "out").iterdir()) == []
