"""What every tftrt-* command does around its Hydra app: one-line errors, exit codes, logs.

Exit codes: 0 done; 1 a stage failed or the lock is stale (mode=check); 2 bad config or lock;
3 an internal error (a bug: its traceback goes to the run's log file, whose path is printed);
130 interrupted.

A command is a ``Command`` over a job body. A single run ends with ``SystemExit`` carrying the
job's code; in a sweep each job leaves its outcome in its run folder and ``SweepSummary``
(``tftrt_build.cli.sweep``) ends the process with the worst. Nothing here is global state.

Why this module is long: starting Hydra, keeping its own error printing and HYDRA_FULL_ERROR
out of the user's view and environment, and reporting every failure by kind are one flow that
reads best in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from tftrt_build.cli.console import console
from tftrt_build.config.choices import check_choices, check_primary_config
from tftrt_build.config.commands import check_cache
from tftrt_build.config.explain import COMMAND_LINE, explain
from tftrt_build.config.keys import check_known_keys
from tftrt_build.config.nodecopy import fast_node_copies
from tftrt_build.config.options import (
    HydraOptions,
    command_line_value,
    register_search_path,
    user_config_dirs,
)
from tftrt_build.config.outputs import check_cache_dir
from tftrt_build.config.paths import under
from tftrt_build.config.plainnodes import plain_file_nodes
from tftrt_build.config.runfolders import check_run_folders
from tftrt_build.config.runmode import may_set_run_mode
from tftrt_build.config.schema import Config, register_configs
from tftrt_build.config.swap import swapped
from tftrt_build.config.yamlguard import check_config_dirs
from tftrt_build.config.yamlload import libyaml_run_records, omegaconf_loader
from tftrt_build.errors import ConfigError, TftrtError
from tftrt_build.store.runs import prune_runs

log = logging.getLogger(__name__)
# What a job leaves in its run folder for the sweep summary.
OUTCOME_FILE = "tftrt-outcome.json"
INTERNAL_ERROR = 3
INTERRUPTED = 130


@dataclass
class JobContext:
    """Who is running: the Hydra choices and overrides, and where this job's log goes."""

    choices: dict[str, str]
    overrides: list[str]
    # "" for a single run; the job's overrides in a sweep.
    job: str
    log_file: Path | None
    verbose: bool


@dataclass
class Outcome:
    """What a job ends with: its exit code, and what a sweep summary shows of it."""

    code: int
    # "build" rows or "bench" cells, as plain data.
    kind: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


JobBody = Callable[[Config, HydraOptions, JobContext], Outcome]


def print_error(message: str) -> None:
    console(stderr=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True
    )


def to_config(cfg: DictConfig, choices: dict[str, str], options: HydraOptions) -> Config:
    # Only a +key=value override can add a key the schema lacks: blame the command line.
    check_known_keys(cfg, "", COMMAND_LINE)
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:
        error = explain(exc, choices, options)
        if error is None:
            raise
        raise error from exc
    if not isinstance(obj, Config):
        # A primary config from a search path folder prepare() does not read (pkg://, ...).
        raise ConfigError(
            "the primary config names none of tftrt-build's own in its defaults list",
            key="--config-name",
            file=COMMAND_LINE,
            hint="start its defaults list with - tftrt_build",
        )
    return obj


def from_command_line(
    error: TftrtError, overrides: list[str], groups: dict[str, str]
) -> TftrtError:
    """Blame the command line, not the YAML file, for a value an override set."""
    if not isinstance(error, ConfigError) or not error.key:
        return error
    key = re.sub(r"\[(\d+)\]", r".\1", error.key)
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+~")
        if name in groups:
            continue  # profile=fp16 picks a file; the file is still to blame for its values
        if key == name or key.startswith(name + "."):
            return ConfigError(error.message, key=error.key, file=COMMAND_LINE, hint=error.hint)
    return error


def report(exc: BaseException, context: JobContext) -> int:
    """Say what went wrong in one line (and the stage's last lines); return the exit code."""
    if isinstance(exc, TftrtError):
        if context.verbose:
            traceback.print_exception(exc)
        print_error(str(exc))
        tail = getattr(exc, "tail", None)
        if tail and not context.verbose:
            # A stage that failed: its last log lines say why (verbose=true shows them all).
            err = console(stderr=True)
            for line in tail:
                err.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
        return exc.exit_code
    if _log_file() is not None:
        log.error("internal error", exc_info=exc)
    where = f"; traceback in {context.log_file}" if context.log_file else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print_error(
        f"internal error: {type(exc).__name__}{': ' + first if first else ''} "
        f"(a bug in tftrt-build{where})"
    )
    if context.verbose:
        traceback.print_exception(exc)
    return INTERNAL_ERROR


@contextlib.contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let Hydra's own errors reach ``Command.main`` instead of Hydra printing them.

    Hydra prints an exception itself unless HYDRA_FULL_ERROR is set; it is set here, around
    Hydra's frames only: the job runs with the user's environment (``_user_environment``), so
    child processes never inherit the forced value.
    """
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        _restore("HYDRA_FULL_ERROR", saved)


@contextlib.contextmanager
def _user_environment(saved: str | None) -> Iterator[None]:
    forced = os.environ.get("HYDRA_FULL_ERROR")
    _restore("HYDRA_FULL_ERROR", saved)
    try:
        yield
    finally:
        _restore("HYDRA_FULL_ERROR", forced)


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _wants_traceback(argv: list[str]) -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or any(
        a.lower() in ("verbose=true", "verbose=1") for a in argv
    )


def prepare(argv: list[str]) -> bool:
    """What every command does before Hydra reads a config file.

    Registers the schemas and the project's search path (whatever the install mode), and
    refuses a group choice that is a path, not an option name (``model=../x``), and a config
    file of the user's that is unsafe to load (not UTF-8, an alias bomb, too deeply nested),
    before Hydra's loader would hang or crash on it, and a ``cache.dir`` outside the project
    before Hydra would make a run folder in it.

    Returns whether Hydra must compose the config to learn ``hydra.mode`` (``_one_compose``).
    """
    register_configs()
    register_search_path()
    # A choice such as model=../x would load a file outside every folder checked next.
    check_choices(argv)
    folders = user_config_dirs(argv)
    check_config_dirs(folders)
    check_primary_config(argv, folders)
    # Hydra makes the run folder in cache.dir before any job starts: check it first.
    cache_dir = command_line_value(argv, "cache.dir")
    if isinstance(cache_dir, str):
        outside = command_line_value(argv, "allow_outside_project") is True
        check_cache_dir(cache_dir, Path.cwd(), COMMAND_LINE, outside)
    return may_set_run_mode(argv, folders)


@contextlib.contextmanager
def _one_compose(mode_from_config: bool) -> Iterator[None]:
    """Spare Hydra's first compose of the config when no value of the user's sets hydra.mode.

    ``hydra.main`` composes the whole config once only to read ``hydra.mode`` (``get_mode``),
    then again to run: half of a cached build's time. When that key can only be unset (see
    ``may_set_run_mode``), the first compose would answer None, which is what this answers;
    Hydra then takes the mode from ``-m`` as always. ``get_mode`` is Hydra's own method
    (hydra-core 1.3, pinned); without it, Hydra composes twice as before.
    """
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra, "get_mode", None)
    if mode_from_config or original is None:
        yield
        return

    def unset(self: Any, config_name: str | None, overrides: list[str]) -> None:
        return None

    with swapped(Hydra, "get_mode", unset):
        yield


@contextlib.contextmanager
def _checked_run_folders(argv: list[str]) -> Iterator[None]:
    """Check where Hydra will write as soon as it has composed a config (``runfolders``).

    Hydra makes the run folder, copies the config into it and opens its log files right after
    composing, before any job starts. ``ConfigLoaderImpl.load_configuration`` (hydra-core 1.3,
    pinned) is where every config Hydra composes comes from: a run's, a sweep's, each sweep
    job's, and ``--cfg``'s; the check runs on its result, before Hydra uses it.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_configuration
    project = Path.cwd()
    allow_outside = command_line_value(argv, "allow_outside_project") is True
    overrides = [a for a in argv if not a.startswith("-")]

    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        cfg = original(self, *args, **kwargs)
        check_run_folders(cfg, project, overrides, allow_outside)
        return cfg

    with swapped(ConfigLoaderImpl, "load_configuration", checked):
        yield


class Command:
    """One tftrt-* console command: a Hydra app over tftrt-build's configs and a job body."""

    def __init__(self, body: JobBody, config_name: str = "tftrt_build") -> None:
        self.body = body
        # The primary config: tftrt_build, or a command's own over it (its --help text).
        self.config_name = config_name
        self._user_full_error = os.environ.get("HYDRA_FULL_ERROR")
        self._tracebacks = False

    def main(self) -> None:
        self._user_full_error = os.environ.get("HYDRA_FULL_ERROR")
        self._tracebacks = _wants_traceback(sys.argv[1:])
        # What importing made (modules, classes, functions) lives as long as the process: the
        # run's full collections need not visit it again and again.
        gc.freeze()
        try:
            mode_from_config = prepare(sys.argv[1:])
            app = hydra.main(
                version_base="1.3",
                config_path="pkg://tftrt_build.conf",
                config_name=self.config_name,
            )(self.task)
            with (
                _hydra_raises(),
                _one_compose(mode_from_config),
                omegaconf_loader(),
                plain_file_nodes(),
                libyaml_run_records(),
                fast_node_copies(),
                _checked_run_folders(sys.argv[1:]),
            ):
                app()
        except KeyboardInterrupt:
            console(stderr=True).print("[red]interrupted[/red]")
            sys.exit(INTERRUPTED)
        except Exception as exc:
            if self._tracebacks:
                raise
            sys.exit(self.failed_to_start(exc))
        finally:
            _spare_teardown_collections()
        sys.exit(0)

    def failed_to_start(self, exc: Exception) -> int:
        """Composing the config failed, before any job started: say why, return the exit code."""
        error = explain(exc, {}, HydraOptions())
        if error is not None:
            return report(error, JobContext({}, [], "", None, False))
        # A bug before Hydra set up the run's log: its traceback gets a run folder of its own.
        return report(exc, JobContext({}, [], "", _crash_log(exc), False))

    def task(self, cfg: DictConfig) -> None:
        """The Hydra task function: run the job, record its outcome, end a single run.

        Nothing but SystemExit (a single run's exit code) and KeyboardInterrupt leaves it:
        Hydra would print its own "Error executing job" line above ours for anything else.
        """
        hc = HydraConfig.get()
        multirun = hc.mode is RunMode.MULTIRUN
        if multirun and hc.runtime.cwd and Path.cwd() != Path(hc.runtime.cwd):
            # A launcher's worker (a Ray task) starts where its cluster was started; the
            # project is the folder the sweep was started from.
            os.chdir(hc.runtime.cwd)
        context = JobContext(
            choices=dict(hc.runtime.choices),
            overrides=list(hc.overrides.task),
            job=" ".join(hc.overrides.task) if multirun else "",
            log_file=_log_file(),
            verbose=bool(cfg.get("verbose", False)) or self._tracebacks,
        )
        log.info("%s %s", Path(sys.argv[0]).name, " ".join(sys.argv[1:]))
        with _user_environment(self._user_full_error), _console_log(context.verbose):
            outcome = self.run_job(cfg, context)
        if multirun:
            try:
                (Path(hc.runtime.output_dir) / OUTCOME_FILE).write_text(outcome.to_json())
            except OSError as exc:
                # The sweep summary counts a job without an outcome as failed.
                print_error(f"cannot record the outcome of job {context.job}: {exc}")
        elif outcome.code:
            raise SystemExit(outcome.code)

    def run_job(self, cfg: DictConfig, context: JobContext) -> Outcome:
        try:
            options = HydraOptions(cfg, list(HydraConfig.get().searchpath), context.overrides)
            try:
                config = to_config(cfg, context.choices, options)
                _prune_runs(config)
                return self.body(config, options, context)
            except TftrtError as exc:
                raise from_command_line(exc, context.overrides, context.choices) from exc
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            code = report(exc, context)
            failed = {"choices": context.choices, "job": context.job, "error": str(exc)}
            return Outcome(code, "failed", [failed])


def _spare_teardown_collections() -> None:
    """The process is ending: keep Python's teardown from garbage-collecting what is alive.

    Python's finalization runs four full collections, each visiting every object still alive:
    a warm run holds about 52,000 (Hydra's, OmegaConf's, protobuf's), and they took 0.2-0.3 s
    of a 1.4 s run. Frozen objects are still freed by reference counting as modules are
    cleared, and atexit handlers run as before; only reference cycles among them are left for
    the operating system to reclaim (``gc.freeze``).
    """
    gc.freeze()


def _crash_log(exc: Exception) -> Path | None:
    """A run folder's log holding the traceback of a bug hit before Hydra made the run's own."""
    cache = under(Path.cwd(), os.environ.get("TFTRT_CACHE_DIR") or ".tftrt-cache")
    path = cache / "runs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f") / "run.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def _log_file() -> Path | None:
    """The run's log file, as Hydra's job_logging config names it."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


@contextlib.contextmanager
def _console_log(verbose: bool) -> Iterator[None]:
    """With verbose=true, what the run logs is shown on the console as well."""
    if not verbose:
        yield
        return
    from rich.logging import RichHandler

    handler = RichHandler(console=console(stderr=True), show_path=False, markup=False)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _prune_runs(config: Config) -> None:
    check_cache(config.cache)
    current = Path(HydraConfig.get().runtime.output_dir)
    runs = under(Path.cwd(), config.cache.dir) / "runs"
    for removed in prune_runs(runs, config.cache.keep_runs, current):
        log.info("pruned old run folder %s", removed)
