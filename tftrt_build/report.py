"""Tables and summaries: plain data first (rows, JSON-able), then rich rendering of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from tftrt_build.build import BuildResult
from tftrt_build.plan import Plan


@dataclass
class Row:
    """One served version in a summary: what the table shows and a sweep collects."""

    model: str
    profile: str
    version: int | None
    key: str
    status: str  # hit, built, planned, failed
    size: int | None
    seconds: float | None
    job: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_rows(plan: Plan, status: str, job: str = "") -> list[Row]:
    """One row per artifact of a plan that built nothing (plan, check)."""
    return [
        Row(
            a.artifact.model.name,
            a.artifact.profile.name,
            None,
            a.key[:12],
            status,
            None,
            None,
            job=job,
        )
        for a in plan.artifacts
    ]


def build_rows(result: BuildResult) -> list[Row]:
    by_id = {r.plan.id: r for r in result.artifacts}
    rows = []
    for model in result.plan.request.served:
        for version in model.versions:
            r = by_id[version.artifact.id]
            rows.append(
                Row(
                    model=model.name,
                    profile=version.artifact.profile.name,
                    version=version.version,
                    key=r.plan.key[:12],
                    status="built" if r.built else "hit",
                    size=r.entry.tree.size,
                    seconds=round(r.seconds, 2),
                )
            )
    return rows


def summary_table(rows: list[Row], title: str = "tftrt-build") -> Table:
    sweep = any(r.job for r in rows)
    table = Table(title=title, title_justify="left")
    if sweep:
        table.add_column("job")
    for name in ("model", "profile", "version", "key", "status"):
        table.add_column(name)
    table.add_column("size", justify="right")
    table.add_column("time", justify="right")
    colours = {"hit": "green", "built": "cyan", "failed": "red", "stale": "yellow"}
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
        convert_cached = art.stages[1].hit
        for stage in art.stages:
            if stage.hit:
                action = "[green]hit[/]"
            elif stage.name == "source" and convert_cached:
                action = "[dim]skip[/]"
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
