"""Sweeps through Hydra's launchers: jobs in parallel write the same tftrt.lock as jobs in turn.

The Ray cases start their own clusters on 127.0.0.1 (from another folder than the project, as
an existing cluster would be) and stop them by process group: a one-node cluster, and a
two-node one in a network namespace of its own whose nodes each have their own local cache and
share a remote cache (``cache.remote``), as machines of a team would.

Four native jobs (two exported models x two targets, each with a bundle of its own) run with
hydra/launcher=joblib (n_jobs=2) in one project and one after another (the basic launcher)
in another, sharing the session's cache; the two locks must be equal byte for byte, and each
sweep ends with one summary table of all four jobs.

Why this module is long: the three launcher set-ups share one sweep helper, one serial
baseline recipe and one way to stop a Ray cluster, which read best beside their tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project

pytestmark = pytest.mark.slow

SWEEP = ["-m", "model=demo,tiny", "target=compose,compose_cpu"]
BUNDLES = ["demo-native", "demo-native-cpu", "tiny-native", "tiny-native-cpu"]


def sweep(
    root: Path,
    cache: Path,
    *launcher: str,
    env: dict[str, str] | None = None,
    jobs: tuple[list[str], list[str]] = (SWEEP, BUNDLES),
    prefix: tuple[str, ...] = (),
) -> Project:
    """Run the sweep ``jobs`` (its arguments and the bundles it must write) in a new project."""
    args, bundles = jobs
    p = make_project(root, "catalogue")
    p.cache = cache
    result = p.run(*args, *launcher, env=env, timeout=900, prefix=prefix)
    assert result.code == 0, result.err
    # One table for the whole sweep, whichever processes ran the jobs.
    assert result.out.count("tftrt-build sweep") == 1, result.out
    assert result.out.count("┃ job ") == 1, result.out
    for arg in args[1:]:
        for value in arg.split("=", 1)[1].split(","):
            assert f"{arg.split('=', 1)[0]}={value}" in result.out
    assert sorted(d.name for d in (root / "bundles").iterdir()) == bundles
    return p


def test_joblib_sweep_writes_the_lock_a_serial_sweep_writes(
    tmp_path: Path, shared_cache: Path
) -> None:
    # Parallel first: its jobs build the two models while the others wait on the key locks.
    parallel = sweep(
        tmp_path / "parallel", shared_cache, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"
    )
    serial = sweep(tmp_path / "serial", shared_cache)
    assert parallel.lock.read_bytes() == serial.lock.read_bytes()
    lock = parallel.lock.read_text()
    for bundle in BUNDLES:
        assert f"bundles/{bundle}:" in lock


# Ray on loopback only, with no token written to ~/.ray (see README "Scaling out").
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
HAVE_RAY = all(
    importlib.util.find_spec(m) is not None for m in ("ray", "hydra_plugins.hydra_ray_launcher")
)
NO_RAY = "ray is not installed: pip install 'tftrt-build[ray]' (.ci/run installs it)"
# The `ray` command of this Python, wherever pip put its script.
RAY = (sys.executable, "-m", "ray.scripts.scripts")


@pytest.fixture
def ray_cluster(tmp_path: Path, shared_cache: Path) -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1, started from another folder than the project's;
    its address. Stopped by its process group, never with `ray stop` (that stops every
    cluster of the host)."""
    if not HAVE_RAY:
        pytest.skip(NO_RAY)
    # Ray's socket paths must stay short: its temp folder is not under pytest's deep tmp_path.
    temp = Path(tempfile.mkdtemp(prefix="tftrt-ray-"))
    elsewhere = tmp_path / "cluster-cwd"
    elsewhere.mkdir()
    env = {**os.environ, **RAY_ENV, "TFTRT_CACHE_DIR": str(shared_cache)}
    start = subprocess.run(
        [*RAY, "start", "--head", "--port=0", "--num-cpus=2", f"--temp-dir={temp}",
         "--disable-usage-stats", "--include-dashboard=false"],
        env=env, cwd=elsewhere, capture_output=True, text=True, timeout=180,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert start.returncode == 0, start.stderr
        yield (temp / "ray_current_cluster").read_text().strip()
    finally:
        _stop_ray(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_ray(*temps: Path) -> None:
    """Stop the clusters that use these temp folders: TERM, then KILL (gcs_server may hang on
    TERM), by process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in _ray_groups(*temps):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + 5
        while _ray_groups(*temps) and time.monotonic() < deadline:
            time.sleep(0.5)


def _ray_groups(*temps: Path) -> set[int]:
    """Process groups of the clusters' daemons: they name their temp folder on their command
    line (``ray start`` runs them in the group of its own session)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pgid=,args="], capture_output=True, text=True).stdout
    return {
        int(line.split()[0])
        for line in out.splitlines()
        if any(str(t) in line for t in temps) and int(line.split()[0]) != os.getpgid(0)
    }


def test_ray_sweep_writes_the_lock_a_serial_sweep_writes(
    tmp_path: Path, shared_cache: Path, ray_cluster: str
) -> None:
    sweep_dir = tmp_path / "ray" / "ray-sweep"  # absolute, and inside the project
    ray = sweep(
        tmp_path / "ray",
        shared_cache,
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_cluster}",
        "++hydra.launcher.ray.init.object_store_memory=null",
        f"hydra.sweep.dir={sweep_dir}",
        env=RAY_ENV,
    )
    serial = sweep(tmp_path / "serial", shared_cache)
    assert ray.lock.read_bytes() == serial.lock.read_bytes()
    assert len(list(sweep_dir.glob("*/tftrt-outcome.json"))) == 4


# Two jobs, one model each: each node of the two-node cluster builds one model.
TWO_JOBS = (["-m", "model=demo,tiny", "target=compose"], ["demo-native", "tiny-native"])


@dataclass
class TwoNodes:
    """A Ray cluster of two nodes on one host, each with its own temp folder and local cache."""

    netns: str
    address: str
    head_cache: Path
    node2_cache: Path
    head_temp: Path
    node2_temp: Path

    @property
    def prefix(self) -> tuple[str, ...]:
        """Runs a command in the cluster's network namespace (where 127.0.0.1 is its own)."""
        return ("ip", "netns", "exec", self.netns)


def _no_netns() -> str | None:
    """Why this machine cannot make a network namespace, or None."""
    if os.geteuid() != 0:
        return "not root: a network namespace (ip netns) needs root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    return None


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[TwoNodes]:
    """A head node and a second node that joins it, both on 127.0.0.1 of a network namespace
    of their own (Ray takes a host's outside address for its nodes unless loopback is all there
    is). Each node is started with its own TFTRT_CACHE_DIR, so a job uses the cache of the node
    it runs on, and with one `tftrt_slot` resource, so two jobs that each ask for one slot run
    one per node. Everything is stopped by process group and the namespace deleted afterwards."""
    if not HAVE_RAY:
        pytest.skip(NO_RAY)
    reason = _no_netns()
    if reason:
        pytest.skip(reason)
    netns = f"tftrt-{uuid.uuid4().hex[:10]}"
    made = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    temps = [Path(tempfile.mkdtemp(prefix="tftrt-ray-")) for _ in range(2)]
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        cluster = TwoNodes(netns, "", tmp_path / "head-cache", tmp_path / "node2-cache", *temps)
        elsewhere = tmp_path / "cluster-cwd"
        elsewhere.mkdir()
        _start_node(cluster, temps[0], cluster.head_cache, elsewhere, "--head", "--port=0",
                    "--include-dashboard=false")  # fmt: skip
        cluster.address = (temps[0] / "ray_current_cluster").read_text().strip()
        _start_node(
            cluster, temps[1], cluster.node2_cache, elsewhere, f"--address={cluster.address}"
        )
        yield cluster
    finally:
        _stop_ray(*temps)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def _start_node(cluster: TwoNodes, temp: Path, cache: Path, cwd: Path, *args: str) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TFTRT_CACHE_DIR": str(cache)}
    # This variable keeps a one-node cluster on loopback but refuses a second node.
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env.pop("RAY_ADDRESS", None)
    start = subprocess.run(
        [*cluster.prefix, *RAY, "start", f"--temp-dir={temp}", "--num-cpus=1",
         '--resources={"tftrt_slot": 1}', "--object-store-memory=78643200",
         "--disable-usage-stats", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180, start_new_session=True,
    )  # fmt: skip
    assert start.returncode == 0, start.stdout + start.stderr


def _keys(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("objects/*/*")}


def test_a_ray_sweep_on_two_nodes_shares_artifacts_through_the_remote_cache(
    tmp_path: Path, shared_cache: Path, two_nodes: TwoNodes
) -> None:
    remote = (tmp_path / "remote").as_uri()
    sweep_dir = tmp_path / "ray" / "ray-sweep"  # absolute, and inside the project
    ray = sweep(
        tmp_path / "ray",
        two_nodes.head_cache,
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={two_nodes.address}",
        "++hydra.launcher.ray.init.object_store_memory=null",
        # One slot per node and per job: the two jobs run at once, one on each node.
        "+hydra.launcher.ray.remote.resources.tftrt_slot=1",
        f"hydra.sweep.dir={sweep_dir}",
        f"cache.remote={remote}",
        env={"RAY_AUTH_MODE": "disabled"},
        jobs=TWO_JOBS,
        prefix=two_nodes.prefix,
    )
    lock = ray.lock.read_bytes()
    serial = sweep(tmp_path / "serial", shared_cache, jobs=TWO_JOBS)
    assert lock == serial.lock.read_bytes()
    assert _tree(ray.root / "bundles") == _tree(serial.root / "bundles")

    # Each job used the cache of the node it ran on: one model was built on each node, and
    # nothing twice.
    head_keys, node2_keys = _keys(two_nodes.head_cache), _keys(two_nodes.node2_cache)
    artifacts = yaml.safe_load(lock)["artifacts"]
    assert sorted(artifacts) == ["demo/native", "tiny/native"]
    stages = {name: {a["source"]["key"], a["convert"]["key"]} for name, a in artifacts.items()}
    on_head = [name.split("/")[0] for name, keys in stages.items() if keys <= head_keys]
    on_node2 = [name.split("/")[0] for name, keys in stages.items() if keys <= node2_keys]
    assert len(on_head) == len(on_node2) == 1, (head_keys, node2_keys)
    assert not head_keys & node2_keys
    (here,), (there,) = on_head, on_node2
    # Ray's side of it: each node's worker logs hold its own job's output only.
    head_log, node2_log = _worker_output(two_nodes.head_temp), _worker_output(two_nodes.node2_temp)
    assert f"bundles/{here}-native (written)" in head_log
    assert f"bundles/{there}-native" not in head_log
    assert f"bundles/{there}-native (written)" in node2_log
    assert f"bundles/{here}-native" not in node2_log
    # Both nodes pushed all they built.
    assert {p.name for p in (tmp_path / "remote" / "entries").glob("*/*")} == head_keys | node2_keys

    # The driver (whose cache is the head's) has the other node's model only through the remote.
    assert ray.cache == two_nodes.head_cache
    remote_arg = f"cache.remote={remote}"
    alone = ray.run(f"model={there}", "mode=plan")
    assert alone.code == 0, alone.err
    assert "│ build " in _row(alone.out, f"{there}/native", "convert")
    planned = ray.run(f"model={there}", "mode=plan", remote_arg)
    assert planned.code == 0, planned.err
    assert "│ pull " in _row(planned.out, f"{there}/native", "convert")
    checked = ray.run(f"model={there}", "mode=check", remote_arg)
    assert checked.code == 0, checked.err
    assert f"{there}/native: only in cache.remote: a build pulls it" in checked.out
    assert _keys(two_nodes.head_cache) == head_keys, "plan or check fetched from the remote"
    # A build on the driver pulls it, runs nothing, and changes neither the lock nor the bundle.
    pulled = ray.run(f"model={there}", remote_arg)
    assert pulled.code == 0, pulled.err
    assert "pulled from cache.remote" in pulled.err
    assert "│ pulled" in pulled.out and "built" not in pulled.out, pulled.out
    assert artifacts[f"{there}/native"]["convert"]["key"] in _keys(two_nodes.head_cache)
    assert ray.lock.read_bytes() == lock
    assert _tree(ray.root / "bundles") == _tree(serial.root / "bundles")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _worker_output(temp: Path) -> str:
    """What the Ray workers of the node with this temp folder printed."""
    return "".join(p.read_text(errors="replace") for p in temp.glob("session_*/logs/worker-*.out"))


def _row(table: str, artifact: str, stage: str) -> str:
    """The line of a plan table for one artifact's stage."""
    rows = [
        line for line in table.splitlines() if f"│ {artifact} " in line and f" {stage} " in line
    ]
    assert len(rows) == 1, table
    return rows[0]
