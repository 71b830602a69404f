"""What one tftrt-build job does in each mode, from a checked config to printed results."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from tftrt_build.build import run_build
from tftrt_build.cache import Store
from tftrt_build.console import RichUI, console
from tftrt_build.digest import StatCache
from tftrt_build.executors import Executor, LocalExecutor
from tftrt_build.lock import read_lock
from tftrt_build.plan import make_plan, relative, stale
from tftrt_build.report import (
    Row,
    build_rows,
    details_table,
    plan_rows,
    plan_table,
    stale_table,
    summary_table,
)
from tftrt_build.resolve import BuildRequest, Options, resolve
from tftrt_build.schema import Config, ExecutorConf, ExecutorKind, Mode, VerifyMode


def make_executor(conf: ExecutorConf, cache_dir: Path) -> Executor:
    if conf.kind is ExecutorKind.docker:
        from tftrt_build.docker_executor import DockerExecutor

        return DockerExecutor(conf, cache_dir)
    return LocalExecutor(conf.python, cache_dir)


def open_store(request: BuildRequest, readonly: bool) -> Store:
    stat_cache = StatCache(request.cache_dir / "statcache.json")
    return Store(request.cache_dir, stat_cache, request.verify is VerifyMode.full, readonly)


def execute(
    config: Config, choices: dict[str, str], options: Options, project: Path, job: str = ""
) -> tuple[list[Row], int]:
    request = resolve(config, choices, options, project)
    out = console()
    sweep = bool(job)
    readonly = request.mode is not Mode.build
    store = open_store(request, readonly)
    executor = make_executor(request.executor, request.cache_dir)
    lock = read_lock(request.lock_path)
    if request.mode is Mode.build:
        store.clean_tmp()
    ui = RichUI(request.verbose)
    with ui.stage("hashing inputs and checking the cache") as s:
        plan = make_plan(request, store, executor, lock, building=not readonly, progress=s.advance)
    if request.mode is Mode.plan:
        store.stat_cache.save()
        out.print(plan_table(plan))
        out.print(details_table(plan))
        return plan_rows(plan, "planned", job), 0
    if request.mode is Mode.check:
        store.stat_cache.save()
        items = stale(plan)
        lock_name = relative(request.lock_path, project)
        if items:
            out.print(stale_table(items))
            out.print(
                f"{escape(lock_name)} is out of date: run tftrt-build (mode=build) and commit it"
            )
            return plan_rows(plan, "stale", job), 1
        out.print(
            f"{escape(lock_name)} is up to date ({len(plan.artifacts)} artifacts, "
            f"bundle {escape(plan.bundle_id)})"
        )
        return plan_rows(plan, "current", job), 0
    try:
        result = run_build(plan, store, executor, ui)
    finally:
        store.stat_cache.save()
    rows = build_rows(result)
    for row in rows:
        row.job = job
    bundle = relative(result.bundle_dir, project)
    if not sweep:
        out.print(summary_table(rows))
    state = "written" if result.bundle_written else "unchanged"
    out.print(
        f"bundle: {escape(bundle)} ({state})  lock: {escape(relative(request.lock_path, project))}"
    )
    return rows, 0
