"""Tables the commands print: rich renderings of plans, builds, checks and benchmarks."""

from __future__ import annotations

from typing import Any

from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from tftrt_build.job import Row
from tftrt_build.plan import Plan


def summary_table(rows: list[Row], title: str = "tftrt-build") -> Table:
    sweep = any(r.job for r in rows)
    table = Table(title=title, title_justify="left")
    if sweep:
        table.add_column("job")
    for name in ("model", "profile", "version", "key", "status"):
        table.add_column(name)
    table.add_column("size", justify="right")
    table.add_column("time", justify="right")
    colours = {
        "hit": "green",
        "pulled": "green",
        "built": "cyan",
        "failed": "red",
        "stale": "yellow",
        "remote": "blue",
    }
    for r in rows:
        status = f"[{colours.get(r.status, 'white')}]{r.status}[/]"
        cells = [
            escape(r.model),
            escape(r.profile),
            "" if r.version is None else str(r.version),
            r.key,
            status,
            "" if r.size is None else decimal(r.size),
            "" if r.seconds is None else f"{r.seconds:.1f}s",
        ]
        table.add_row(*([escape(r.job)] if sweep else []), *cells)
    return table


def plan_table(plan: Plan) -> Table:
    table = Table(
        title=f"plan for target '{plan.request.target_option.name}'", title_justify="left"
    )
    for name in ("artifact", "stage", "key", "action", "why"):
        table.add_column(name)
    for art in plan.artifacts:
        for stage in art.stages:
            if stage.hit:
                action = "[green]hit[/]"
            elif stage is art.source and (art.convert.hit or art.convert.lookup.remote):
                action = "[dim]skip[/]"
            elif stage.lookup.remote:
                action = "[blue]pull[/]"
            else:
                action = "[cyan]build[/]"
            table.add_row(escape(art.id), stage.name, stage.key[:12], action, escape(stage.reason))
    bundle = plan.bundle
    table.add_row(
        escape(plan.bundle_id),
        "bundle",
        bundle.key[:12],
        "[green]keep[/]" if bundle.reason == "unchanged" else "[cyan]write[/]",
        escape(bundle.reason),
    )
    return table


def details_table(plan: Plan) -> Table:
    table = Table(title="conversion", title_justify="left")
    table.add_column("artifact")
    table.add_column("parameter")
    table.add_column("value")
    for art in plan.artifacts:
        for name, value in art.details.items():
            table.add_row(escape(art.id), escape(name), escape(str(value)))
    return table


def stale_table(items: list[tuple[str, str]]) -> Table:
    table = Table(title="tftrt.lock is out of date", title_justify="left")
    table.add_column("item")
    table.add_column("why")
    for item, reason in items:
        table.add_row(escape(item), escape(reason))
    return table


def bench_table(cells: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in (
        "model",
        "version",
        "profile",
        "protocol",
        "batch",
        "conc",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "req/s",
        "speed-up",
        "note",
    ):
        table.add_column(
            name,
            justify="right"
            if name in ("batch", "conc", "p50 ms", "p90 ms", "p99 ms", "req/s")
            else "left",
        )
    for c in cells:
        note = "" if c["valid"] else f"[red]INVALID[/]: {c['errors']} failed"
        if c["valid"] and c["client_bound"]:
            note = f"[yellow]client-bound[/] (ceiling {c['client_ceiling_rps']:.0f}/s)"
        speed = f"{c['speedup']:.2f}x" if c.get("speedup") else "-"
        table.add_row(
            escape(c["model"]),
            c["version"],
            escape(c["profile"]),
            c["protocol"],
            str(c["batch"]),
            str(c["concurrency"]),
            f"{c['p50_ms']:.2f}",
            f"{c['p90_ms']:.2f}",
            f"{c['p99_ms']:.2f}",
            f"{c['throughput_rps']:.0f}",
            speed,
            note,
        )
    return table
