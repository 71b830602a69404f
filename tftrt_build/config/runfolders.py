"""What Hydra does for a run before any job starts: where it writes, and what code it runs.

Before any job of tftrt-build's starts, Hydra makes the run's folder (``hydra.run.dir``; in a
sweep ``hydra.sweep.dir`` and a ``hydra.sweep.subdir`` per job), writes the composed config
under ``hydra.output_subdir``, configures logging (opening the files its handlers name, and
building any class or ``()`` factory named there) and instantiates every ``hydra.callbacks``
entry. Any config file can set those keys (``# @package _global_`` with a ``hydra:`` node),
and the run folder follows ``cache.dir``. So ``check_run_folders`` runs on every config Hydra
composes, before Hydra uses it:

- each such path resolves (links followed) inside the project, or inside the cache folder the
  machine's ``TFTRT_CACHE_DIR`` names, unless the command line sets
  ``allow_outside_project=true``; its interpolations are only ones that resolve then as now;
- a config file may not add callbacks, logging factories or classes other than logging's
  own, sweeper ``params`` (they would pass for the command line's overrides) or
  ``hydra.job.env_set`` entries; the command line may;
- ``hydra.job.chdir`` stays false (tftrt-build takes the project from the working folder).
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.origin import related, setting_file
from tftrt_build.config.paths import under
from tftrt_build.errors import ConfigError

# The interpolations a path Hydra writes to may hold. Each resolves now as it will when Hydra
# uses it: the job's number, id and override names are checked below, the time is the time.
_SAFE = re.compile(
    r"\$\{(?:cache\.dir|oc\.env:TFTRT_CACHE_DIR,\.tftrt-cache|now:(?P<now>[^${}]*)"
    r"|hydra\.job\.(?:num|id|name|override_dirname)|hydra\.runtime\.output_dir)\}"
)
# tftrt-build's log file, and any other plain name in the run folder: nothing to resolve.
_IN_RUN_FOLDER = re.compile(r"^\$\{hydra\.runtime\.output_dir\}/[\w.-]+$")
_PLAIN_NAME = re.compile(r"^[\w.-]+$")
# What a logging config may build: logging's own classes and Rich's handler, nothing named by
# a "()" factory (any importable callable, run while Hydra configures logging).
_LOGGING_CLASSES = {
    "logging.Formatter",
    "logging.StreamHandler",
    "logging.FileHandler",
    "logging.NullHandler",
    "logging.handlers.RotatingFileHandler",
    "logging.handlers.TimedRotatingFileHandler",
    "logging.handlers.WatchedFileHandler",
    "rich.logging.RichHandler",
}
SWEEP_SUMMARY = "tftrt_build.cli.sweep.SweepSummary"
_HINT = "pick a folder inside the project, or set allow_outside_project=true on the command line"


def check_run_folders(
    cfg: DictConfig, project: Path, overrides: Sequence[str], allow_outside: bool
) -> None:
    """Refuse a composed config that would make Hydra write outside the project, or run code a
    config file names."""
    hydra = cfg.hydra
    roots = _roots(project, allow_outside)

    def where(key: str) -> str:
        """Who set the key: the command line when an override names it, else a config file."""
        for override in overrides:
            name = override.lstrip("+~").split("=", 1)[0]
            if related(key, name):
                return COMMAND_LINE
        return "a config file"

    def refuse(key: str, message: str, hint: str = "") -> ConfigError:
        file = where(key)
        if file != COMMAND_LINE:
            file = setting_file(cfg, key) or file
        return ConfigError(message, key=key, file=file, hint=hint)

    def inside(key: str, value: Any) -> Path:
        # Resolved as the operating system will (a link followed before any ".." after it).
        path = under(project, str(value)).resolve()
        if roots is not None and not any(path.is_relative_to(r) for r in roots):
            raise refuse(key, f"'{value}' is outside the project folder {project.resolve()}", _HINT)
        return path

    def interpolations(key: str, raw: str) -> None:
        """Only interpolations that resolve now as they will when Hydra uses the value."""
        rest = _SAFE.sub("", raw)
        if "${" in rest:
            raise refuse(
                key,
                f"'{raw}' uses an interpolation Hydra could resolve differently when it writes",
                "use ${cache.dir}, ${now:...}, ${hydra.job.num}, ${hydra.job.id}, "
                "${hydra.job.override_dirname} or ${hydra.runtime.output_dir}",
            )
        for match in _SAFE.finditer(raw):
            if match["now"] is not None and os.sep in time.strftime(match["now"]):
                raise refuse(key, f"'{raw}': a ${{now:...}} format that makes folders", _HINT)

    if hydra.job.chdir:
        raise refuse(
            "hydra.job.chdir",
            "true; tftrt-build runs in the project folder, which is where it finds conf/",
            "leave it false, as tftrt-build's config sets it",
        )
    _check_code(hydra, where, refuse)
    env_set = hydra.job.env_set or {}
    if "TFTRT_CACHE_DIR" in env_set:
        raise refuse(
            "hydra.job.env_set.TFTRT_CACHE_DIR",
            "sets TFTRT_CACHE_DIR, the machine's cache folder; a config sets cache.dir",
            "set cache.dir instead, or export TFTRT_CACHE_DIR before running",
        )
    for name in env_set:
        if where(f"hydra.job.env_set.{name}") != COMMAND_LINE:
            raise refuse(
                f"hydra.job.env_set.{name}",
                "a config file may not set the job's environment",
                "set it on the command line, or in the environment tftrt-build runs in",
            )
    # Hydra builds the per-job names from these: no separator may make a folder of its own.
    name = str(hydra.job.name)
    if not _PLAIN_NAME.match(name) or name in (".", ".."):
        raise refuse("hydra.job.name", f"'{name}' is not a plain name", "leave it unset")
    for sep in ("kv_sep", "item_sep"):
        value = str(OmegaConf.select(hydra, f"job.config.override_dirname.{sep}"))
        if os.sep in value or (os.altsep and os.altsep in value) or ".." in value:
            key = f"hydra.job.config.override_dirname.{sep}"
            raise refuse(key, f"'{value}' would make folders of a job's overrides")
    # The run folders follow cache.dir by default: name the key the user wrote.
    folders = []
    for key in ("cache.dir", "hydra.run.dir", "hydra.sweep.dir"):
        node = OmegaConf.select(cfg, key.rsplit(".", 1)[0])
        if node is None:
            continue
        interpolations(key, _raw(node, key.rsplit(".", 1)[1]))
        path = inside(key, OmegaConf.select(cfg, key))
        if key != "cache.dir":
            folders.append(path)
    subdir = _raw(hydra.sweep, "subdir")
    interpolations("hydra.sweep.subdir", subdir)
    _relative_name("hydra.sweep.subdir", _SAFE.sub("x", subdir), refuse)
    if hydra.output_subdir is not None:
        _relative_name("hydra.output_subdir", _raw(hydra, "output_subdir"), refuse)
    for section in ("hydra_logging", "job_logging"):
        handlers = OmegaConf.select(hydra, f"{section}.handlers") or {}
        for name in handlers:
            handler = handlers[name]
            if not isinstance(handler, DictConfig):
                key = f"hydra.{section}.handlers.{name}"
                raise refuse(key, "is not a mapping of a handler's settings")
            filename = _raw(handler, "filename") if "filename" in handler else None
            if filename is None or _IN_RUN_FOLDER.match(filename):
                continue
            key = f"hydra.{section}.handlers.{name}.filename"
            interpolations(key, filename)
            for folder in folders:
                inside(key, _resolved_in(cfg, key, folder))


def _check_code(hydra: DictConfig, where: Any, refuse: Any) -> None:
    """Refuse what makes Hydra import and call something a config file names.

    Hydra instantiates every ``hydra.callbacks`` entry, logging's dictConfig calls any ``()``
    factory and builds any ``class``, and a sweeper's ``params`` become overrides of every job
    (which tftrt-build would take for the command line's). The command line may set them.
    """
    for name in hydra.callbacks or {}:
        key = f"hydra.callbacks.{name}"
        entry = hydra.callbacks[name]
        target = entry.get("_target_") if isinstance(entry, DictConfig) else None
        if target != SWEEP_SUMMARY and where(key) != COMMAND_LINE:
            raise refuse(key, f"a config file may not add a callback (Hydra would run {target})")
    if OmegaConf.select(hydra, "sweeper.params") and where("hydra.sweeper.params") != COMMAND_LINE:
        raise refuse(
            "hydra.sweeper.params",
            "a config file may not add overrides to a sweep",
            "give the sweep on the command line: tftrt-build -m key=a,b",
        )
    for section in ("hydra_logging", "job_logging"):
        if where(f"hydra.{section}") == COMMAND_LINE:
            continue
        raw = OmegaConf.to_container(hydra[section], resolve=False) if hydra[section] else {}
        for path, key, value in _walk(raw, f"hydra.{section}"):
            if key == "()" or (key == "class" and str(value) not in _LOGGING_CLASSES):
                raise refuse(
                    path,
                    f"'{value}' is not one of logging's own classes; Hydra would import and "
                    "run it while configuring logging",
                )


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a plain container, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            yield here, str(key), value
            yield from _walk(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


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
        roots.append(under(project, machine).resolve())
    return roots


def _relative_name(key: str, value: str, refuse: Any) -> None:
    """A path Hydra puts below a run folder: relative, with no way up and nothing to resolve."""
    parts = Path(value).parts
    if Path(value).is_absolute() or ".." in parts or "${" in value:
        raise refuse(
            key, f"'{value}' must be a relative path below the run folder", "use a plain name"
        )


def _resolved_in(cfg: DictConfig, key: str, run_folder: Path) -> str:
    """The value of ``key`` once Hydra has set the run's output folder to ``run_folder``."""
    probe = copy.deepcopy(cfg)
    with read_write(probe.hydra.runtime), open_dict(probe.hydra.runtime):
        probe.hydra.runtime.output_dir = str(run_folder)
    return str(OmegaConf.select(probe, key))
