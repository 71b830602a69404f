"""Wall time of one 4-job sweep run serially, with joblib and with Ray, and the lock each writes.

    python benchmarks/sweep_scaling.py [--skip-ray]

The sweep: the test catalogue's two exported models (demo, tiny) x two serving targets
(compose, compose_cpu), native profile: two exports, four bundles, each job's warm-up and
identity stages. Each launcher runs in a fresh copy of the project with an empty cache of
its own, one after the other, so each does the whole work. Ray starts a local instance in
the driver (address=null) on 127.0.0.1 and stops it at the end; its start-up is counted.
Prints a Markdown table with the ratios to the serial run, and whether every lock is the
serial one byte for byte.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "tftrt-build")
SWEEP = ["-m", "model=demo,tiny", "target=compose,compose_cpu"]
LAUNCHERS = {
    "serial (basic launcher)": [],
    "joblib, n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "ray, local, num_cpus=2": [
        "hydra/launcher=ray",
        "++hydra.launcher.ray.init.num_cpus=2",
        "++hydra.launcher.ray.init.include_dashboard=false",
    ],
}
# Ray on loopback only, and no token written to ~/.ray.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def run_sweep(work: Path, name: str, launcher: list[str]) -> tuple[float, bytes]:
    project = work / name.split()[0].strip(",")
    shutil.copytree(REPO / "tests" / "fixtures" / "catalogue", project)
    sweep_dir = project / "sweep"
    env = {**os.environ, **RAY_ENV, "TFTRT_CACHE_DIR": str(project / ".tftrt-cache")}
    if "hydra/launcher=ray" in launcher:
        # Ray's session files in this run's folder (short: its socket paths must be).
        launcher = [*launcher, f"++hydra.launcher.ray.init._temp_dir={work}/r"]
    started = time.perf_counter()
    proc = subprocess.run(
        [EXE, *SWEEP, *launcher, f"hydra.sweep.dir={sweep_dir}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return seconds, (project / "tftrt.lock").read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ray", action="store_true", help="when ray is not installed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tftrt-sweep-bench-") as tmp:
        results = {}
        for name, launcher in LAUNCHERS.items():
            if args.skip_ray and name.startswith("ray"):
                continue
            results[name] = run_sweep(Path(tmp), name, launcher)
            print(f"{name}: {results[name][0]:.1f} s", file=sys.stderr)
    serial_s, serial_lock = results["serial (basic launcher)"]
    print(f"4-job sweep, {platform.machine()}, {os.cpu_count()} cores, cold caches\n")
    print("| launcher | wall time | vs serial | lock = serial lock |")
    print("| --- | ---: | ---: | --- |")
    for name, (seconds, lock) in results.items():
        same = "yes" if lock == serial_lock else "**no**"
        print(f"| {name} | {seconds:.1f} s | {serial_s / seconds:.2f}x | {same} |")


if __name__ == "__main__":
    main()
