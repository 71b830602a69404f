"""The end of a sweep (``-m``): one table for every job, whatever launcher ran them.

Each job leaves its outcome in its own run folder (``OUTCOME_FILE``), which works the same with
launchers that run jobs in other processes or on other hosts; this callback, run by Hydra in
the process that started the sweep, gathers them, prints one table and ends the process with
the worst exit code of the jobs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.markup import escape

from tftrt_build.cli.app import OUTCOME_FILE
from tftrt_build.cli.console import console
from tftrt_build.cli.tables import bench_table, summary_table
from tftrt_build.job import Row


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Here, not at the top: Hydra makes this callback in every run, a single one too.
        from tftrt_build.serve.bench import Cell, speedups

        sweep_dir = Path(config.hydra.sweep.dir)
        outcomes = [
            json.loads(path.read_text())
            for path in sorted(
                sweep_dir.glob(f"*/{OUTCOME_FILE}"),
                key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            )
        ]
        out = console()
        rows: list[Row] = []
        cells: list[Cell] = []
        for outcome in outcomes:
            if outcome["kind"] == "build":
                rows.extend(Row(**r) for r in outcome["items"])
            elif outcome["kind"] == "bench":
                cells.extend(Cell.from_summary(c) for c in outcome["items"])
            elif outcome["kind"] == "failed":
                for item in outcome["items"]:
                    choices = item["choices"]
                    rows.append(
                        Row(
                            choices.get("model", "?"),
                            choices.get("profile", "?"),
                            None,
                            "",
                            "failed",
                            None,
                            None,
                            job=item["job"],
                            note=item["error"],
                        )
                    )
        if rows:
            out.print(summary_table(rows, title=f"tftrt-build sweep ({sweep_dir})"))
            for row in rows:
                if row.note and row.status == "failed":
                    out.print(f"[red]{escape(row.job)}:[/red] {escape(row.note)}", highlight=False)
        if cells:
            # Speed-ups against the baseline cells of the whole sweep, not of each job.
            for cell in cells:
                cell.speedup = None
            speedups(cells)
            out.print(bench_table([c.summary() for c in cells], "tftrt-bench sweep"))
        raise SystemExit(max((int(o["code"]) for o in outcomes), default=0))
