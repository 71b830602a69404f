"""``tftrt-deploy``: start a built bundle's Compose stack and wait until it serves, or stop it."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from rich.markup import escape
from rich.table import Table

from tftrt_build.cli.app import Command, JobContext, Outcome
from tftrt_build.cli.console import RichUI, console
from tftrt_build.config.options import HydraOptions
from tftrt_build.config.resolve import resolve
from tftrt_build.config.schema import Config, DeployAction
from tftrt_build.serve.client import RestClient, grpc_address, rest_url
from tftrt_build.serve.deploy import Stack, down, up


def deploy(config: Config, options: HydraOptions, context: JobContext) -> Outcome:
    request = resolve(config, context.choices, options, Path.cwd())
    stack = Stack.read(request.bundle_dir)
    out = console()
    if config.deploy.action is DeployAction.down:
        down(stack, config.deploy)
        out.print(f"removed {escape(stack.project)}")
        return Outcome(0)
    rest = rest_url(config.target, config.server)
    client = RestClient(rest, config.server.timeout_s)
    ui = RichUI(context.verbose)
    with ui.stage(f"deploying {stack.project} from {request.bundle_dir.name}") as s:
        running = up(stack, config.deploy, client, s.log)
    table = Table(title=f"{stack.project} is up: every version AVAILABLE", title_justify="left")
    for name in ("model", "versions", "labels", "REST", "gRPC"):
        table.add_column(name)
    for model, versions in stack.versions.items():
        labels = ", ".join(f"{k}->{v}" for k, v in sorted(stack.labels[model].items()))
        table.add_row(
            model,
            ", ".join(map(str, versions)),
            labels or "-",
            f"{rest}/v1/models/{model}",
            grpc_address(config.target, config.server),
        )
    out.print(table)
    again = [o for o in HydraConfig.get().overrides.task if not o.startswith("deploy.action")]
    out.print(
        f"containers: {', '.join(escape(c.get('Name', '?')) for c in running)}; "
        f"remove with: tftrt-deploy {' '.join(again)} deploy.action=down"
    )
    return Outcome(0)


def main() -> None:
    Command(deploy, config_name="tftrt_deploy").main()
