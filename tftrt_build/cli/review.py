"""``tftrt-build mode=diff``: compare with a base, print or write the review, exit 1 on a block.

The job (``job.diff``) plans and compares; here the other targets' configs are composed with
Hydra's compose API (the same search path and overrides as the command line), and the review
is printed, or written to ``diff.output`` in one atomic write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from rich.markup import escape

from tftrt_build import job
from tftrt_build.cli.app import JobContext, Outcome, to_config
from tftrt_build.cli.console import console
from tftrt_build.config.explain import explain
from tftrt_build.config.options import PRIMARY, HydraOptions
from tftrt_build.config.paths import relative, under
from tftrt_build.config.request import Options
from tftrt_build.config.schema import Config
from tftrt_build.review.render import render, summary
from tftrt_build.store.fs import atomic_write_text

# Groups that choose what a diff compares when the command line sets them (or a key in them).
CHOOSERS = ("target", "model", "profile")


def diff(config: Config, options: HydraOptions, context: JobContext) -> Outcome:
    project = Path.cwd()
    output = under(project, config.diff.output) if config.diff.output else None
    chosen = {
        group
        for override in context.overrides
        if (group := override.split("=", 1)[0].lstrip("+~").split(".", 1)[0]) in CHOOSERS
    }
    searchpath = [
        o for o in HydraConfig.get().overrides.hydra if o.split("=", 1)[0] == "hydra.searchpath"
    ]
    compose_target = composer([*context.overrides, *searchpath])
    review = job.diff(config, context.choices, options, project, compose_target, chosen)
    document = render(review, config.diff.format)
    if output is not None:
        path = output
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, document)
        out = console()
        for w in review.warnings:
            flag = "[red]blocking[/red] " if w.blocking else ""
            out.print(
                f"{flag}[yellow]{w.kind.value}[/yellow]: {escape(w.bundle)}: {escape(w.message)}",
                highlight=False,
                soft_wrap=True,
            )
        out.print(
            f"{escape(summary(review))}; written to {escape(relative(path, project))}",
            highlight=False,
        )
    else:
        sys.stdout.write(document)
        sys.stdout.flush()
    items = [{"bundle": t.bundle, "status": t.status} for t in review.targets]
    return Outcome(review.code, "diff", items)


def composer(overrides: list[str]) -> job.Compose:
    """Compose another target's config as the command line's own was: ``overrides`` + more."""

    def make(extra: list[str]) -> tuple[Config, dict[str, str], Options]:
        options = HydraOptions()
        try:
            cfg = compose(PRIMARY, [*overrides, *extra], return_hydra_config=True)
        except Exception as exc:
            error = explain(exc, {}, options)
            if error is None:
                raise  # not bad input: a bug, reported as an internal error
            raise error from exc
        choices = dict(cfg.hydra.runtime.choices)
        paths = list(cfg.hydra.searchpath)
        with open_dict(cfg):
            del cfg["hydra"]
        options = HydraOptions(cfg, paths)
        return to_config(cfg, choices, options), choices, options

    return make
