"""One tftrt-build job: configs -> request -> plan -> check or build, as data the CLI prints.

``run`` is what a job of any launcher does in each mode; it returns a ``JobResult`` (the
summary rows, the exit code, and the plan or build it made) and prints nothing. ``diff``
(mode=diff) plans every target it covers and compares them with a base lock (``review``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tftrt_build.build import BuildResult, run_build
from tftrt_build.build.ui import UI
from tftrt_build.config.commands import check_diff
from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.paths import under
from tftrt_build.config.request import BuildRequest, Options
from tftrt_build.config.resolve import resolve
from tftrt_build.config.schema import Config, ExecutorConf, ExecutorKind, Mode, VerifyMode
from tftrt_build.errors import CacheError, ConfigError
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.execute.task import Executor
from tftrt_build.plan import Plan, make_plan
from tftrt_build.plan.reasons import stale
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import read_lock
from tftrt_build.store.remote import Remote, RemoteError

if TYPE_CHECKING:
    from tftrt_build.review import Planned, Review, Selection

log = logging.getLogger(__name__)
# Composes the config of another target from the command line's overrides plus these ones.
Compose = Callable[[list[str]], tuple[Config, dict[str, str], Options]]
REMOTE_ONLY = "only in cache.remote: a build pulls it"


@dataclass
class Row:
    """One served version in a summary: what the table shows and a sweep collects."""

    model: str
    profile: str
    version: int | None
    key: str
    status: str  # hit, pulled, built, planned, remote, stale, current, failed
    size: int | None
    seconds: float | None
    job: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobResult:
    mode: Mode
    rows: list[Row]
    code: int
    plan: Plan
    # mode=check: what in the lock disagrees with the configs and inputs.
    stale: list[tuple[str, str]] = field(default_factory=list)
    build: BuildResult | None = None


def make_executor(conf: ExecutorConf, cache_dir: Path, log_dir: Path | None = None) -> Executor:
    """The executor a config names; stage logs go to log_dir (None: not kept)."""
    if conf.kind is ExecutorKind.docker:
        from tftrt_build.execute.docker import DockerExecutor  # the Docker SDK only when used

        return DockerExecutor(conf, cache_dir, log_dir)
    return LocalExecutor(
        conf.python, cache_dir, conf.timeout_s, log_dir, conf.gpu_pool, conf.worker
    )


def full_verify(request: BuildRequest) -> bool:
    """Whether every digest is computed from the bytes: cache.verify=full, or auto in check."""
    return request.verify is VerifyMode.full or (
        request.verify is VerifyMode.auto and request.mode is Mode.check
    )


def open_store(request: BuildRequest, readonly: bool, ui: UI | None = None) -> Store:
    full = full_verify(request)
    stat_cache = StatCache(request.cache_dir / "statcache.json", trust=not full)
    notify = ui.note if ui is not None else None
    remote = open_remote(request, notify)
    return Store(
        request.cache_dir, stat_cache, full, readonly, remote, request.remote_required, notify
    )


def open_remote(request: BuildRequest, notify: Callable[[str], None] | None) -> Remote | None:
    """cache.remote, reached once before any work; with remote_required=false a failure warns."""
    if request.remote is None:
        return None
    try:
        return Remote.open(request.remote)
    except RemoteError as exc:
        if request.remote_required:
            raise
        text = f"{exc.message}; building with the local cache only (cache.remote_required=false)"
        log.warning("%s", text)
        if notify is not None:
            notify(text)
        return None


def plan_request(
    request: BuildRequest,
    ui: UI | None = None,
    building: bool = False,
    log_dir: Path | None = None,
) -> tuple[Plan, Store, Executor]:
    """The plan of a request, with the store and executor it was made with."""
    store = open_store(request, readonly=not building, ui=ui)
    executor = make_executor(request.executor, request.cache_dir, log_dir if building else None)
    lock = read_lock(request.lock_path, request.cache_dir)
    if building:
        store.clean_tmp([request.bundle_dir.parent, request.lock_path.parent])
    if ui is None:
        return make_plan(request, store, executor, lock, building=building), store, executor
    with ui.stage("hashing inputs and checking the cache") as s:
        plan = make_plan(request, store, executor, lock, building=building, progress=s.advance)
    return plan, store, executor


def plan_rows(plan: Plan, status: str, job: str = "") -> list[Row]:
    """One row per artifact of a plan that built nothing (plan, check).

    An artifact only cache.remote holds is "remote" in a plan and noted in a check.
    """
    rows = []
    for a in plan.artifacts:
        remote = a.convert.lookup.remote
        rows.append(
            Row(
                a.artifact.model.name,
                a.artifact.profile.name,
                None,
                a.key[:12],
                "remote" if remote and status == "planned" else status,
                None,
                None,
                note=REMOTE_ONLY if remote else "",
            )
        )
    return rows


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
                    status="built" if r.built else "pulled" if r.entry.pulled else "hit",
                    size=r.entry.tree.size,
                    seconds=round(r.seconds, 2),
                )
            )
    return rows


def run(
    config: Config,
    choices: dict[str, str],
    options: Options,
    project: Path,
    ui: UI,
    job: str = "",
    log_dir: Path | None = None,
) -> JobResult:
    """One job; a build keeps each stage's full output in log_dir (the run's stages/)."""
    request = resolve(config, choices, options, project)
    building = request.mode is Mode.build
    log.info(
        "mode=%s target=%s artifacts=%s",
        request.mode.value,
        request.target_option.name,
        ", ".join(a.id for a in request.artifacts),
    )
    plan, store, executor = plan_request(request, ui, building=building, log_dir=log_dir)
    if not building:
        store.stat_cache.save()
        if request.mode is Mode.plan:
            result = JobResult(request.mode, plan_rows(plan, "planned"), 0, plan)
        else:
            items = stale(plan, store.stat_cache)
            status = "stale" if items else "current"
            result = JobResult(
                request.mode, plan_rows(plan, status), 1 if items else 0, plan, items
            )
    else:
        try:
            built = run_build(plan, store, executor, ui)
        except BaseException:
            # Keep what was hashed, but never let that hide why the build failed.
            with contextlib.suppress(CacheError):
                store.stat_cache.save()
            raise
        store.stat_cache.save()
        result = JobResult(request.mode, build_rows(built), 0, plan, build=built)
    for row in result.rows:
        row.job = job
    return result


def diff(
    config: Config,
    choices: dict[str, str],
    options: Options,
    project: Path,
    compose: Compose,
    chosen: set[str],
) -> Review:
    """mode=diff: plan the targets a diff covers and compare them with the base lock.

    ``chosen`` holds the groups among target, model and profile that the command line set
    (``target=``, ``model.x=``, ...): then only that target is compared.
    """
    # mode=diff only: a build never imports the review step.
    from tftrt_build.review import Selection, assemble, from_locks, load_base

    conf = config.diff
    check_diff(conf, chosen, options.names("target"), project)
    lock_path = under(project, config.lock)
    if lock_path.is_dir():
        raise ConfigError(
            f"'{config.lock}' is a folder; a lock is a file",
            key="lock",
            file=COMMAND_LINE if options.on_command_line("lock") else None,
            hint="set lock=<a file path>",
        )
    base = load_base(project, lock_path, conf)
    head_lock = read_lock(lock_path)
    if conf.targets:
        selections = [Selection(t) for t in conf.targets]
    elif chosen or not (head_lock.bundles or base.lock.bundles):
        selections = [Selection(choices["target"], choices["model"], choices["profile"])]
    else:
        selections = from_locks(head_lock, base.lock)
    own = (config, choices, options)
    planned = [_plan_selection(s, own, compose, project) for s in selections]
    log.info("mode=diff against %s: %d targets", base.description, len(planned))
    return assemble(base, planned, head_lock, set(conf.blocking))


def _plan_selection(
    selection: Selection,
    own: tuple[Config, dict[str, str], Options],
    compose: Compose,
    project: Path,
) -> Planned:
    """Plan a selection from the working tree's configs: the command line's own, or composed."""
    from tftrt_build.review import Planned

    config, choices, options = own
    if selection.target not in options.names("target"):
        return Planned(selection, None, f"target option '{selection.target}' no longer exists")
    wanted = {"target": selection.target}
    missing = ""
    for group, name in (("model", selection.model), ("profile", selection.profile)):
        if name is not None and name not in options.names(group):
            missing = f"{group} option '{name}' no longer exists"
        elif name is not None:
            wanted[group] = name
    if missing:
        wanted = {"target": selection.target}
    if any(choices.get(group) != name for group, name in wanted.items()):
        config, choices, options = compose([f"{g}={n}" for g, n in wanted.items()])
    if missing and not config.target.models:
        # The target serves the model and profile its bundle was built with, and one is gone.
        return Planned(selection, None, missing)
    return Planned(selection, _plan_only(resolve(config, choices, options, project)))


def _plan_only(request: BuildRequest) -> Plan:
    plan, store, _ = plan_request(request)
    store.stat_cache.save()
    return plan
