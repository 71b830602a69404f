"""``tftrt-verify``: check that a running server serves what the bundle holds, and print it."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from tftrt_build.cli.app import Command, JobContext, Outcome
from tftrt_build.cli.console import RichUI, console
from tftrt_build.config.options import HydraOptions
from tftrt_build.config.resolve import resolve
from tftrt_build.config.schema import Config
from tftrt_build.errors import StageError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.job import plan_request
from tftrt_build.serve.client import GrpcClient, RestClient, grpc_address, rest_url
from tftrt_build.serve.identity import open_bundle
from tftrt_build.serve.verify import verify as verify_server


def verify(config: Config, options: HydraOptions, context: JobContext) -> Outcome:
    request = resolve(config, context.choices, options, Path.cwd())
    plan, store, _ = plan_request(request)
    # Refuses a selection whose bundle was not built, before anything is asked of the server.
    bundle = open_bundle(plan)
    rest = RestClient(rest_url(config.target, config.server), config.server.timeout_s)
    grpc = GrpcClient(grpc_address(config.target, config.server), config.server.timeout_s)
    # The reference runs here, on the CPU, whatever executor built the artifacts.
    local = LocalExecutor(cache_dir=request.cache_dir)
    ui = RichUI(context.verbose)
    with ui.stage(f"verifying {rest.url}") as s:
        report = verify_server(plan, bundle, store, local, rest, grpc, s.log)
    table = Table(title=f"verify {rest.url}", title_justify="left")
    for name in ("model", "version", "check", "result", "detail"):
        table.add_column(name)
    for c in report.checks:
        table.add_row(
            escape(c.model),
            escape(c.version),
            c.what,
            "[green]ok[/]" if c.ok else "[red]FAILED[/]",
            escape(c.detail),
        )
    out = console()
    out.print(table)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        first = failed[0]
        raise StageError(
            f"{len(failed)} of {len(report.checks)} checks failed; first: "
            f"{first.model} {first.version} {first.what}: {first.detail}"
        )
    out.print(f"all {len(report.checks)} checks passed")
    return Outcome(0)


def main() -> None:
    Command(verify, config_name="tftrt_verify").main()
