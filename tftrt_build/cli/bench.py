"""``tftrt-bench``: measure a running server's versions, print and save the results."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from tftrt_build.cli.app import Command, JobContext, Outcome
from tftrt_build.cli.console import RichUI, console
from tftrt_build.cli.tables import bench_table
from tftrt_build.config.options import HydraOptions
from tftrt_build.config.resolve import resolve
from tftrt_build.config.schema import Config
from tftrt_build.job import plan_request
from tftrt_build.serve import benchmark
from tftrt_build.serve.client import grpc_address, rest_url


def bench(config: Config, options: HydraOptions, context: JobContext) -> Outcome:
    request = resolve(config, context.choices, options, Path.cwd())
    plan, _, _ = plan_request(request)
    rest = rest_url(config.target, config.server)
    cells = benchmark.run(
        plan,
        config.bench,
        config.server,
        rest,
        grpc_address(config.target, config.server),
        RichUI(context.verbose),
    )
    folder = request.project / config.bench.output_dir / request.bundle_dir.name
    benchmark.write_results(cells, folder)
    out = console()
    out.print(bench_table([c.summary() for c in cells], f"tftrt-bench {rest}"))
    files = ", ".join(benchmark.RESULT_FILES)
    out.print(f"results: {escape(str(folder))}/ ({files})")
    benchmark.check_valid(cells)
    return Outcome(0, "bench", [c.summary() for c in cells])


def main() -> None:
    Command(bench, config_name="tftrt_bench").main()
