"""``tftrt-build``: build, plan, check or diff a target, and print what happened."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from tftrt_build import job
from tftrt_build.cli.app import Command, JobContext, Outcome
from tftrt_build.cli.console import RichUI, console
from tftrt_build.cli.tables import details_table, plan_table, stale_table, summary_table
from tftrt_build.config.options import HydraOptions
from tftrt_build.config.paths import relative
from tftrt_build.config.schema import Config, Mode


def build(config: Config, options: HydraOptions, context: JobContext) -> Outcome:
    if config.mode is Mode.diff:
        from tftrt_build.cli.review import diff  # the review step, imported for mode=diff only

        return diff(config, options, context)
    project = Path.cwd()
    # Each stage's full output goes beside the run's log: stages/<n>-<op>.log.
    stages = context.log_file.parent / "stages" if context.log_file else None
    result = job.run(
        config, context.choices, options, project, RichUI(context.verbose), context.job, stages
    )
    out = console()
    plan = result.plan
    lock_name = escape(relative(plan.request.lock_path, project))
    if result.mode is Mode.plan:
        out.print(plan_table(plan))
        out.print(details_table(plan))
    elif result.mode is Mode.check:
        if result.stale:
            out.print(stale_table(result.stale))
            out.print(f"{lock_name} is out of date: run tftrt-build (mode=build) and commit it")
        else:
            out.print(
                f"{lock_name} is up to date ({len(plan.artifacts)} artifacts, "
                f"bundle {escape(plan.bundle_id)})"
            )
        for art in plan.artifacts:
            if art.convert.lookup.remote:
                out.print(f"{escape(art.id)}: {job.REMOTE_ONLY}", highlight=False)
    elif result.build is not None:
        if not context.job:
            out.print(summary_table(result.rows))
        state = "written" if result.build.bundle_written else "unchanged"
        bundle = escape(relative(result.build.bundle_dir, project))
        request = plan.request
        if request.records:
            out.print(f"bundle: {bundle} ({state})  lock: {lock_name}")
        else:
            overrides = escape(" ".join(request.experiment))
            out.print(
                f"bundle: {bundle} ({state})  lock: {lock_name} not updated: an experiment "
                f"({overrides}); put it in conf/, or add record=true to record it"
            )
    return Outcome(result.code, "build", [row.to_dict() for row in result.rows])


def main() -> None:
    Command(build).main()
