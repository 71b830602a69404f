"""Where Hydra writes for a run: its folders, its copies of the config and its log files.

Before any job of tftrt-build's starts, Hydra makes the run's folder (``hydra.run.dir``; in a
sweep ``hydra.sweep.dir`` and a ``hydra.sweep.subdir`` per job), writes the composed config
under ``hydra.output_subdir`` and opens the files its logging configs name. Any config file can
set those keys (``# @package _global_`` with a ``hydra:`` node), and the run folder follows
``cache.dir``. So ``check_run_folders`` runs on every config Hydra composes, before Hydra
writes anything: each such path must resolve inside the project, or inside the cache folder
the machine's ``TFTRT_CACHE_DIR`` names, unless the command line sets
``allow_outside_project=true``. ``hydra.job.chdir`` must stay false (tftrt-build takes the
project from the working folder), and ``hydra.job.env_set`` may not set ``TFTRT_CACHE_DIR``
(that would pass a config file's folder off as the machine's).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.paths import under
from tftrt_build.errors import ConfigError

# Hydra's own per-job names: the only interpolations a sweep's subdir may use.
_SUBDIR_NAMES = re.compile(r"\$\{hydra\.job\.(num|id|override_dirname)\}")
# tftrt-build's log file, and any other plain name in the run folder: nothing to resolve.
_IN_RUN_FOLDER = re.compile(r"^\$\{hydra\.runtime\.output_dir\}/[\w.-]+$")
_HINT = "pick a folder inside the project, or set allow_outside_project=true on the command line"


def check_run_folders(
    cfg: DictConfig, project: Path, overrides: Sequence[str], allow_outside: bool
) -> None:
    """Refuse a composed config that would make Hydra write outside the project."""
    hydra = cfg.hydra
    roots = _roots(project, allow_outside)

    def where(key: str) -> str:
        """Who set the key: the command line when an override names it, else a config file."""
        for override in overrides:
            name = override.lstrip("+~").split("=", 1)[0]
            if key == name or key.startswith(name + ".") or name.startswith(key + "."):
                return COMMAND_LINE
        return "a config file"

    def inside(key: str, value: Any) -> Path:
        path = Path(os.path.normpath(under(project, str(value)))).resolve()
        if roots is not None and not any(path.is_relative_to(r) for r in roots):
            raise ConfigError(
                f"'{value}' is outside the project folder {project.resolve()}",
                key=key,
                file=where(key),
                hint=_HINT,
            )
        return path

    if hydra.job.chdir:
        raise ConfigError(
            "true; tftrt-build runs in the project folder, which is where it finds conf/",
            key="hydra.job.chdir",
            file=where("hydra.job.chdir"),
            hint="leave it false, as tftrt-build's config sets it",
        )
    if "TFTRT_CACHE_DIR" in (hydra.job.env_set or {}):
        raise ConfigError(
            "sets TFTRT_CACHE_DIR, the machine's cache folder; a config sets cache.dir",
            key="hydra.job.env_set.TFTRT_CACHE_DIR",
            file=where("hydra.job.env_set.TFTRT_CACHE_DIR"),
            hint="set cache.dir instead, or export TFTRT_CACHE_DIR before running",
        )
    # The run folders follow cache.dir by default: name the key the user wrote.
    if OmegaConf.select(cfg, "cache.dir") is not None:
        inside("cache.dir", cfg.cache.dir)
    folders = [inside("hydra.run.dir", hydra.run.dir), inside("hydra.sweep.dir", hydra.sweep.dir)]
    _relative_name("hydra.sweep.subdir", _SUBDIR_NAMES.sub("x", _raw(hydra.sweep, "subdir")), where)
    if hydra.output_subdir is not None:
        _relative_name("hydra.output_subdir", _raw(hydra, "output_subdir"), where)
    for section in ("hydra_logging", "job_logging"):
        handlers = OmegaConf.select(hydra, f"{section}.handlers") or {}
        for name in handlers:
            filename = _raw(handlers[name], "filename") if "filename" in handlers[name] else None
            if filename is None or _IN_RUN_FOLDER.match(filename):
                continue
            key = f"hydra.{section}.handlers.{name}.filename"
            for folder in folders:
                inside(key, _resolved_in(cfg, key, folder))


def _raw(node: DictConfig, key: str) -> str:
    """A value as written, interpolations unresolved."""
    return str(node._get_node(key)._value())  # type: ignore[union-attr]


def _roots(project: Path, allow_outside: bool) -> list[Path] | None:
    """The folders Hydra may write in; None when anywhere goes."""
    if allow_outside:
        return None
    roots = [project.resolve()]
    machine = os.environ.get("TFTRT_CACHE_DIR")
    if machine:
        roots.append(Path(os.path.normpath(under(project, machine))).resolve())
    return roots


def _relative_name(key: str, value: str, where: Any) -> None:
    """A path Hydra puts below a run folder: relative, with no way up and nothing to resolve."""
    parts = Path(value).parts
    if Path(value).is_absolute() or ".." in parts or "${" in value:
        raise ConfigError(
            f"'{value}' must be a relative path below the run folder",
            key=key,
            file=where(key),
            hint="use a plain folder name",
        )


def _resolved_in(cfg: DictConfig, key: str, run_folder: Path) -> str:
    """The value of ``key`` once Hydra has set the run's output folder to ``run_folder``."""
    probe = copy.deepcopy(cfg)
    with read_write(probe.hydra.runtime), open_dict(probe.hydra.runtime):
        probe.hydra.runtime.output_dir = str(run_folder)
    return str(OmegaConf.select(probe, key))
