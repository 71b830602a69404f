"""Run folders: each run's log under ``<cache>/runs/``, pruned to the newest few."""

from __future__ import annotations

import shutil
from pathlib import Path

# Sweeps keep their jobs' folders under this one.
MULTIRUN = "multirun"


def prune_runs(runs: Path, keep: int, current: Path) -> list[Path]:
    """Remove all but the newest ``keep`` run folders (and sweeps); never ``current``.

    Folder names are timestamps, so name order is age order. Returns what was removed.
    """
    folders = [p for p in runs.glob("*") if p.is_dir() and p.name != MULTIRUN]
    folders += [p for p in (runs / MULTIRUN).glob("*") if p.is_dir()]
    folders.sort(key=lambda p: p.name)
    current = current.resolve()
    removed = []
    for folder in folders[: max(len(folders) - keep, 0)]:
        if current.is_relative_to(folder.resolve()):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
