"""Measure tftrt-build's speed goals against their anchors, in one run, as ratios.

    python benchmarks/bench.py [--samples N] [--quick] [--workdir DIR] [--no-cold] [--hashing]
                               [--only-cold]

Every figure is the CPU time (user + system, the whole process tree) of one fresh process,
median of N samples. The warm measurements and their anchors are interleaved (A/B/C...,
round-robin, in a rotated order each round), so a load that comes and goes on the machine
falls on all of them alike; each goal is a ratio of two medians of the same run.

Anchors:
- a minimal Hydra app over four config groups that prints its config
  (benchmarks/anchors/hydra_app), the floor of any Hydra command line;
- ``dvc status`` of a 12-stage pipeline, when a ``dvc`` is found (``--dvc``, ``$TFTRT_BENCH_DVC``
  or PATH), else skipped with the reason printed;
- a bare ``tf.saved_model.save`` of the demo model in a Python that has TensorFlow imported and
  the model built, for the cold build's marginal cost per model.

Measured (in a temporary folder with its own caches; --workdir keeps and reuses it):
- the default project (built-in options): a no-op build, mode=check, mode=plan, and a sweep
  ``-m mode=plan profile=native,fp32,fp16,int8`` against one plan;
- mode=check on projects of 1, 8, 32 and 128 artifacts: 1, 8, 8 and 8 models (local
  SavedModels, each a copy of the demo export with a file of its own, so each has its own
  keys) x 1, 1, 4 and 16 native profiles (which share a model's convert key, as native
  profiles do: the SavedModel is served as it is);
- cold builds of 1 and 2 demo-sized export models (fresh cache each sample): the difference is
  the per-model marginal cost; with stages forked from one TensorFlow worker
  (``executor.worker=fork``) and, in the same rounds, with a fresh process per stage
  (``executor.worker=process``, what every build did before the worker).

Writes benchmarks/results.json and benchmarks/scaling.png (check time against artifacts).

Why this module is long: every goal's projects, anchors and ratio are set up here, beside the
one sampling loop they share, so one run measures all of them under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
EXE = str(Path(PYTHON).parent / "tftrt-build")
ANCHOR_APP = HERE / "anchors" / "hydra_app" / "app.py"
SIZES = {1: (1, 1), 8: (8, 1), 32: (8, 4), 128: (8, 16)}  # artifacts: (models, profiles)
SWEEP = ("native", "fp32", "fp16", "int8")
# Where measured processes keep their bytecode (set by main to a folder of the work folder).
PYCACHE = Path(tempfile.gettempdir()) / "tftrt-bench-pycache"


@dataclass
class Probe:
    """One measured command: what runs, where, and its CPU-time samples."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def measured_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured command: bytecode cached, as an installed package has it.

    A shell with PYTHONDONTWRITEBYTECODE=1 (this project's development machines set it) makes
    every run compile each module it imports again, which for tftrt-build's ~90 modules is a
    third of a second: not what a user pays. Bytecode goes to a prefix folder in the bench's
    work folder, so no source tree gets a __pycache__.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return {**env, **(extra or {})}


def cpu_run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of a command and every process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=cwd, env=measured_env(env), capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} (in {cwd}) failed:\n{proc.stdout}\n{proc.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def instructions(probe: Probe, valgrind: str) -> int:
    """Instructions one run of a probe executes (callgrind's Ir, every process it starts).

    CPU time here spreads by a fifth between samples of one command, and a virtual machine's
    speed drifts within a run; an instruction count is the same for the same code and input
    whatever else the machine does. It leaves out what the kernel does for the process (file
    reads, page faults), so it is a second view of the ratios, not the goals' own measure.
    Python's string hashing is fixed (PYTHONHASHSEED=0) so dict and set orders repeat.
    """
    argv = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        "--trace-children=yes",
        *probe.argv,
    ]
    env = measured_env({**probe.env, "PYTHONHASHSEED": "0"})
    proc = subprocess.run(argv, cwd=probe.cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} (in {probe.cwd}) failed:\n{proc.stderr[-2000:]}")
    counts = [int(n) for n in re.findall(r"Collected : (\d+)", proc.stderr)]
    if not counts:
        raise SystemExit(f"callgrind reported no count for {probe.name}:\n{proc.stderr[-2000:]}")
    return sum(counts)


def count_all(probes: list[Probe], valgrind: str) -> dict[str, int]:
    """Each probe's instruction count, one run each, as many at a time as there are cores."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = pool.map(lambda p: (p.name, instructions(p, valgrind)), probes)
        return dict(counted)


def interleaved(probes: list[Probe], samples: int) -> None:
    """Sample every probe once per round, each round in a rotated order."""
    for p in probes:  # one unmeasured run each: page cache, stat cache, probe records
        cpu_run(p.argv, p.cwd, p.env)
    for r in range(samples):
        k = r % len(probes)
        for p in probes[k:] + probes[:k]:
            p.samples.append(cpu_run(p.argv, p.cwd, p.env))
        print(f"  round {r + 1}/{samples}", file=sys.stderr)


# -- projects ------------------------------------------------------------------------------


def default_project(root: Path) -> Path:
    """A project of built-in options only, built once (the demo export)."""
    project = root / "default"
    if not (project / "tftrt.lock").exists():
        project.mkdir(parents=True, exist_ok=True)
        cpu_run([EXE], project, {"TFTRT_CACHE_DIR": str(project / ".cache")})
    cpu_run([EXE], project, {"TFTRT_CACHE_DIR": str(project / ".cache")})  # stat cache settles
    return project


def matrix_project(root: Path, artifacts: int, saved_model: Path, cache: Path) -> Path:
    """models x profiles artifacts, one target serving them all, built into a shared cache."""
    models, profiles = SIZES[artifacts]
    project = root / f"check-{artifacts}"
    if (project / "tftrt.lock").exists():
        return project
    conf = project / "conf"
    for group in ("model", "profile", "target"):
        (conf / group).mkdir(parents=True, exist_ok=True)
    for i in range(models):
        copy = project / "saved" / f"m{i}"
        shutil.copytree(saved_model, copy, dirs_exist_ok=True)
        # A file of its own, so each model is a different input with keys of its own.
        (copy / "assets" / "copy.txt").write_text(f"m{i}\n")
        (conf / "model" / f"m{i}.yaml").write_text(
            f"name: m{i}\nsource: {{kind: local, path: saved/m{i}}}\n"
            "inputs:\n  - {name: image, dtype: float32, shape: [-1, 64, 64, 3]}\n"
            "outputs: [probabilities]\n"
        )
    for j in range(profiles):
        (conf / "profile" / f"p{j}.yaml").write_text(
            f"name: p{j}\nconverter: native\nmax_batch_size: 8\n"
        )
    served = "".join(
        f"  - model: m{i}\n    versions:\n"
        + "".join(f"      - {{version: {j + 1}, profile: p{j}}}\n" for j in range(profiles))
        for i in range(models)
    )
    (conf / "target" / "matrix.yaml").write_text(
        f"name: matrix\nbundle_dir: bundles/matrix\nwarmup: {{enabled: false}}\nmodels:\n{served}"
    )
    env = {"TFTRT_CACHE_DIR": str(cache)}
    cpu_run([EXE, "target=matrix"], project, env)
    cpu_run([EXE, "target=matrix"], project, env)  # stat cache settles
    return project


def dvc_project(root: Path, dvc: str) -> Path:
    """A 12-stage dvc pipeline (each stage copies its input), reproduced once."""
    project = root / "dvc"
    if (project / "dvc.lock").exists():
        return project
    project.mkdir(parents=True, exist_ok=True)
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=project, check=True)
    subprocess.run([dvc, "config", "core.analytics", "false"], cwd=project, check=True)
    (project / "f0.txt").write_text("data\n" * 1000)
    stages = "".join(
        f"  s{i}:\n    cmd: cp f{i}.txt f{i + 1}.txt\n"
        f"    deps: [f{i}.txt]\n    outs: [f{i + 1}.txt]\n"
        for i in range(12)
    )
    (project / "dvc.yaml").write_text(f"stages:\n{stages}")
    subprocess.run([dvc, "repro", "-q"], cwd=project, check=True, env=_dvc_env())
    return project


DVC_ENV = {"DVC_NO_ANALYTICS": "1"}


def _dvc_env() -> dict[str, str]:
    return {**os.environ, **DVC_ENV}


def find_dvc(given: str | None) -> tuple[str | None, str]:
    """The dvc executable to use, or None and why not."""
    candidate = given or os.environ.get("TFTRT_BENCH_DVC") or shutil.which("dvc")
    if not candidate:
        return None, "no dvc found (pass --dvc, set TFTRT_BENCH_DVC, or put dvc on PATH)"
    try:
        version = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{candidate} does not run: {exc}"
    return candidate, version


# -- cold builds -----------------------------------------------------------------------------

COLD_MODELS = {
    "demo": "image_size: 64, classes: 10",
    "demo_b": "image_size: 64, classes: 12",
}


def cold_project(root: Path, models: int) -> Path:
    project = root / f"cold-{models}"
    (project / "conf" / "model").mkdir(parents=True, exist_ok=True)
    (project / "conf" / "target").mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "models", project / "models", dirs_exist_ok=True)
    names = list(COLD_MODELS)[:models]
    for name in names:
        (project / "conf" / "model" / f"{name}.yaml").write_text(
            f"name: {name}\nsource: {{kind: export, script: models/demo.py, "
            f"args: {{{COLD_MODELS[name]}}}, seed: 0}}\n"
            "inputs:\n  - {name: image, dtype: float32, shape: [-1, 64, 64, 3]}\n"
            "outputs: [probabilities]\n"
        )
    served = "".join(
        f"  - model: {n}\n    versions:\n      - {{version: 1, profile: native}}\n" for n in names
    )
    (project / "conf" / "target" / "cold.yaml").write_text(
        f"name: cold\nbundle_dir: bundles/cold\nmodels:\n{served}"
    )
    return project


def cold_build(project: Path, worker: str) -> float:
    """A build from nothing: fresh cache, no lock, no bundle."""
    for leftover in (project / ".cache", project / "bundles"):
        shutil.rmtree(leftover, ignore_errors=True)
    (project / "tftrt.lock").unlink(missing_ok=True)
    argv = [EXE, "target=cold", f"executor.worker={worker}"]
    return cpu_run(argv, project, {"TFTRT_CACHE_DIR": str(project / ".cache")})


def cold_builds(root: Path, samples: int) -> tuple[dict[str, object], dict[str, float]]:
    """Cold builds of 1 and 2 models, both worker modes, and the bare save, interleaved."""
    one, two = cold_project(root, 1), cold_project(root, 2)
    runs: dict[str, list[float]] = {}
    bare = []
    for r in range(samples):
        for worker in ("fork", "process") if r % 2 == 0 else ("process", "fork"):
            runs.setdefault(f"{worker}_one_model_s", []).append(cold_build(one, worker))
            runs.setdefault(f"{worker}_two_models_s", []).append(cold_build(two, worker))
        bare.append(bare_save())
        print(f"  cold round {r + 1}/{samples}", file=sys.stderr)
    cold: dict[str, object] = {**runs, "bare_save_s": bare}
    ratios = {}
    for worker in ("fork", "process"):
        marginal = statistics.median(runs[f"{worker}_two_models_s"]) - statistics.median(
            runs[f"{worker}_one_model_s"]
        )
        cold[f"{worker}_marginal_per_model_s"] = marginal
        label = "worker=fork" if worker == "fork" else "worker=process (before)"
        ratios[f"cold, {label}: per-model marginal / bare tf.saved_model.save (goal <= 1.3)"] = (
            marginal / statistics.median(bare)
        )
    return cold, ratios


BARE_SAVE = """
import sys, tempfile, time
sys.path.insert(0, sys.argv[1])
import tensorflow as tf
import demo
model = demo.build(image_size=64, classes=12)
model(tf.zeros([1, 64, 64, 3]))  # traced once, as an export does before saving
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.process_time()
    tf.saved_model.save(model, tmp)
    print(time.process_time() - t0)
"""


def bare_save() -> float:
    """CPU seconds of tf.saved_model.save of the demo model, TensorFlow already imported."""
    out = subprocess.run(
        [PYTHON, "-c", BARE_SAVE, str(REPO / "models")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    ).stdout
    return float(out.strip().splitlines()[-1])


# -- hashing (README's hashing figures) -----------------------------------------------------


def hashing(root: Path) -> dict[str, float]:
    """First read and unchanged re-check of a ResNet50 SavedModel, via tftrt_build's digest."""
    from tftrt_build.store.digest import StatCache, hash_tree, tree_size

    project = root / "resnet"
    project.mkdir(exist_ok=True)
    cpu_run([EXE, "model=resnet50"], project, {"TFTRT_CACHE_DIR": str(project / ".cache")})
    model = next((project / "bundles").glob("resnet50-*/models/resnet50/1"))
    copy = root / "resnet-copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(model, copy)  # fresh inodes: nothing cached about these files
    size = tree_size(copy)
    cache = StatCache(root / "bench-stat.json")
    t0 = time.perf_counter()
    hash_tree(copy, cache)
    first = time.perf_counter() - t0
    past = time.time() - 60  # backdated, so the stat cache trusts them (fresh files are "racy")
    for p in copy.rglob("*"):
        os.utime(p, (past, past))
    hash_tree(copy, cache)
    cache.save()
    recheck = []
    for _ in range(20):
        fresh = StatCache(root / "bench-stat.json")  # as a new process would load it
        t0 = time.perf_counter()
        hash_tree(copy, fresh)
        recheck.append(time.perf_counter() - t0)
    return {
        "bytes": size,
        "first_read_gb_s": size / first / 1e9,
        "recheck_ms": statistics.median(recheck) * 1e3,
    }


# -- report ----------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "arch": platform.machine(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def plot(points: dict[int, float], anchor: float, path: Path, baseline: dict[int, float]) -> str:
    """Check time against artifacts as a PNG (matplotlib), else an SVG written here."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _svg(points, path.with_suffix(".svg"))
    xs = sorted(points)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot(xs, [points[x] for x in xs], marker="o", label="tftrt-build mode=check")
    if baseline:
        ax.plot(xs, [baseline[x] for x in xs], marker="x", color="tab:orange", label="baseline")
    ax.axhline(anchor, color="grey", linestyle="--", label="minimal Hydra app")
    goal = "goal: 1.3x the 1-artifact check"
    ax.axhline(1.3 * points[1], color="tab:red", linestyle=":", label=goal)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("artifacts (models x profiles) in the target")
    ax.set_ylabel("CPU seconds (median)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path.name


def _svg(points: dict[int, float], path: Path) -> str:
    xs = sorted(points)
    top = max(points.values()) * 1.2
    w, h, pad = 480, 280, 40

    def at(i: int, y: float) -> tuple[float, float]:
        return pad + i * (w - 2 * pad) / max(len(xs) - 1, 1), h - pad - y / top * (h - 2 * pad)

    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(i, points[n]) for i, n in enumerate(xs)))
    labels = "".join(
        f'<text x="{at(i, 0)[0]:.1f}" y="{h - pad + 16}" font-size="11">{n}</text>'
        for i, n in enumerate(xs)
    )
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
        f'<polyline fill="none" stroke="black" points="{line}"/>{labels}'
        f'<text x="{pad}" y="16" font-size="12">mode=check CPU s vs artifacts (max '
        f"{top / 1.2:.2f} s)</text></svg>\n"
    )
    return path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=7, help="samples per warm measurement")
    parser.add_argument("--cold-samples", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 warm, 1 cold sample")
    parser.add_argument("--workdir", type=Path, help="keep projects here, reuse them next run")
    parser.add_argument("--dvc", help="the dvc executable for the dvc status anchor")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold builds")
    parser.add_argument("--only-cold", action="store_true", help="only the cold builds")
    parser.add_argument("--hashing", action="store_true", help="also the ResNet50 hashing figures")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each warm command's instructions once (valgrind's callgrind)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--baseline",
        help="another tftrt-build executable (e.g. main's) measured in the same rounds",
    )
    args = parser.parse_args()
    if args.quick:
        args.samples, args.cold_samples = 3, 1

    with tempfile.TemporaryDirectory(prefix="tftrt-bench-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        global PYCACHE
        PYCACHE = root / "pycache"
        results = run_all(root, args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["ratios"], indent=2))
    counted = results.get("counted")
    if isinstance(counted, dict) and "ratios" in counted:
        print("by instructions:")
        print(json.dumps(counted["ratios"], indent=2))
    print(f"written: {args.out}")


def goal_ratios(m: dict[str, float], prefix: str, dvc: bool) -> dict[str, float]:
    """Each warm goal as a ratio of two medians of this run (``prefix``: the baseline's)."""

    def at(name: str) -> float:
        return m[prefix + name] if name != "hydra_app" and name != "dvc_status" else m[name]

    ratios = {
        "noop_build / hydra_app (goal <= 1.15)": at("noop_build") / at("hydra_app"),
        "check / hydra_app (goal <= 1.15)": at("check") / at("hydra_app"),
        "check_128 / check_1 (goal <= 1.3)": at("check_128") / at("check_1"),
        "sweep of 4 plans / one plan": at("sweep_plan") / at("plan"),
        "sweep: each job beyond the first / one plan (goal <= 1.2)": (
            (at("sweep_plan") - at("plan")) / (len(SWEEP) - 1) / at("plan")
        ),
    }
    if dvc:
        ratios["noop_build / dvc_status (goal <= 0.8)"] = at("noop_build") / at("dvc_status")
        ratios["check / dvc_status (goal <= 0.8)"] = at("check") / at("dvc_status")
    return {prefix + k: v for k, v in ratios.items()}


def run_all(root: Path, args: argparse.Namespace) -> dict[str, object]:
    if args.only_cold:
        print(f"cold builds only, {args.cold_samples} samples each", file=sys.stderr)
        cold, ratios = cold_builds(root, args.cold_samples)
        return {
            "machine": machine(),
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "cold": cold,
        }
    print("setting up projects (the first build of each is not measured)", file=sys.stderr)
    default = default_project(root)
    denv = {"TFTRT_CACHE_DIR": str(default / ".cache")}
    saved = next((default / "bundles").glob("demo-native/models/demo/1"))
    shared = root / "matrix-cache"
    matrices = {n: matrix_project(root, n, saved, shared) for n in SIZES}
    menv = {"TFTRT_CACHE_DIR": str(shared)}
    anchors = root / "anchor"
    anchors.mkdir(exist_ok=True)

    probes = [Probe("hydra_app", [PYTHON, str(ANCHOR_APP)], anchors)]
    exes = {"": EXE, "baseline:": args.baseline} if args.baseline else {"": EXE}
    for prefix, exe in exes.items():
        probes += [
            Probe(f"{prefix}noop_build", [exe], default, denv),
            Probe(f"{prefix}check", [exe, "mode=check"], default, denv),
            Probe(f"{prefix}plan", [exe, "mode=plan"], default, denv),
            Probe(
                f"{prefix}sweep_plan",
                [exe, "-m", "mode=plan", f"profile={','.join(SWEEP)}"],
                default,
                denv,
            ),
        ]
        probes += [
            Probe(f"{prefix}check_{n}", [exe, "target=matrix", "mode=check"], matrices[n], menv)
            for n in SIZES
        ]
    dvc, dvc_note = find_dvc(args.dvc)
    if dvc is not None:
        probes.append(
            # Only the variable, not a whole environment: measured_env() must still drop
            # PYTHONDONTWRITEBYTECODE, or dvc compiles every module on every run.
            Probe("dvc_status", [dvc, "status", "-q"], dvc_project(root, dvc), DVC_ENV)
        )
    else:
        print(f"skipping the dvc status anchor: {dvc_note}", file=sys.stderr)
    print(f"measuring {len(probes)} commands, {args.samples} rounds", file=sys.stderr)
    interleaved(probes, args.samples)
    m = {p.name: p.median for p in probes}
    ratios: dict[str, float] = {}
    for prefix in exes:
        ratios.update(goal_ratios(m, prefix, dvc is not None))
    counted: dict[str, object] = {"skipped": "no --instructions"}
    if args.instructions:
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            counted = {"skipped": "no valgrind on PATH"}
        else:
            print(f"counting instructions of {len(probes)} commands", file=sys.stderr)
            irs = count_all(probes, valgrind)
            ir_floats = {k: float(v) for k, v in irs.items()}
            by_ir: dict[str, float] = {}
            for prefix in exes:
                by_ir.update(goal_ratios(ir_floats, prefix, dvc is not None))
            counted = {"instructions": irs, "ratios": {k: round(v, 3) for k, v in by_ir.items()}}

    cold: dict[str, object] = {"skipped": "--no-cold"}
    if not args.no_cold:
        print(f"cold builds, {args.cold_samples} samples each", file=sys.stderr)
        cold, cold_ratios = cold_builds(root, args.cold_samples)
        ratios.update(cold_ratios)

    figure = plot(
        {n: m[f"check_{n}"] for n in SIZES},
        m["hydra_app"],
        HERE / "scaling.png",
        {n: m[f"baseline:check_{n}"] for n in SIZES} if args.baseline else {},
    )
    results: dict[str, object] = {
        "machine": machine(),
        "samples": args.samples,
        "medians_cpu_s": {k: round(v, 3) for k, v in m.items()},
        "samples_cpu_s": {p.name: [round(s, 3) for s in p.samples] for p in probes},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "baseline": args.baseline,
        "dvc": dvc_note,
        "cold": cold,
        "counted": counted,
        "figure": figure,
    }
    if args.hashing:
        results["hashing"] = hashing(root)
    return results


if __name__ == "__main__":
    main()
