"""The ``tftrt-build`` command: a Hydra app over conf/. The only module that prints or exits.

Exit codes: 0 done; 1 a stage failed or the lock is stale (mode=check); 2 bad config or lock.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from tftrt_build.console import console
from tftrt_build.errors import ConfigError, TftrtError, did_you_mean
from tftrt_build.explain import COMMAND_LINE, explain
from tftrt_build.options import HydraOptions
from tftrt_build.report import Row, summary_table
from tftrt_build.schema import Config, register_configs
from tftrt_build.service import execute

SUMMARY_FILE = "tftrt-summary.json"
BENCH_FILE = "tftrt-bench.json"
# The exit code of this process: the worst of its jobs.
_exit_code = [0]
# Whether the user asked for tracebacks (HYDRA_FULL_ERROR=1 or verbose=true).
_tracebacks = [False]


def set_exit(code: int) -> None:
    _exit_code[0] = max(_exit_code[0], code)


def _wants_traceback(argv: list[str]) -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or any(
        a.lower() in ("verbose=true", "verbose=1") for a in argv
    )


def print_error(error: TftrtError) -> None:
    console(stderr=True).print(
        f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True
    )


def to_config(cfg: DictConfig, choices: dict[str, str], options: HydraOptions) -> Config:
    known = [f.name for f in dataclasses.fields(Config)]
    for key in cfg:
        if key not in known:
            raise ConfigError(
                "unknown key", key=str(key), file=COMMAND_LINE, hint=did_you_mean(str(key), known)
            )
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:
        raise explain(exc, choices, options) from exc
    assert isinstance(obj, Config)
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


def report_failure(exc: TftrtError, verbose: bool) -> None:
    if verbose:
        traceback.print_exc()
    print_error(exc)
    tail = getattr(exc, "tail", None)
    if tail and not verbose:
        # A stage that failed: its last log lines say why (verbose=true shows them all).
        err = console(stderr=True)
        for line in tail:
            err.print(f"  [dim]{escape(line)}[/dim]", highlight=False)


Job = Callable[[Config, dict[str, str], HydraOptions, str], tuple[list[Any], int]]


def guarded(
    cfg: DictConfig, choices: dict[str, str], job: str, overrides: list[str], body: Job
) -> tuple[list[Any], int] | TftrtError:
    """Run one job body; a TftrtError is reported in one line and returned, not raised."""
    options = HydraOptions()
    verbose = bool(cfg.get("verbose", False)) or _tracebacks[0]
    try:
        try:
            return body(to_config(cfg, choices, options), choices, options, job)
        except TftrtError as exc:
            raise from_command_line(exc, overrides, choices) from exc
    except TftrtError as exc:
        report_failure(exc, verbose)
        return exc


def run_job(
    cfg: DictConfig, choices: dict[str, str], job: str, overrides: list[str]
) -> tuple[list[Row], int]:
    """Run one build (one job of a sweep); return its summary rows and exit code."""

    def build(
        config: Config, choices: dict[str, str], options: HydraOptions, job: str
    ) -> tuple[list[Any], int]:
        return execute(config, choices, options, Path.cwd(), job=job)

    outcome = guarded(cfg, choices, job, overrides, build)
    if isinstance(outcome, TftrtError):
        failed = Row(
            choices.get("model", "?"),
            choices.get("profile", "?"),
            None,
            "",
            "failed",
            None,
            None,
            job=job,
            note=str(outcome),
        )
        return [failed], outcome.exit_code
    return outcome


@hydra.main(version_base="1.3", config_path="pkg://tftrt_build.conf", config_name="tftrt_build")
def _app(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    multirun = hc.mode is RunMode.MULTIRUN
    job = " ".join(hc.overrides.task) if multirun else ""
    rows, code = run_job(cfg, dict(hc.runtime.choices), job, list(hc.overrides.task))
    if multirun:
        # Each job leaves its rows in its own folder; the sweep callback gathers them, which
        # works the same with launchers that run jobs in other processes.
        path = Path(hc.runtime.output_dir) / SUMMARY_FILE
        path.write_text(json.dumps({"code": code, "rows": [r.to_dict() for r in rows]}))
    set_exit(code)


class SweepSummary(Callback):
    """Prints one table for a whole sweep and makes the process fail if any job failed.

    Each job leaves its results in its run folder (a build's rows, or a benchmark's cells);
    this gathers them, which works with launchers that run jobs in other processes too.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)

        def job_files(name: str) -> list[Path]:
            return sorted(
                sweep_dir.glob(f"*/{name}"),
                key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            )

        out = console()
        worst = 0
        rows: list[Row] = []
        for path in job_files(SUMMARY_FILE):
            data = json.loads(path.read_text())
            worst = max(worst, int(data["code"]))
            rows.extend(Row(**r) for r in data["rows"])
        if rows:
            out.print(summary_table(rows, title=f"tftrt-build sweep ({sweep_dir})"))
            for row in rows:
                if row.note:
                    out.print(f"[red]{escape(row.job)}:[/red] {escape(row.note)}", highlight=False)
        bench_files = job_files(BENCH_FILE)
        if bench_files:
            from tftrt_build.serving_cli import sweep_bench_table

            worst = max(worst, sweep_bench_table(bench_files, out))
        set_exit(worst)


def entry(app: Callable[[], None]) -> None:
    """What every tftrt-* command does around its Hydra app: one-line errors, exit codes."""
    register_configs()
    full = _tracebacks[0] = _wants_traceback(sys.argv[1:])
    # Let Hydra's own errors reach this function, so they can be said in one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except KeyboardInterrupt:
        console(stderr=True).print("[red]interrupted[/red]")
        sys.exit(130)
    except Exception as exc:
        if full:
            raise
        error = exc if isinstance(exc, TftrtError) else explain(exc, {}, HydraOptions())
        print_error(error)
        sys.exit(error.exit_code)
    sys.exit(_exit_code[0])


def main() -> None:
    entry(_app)


__all__ = ["ConfigError", "SweepSummary", "main"]
