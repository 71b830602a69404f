"""Measure tftrt-build's speed targets and print a Markdown table for the README.

    python benchmarks/bench.py [--runs N]

1. A cached re-run of the default build (wall time of the console script; TensorFlow must not
   be imported, checked with -X importtime).
2. mode=check on a project with 3 models x 4 profiles (one target serving all 12).
3. Hashing a ResNet50 SavedModel (about 100 MB): first read, and an unchanged re-check through
   the stat cache.
Everything runs in a temporary folder with its own cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).parent / "tftrt-build")


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [EXE, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"tftrt-build {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed, proc.stderr


def timed(cwd: Path, runs: int, *args: str) -> list[float]:
    return [run(cwd, *args)[0] for _ in range(runs)]


def matrix_project(root: Path) -> None:
    """3 models x 4 profiles, all served by one target."""
    conf = root / "conf"
    for group in ("model", "profile", "target"):
        (conf / group).mkdir(parents=True, exist_ok=True)
    for i, size in enumerate((32, 48, 64)):
        (conf / "model" / f"m{i}.yaml").write_text(
            f"name: m{i}\nsource:\n  kind: export\n  script: models/demo.py\n"
            f"  args: {{image_size: {size}, width: 8}}\n"
            f"inputs:\n  - {{name: image, dtype: float32, shape: [-1, {size}, {size}, 3]}}\n"
            "outputs: [probabilities]\n"
        )
    for j, batch in enumerate((1, 4, 8, 16)):
        (conf / "profile" / f"p{j}.yaml").write_text(
            f"name: p{j}\nconverter: native\nmax_batch_size: {batch}\n"
        )
    models = "".join(
        f"  - model: m{i}\n    versions:\n"
        + "".join(f"      - {{version: {j + 1}, profile: p{j}}}\n" for j in range(4))
        for i in range(3)
    )
    (conf / "target" / "matrix.yaml").write_text(
        f"name: matrix\nbundle_dir: bundles/matrix\nmodels:\n{models}"
    )


def hashing(root: Path) -> tuple[float, float, float, int]:
    """First-read and unchanged re-check of a ResNet50 SavedModel, via tftrt_build.store.digest."""
    from tftrt_build.store.digest import StatCache, hash_tree, tree_size

    run(root, "model=resnet50")
    model = next((root / "bundles").glob("resnet50-*/models/resnet50/1"))
    copy = root / "resnet-copy"
    shutil.copytree(model, copy)  # fresh inodes: nothing cached about these files
    size = tree_size(copy)
    dropped = _drop_page_cache()
    cache = StatCache(root / "bench-stat.json")
    t0 = time.perf_counter()
    hash_tree(copy, cache)
    first = time.perf_counter() - t0
    # Backdate the files so the stat cache trusts them (freshly written files are "racy").
    past = time.time() - 60
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
    return size / first / 1e9, statistics.median(recheck) * 1e3, float(dropped), size


def _drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tftrt-bench-") as tmp:
        root = Path(tmp)
        default = root / "default"
        default.mkdir()
        run(default)  # the cold build, not measured
        run(default)  # lets the stat cache trust the new files
        cached = timed(default, args.runs)
        _, imports = run(default, env={"PYTHONPROFILEIMPORTTIME": "1"})
        tf_imported = any(
            line.split("|")[-1].strip() == "tensorflow"
            for line in imports.splitlines()
            if "import time:" in line
        )

        matrix = root / "matrix"
        matrix_project(matrix)
        run(matrix, "target=matrix")
        check = timed(matrix, args.runs, "target=matrix", "mode=check")

        speed, recheck_ms, dropped, size = hashing(root)

    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}; median of {args.runs} runs.\n"
    )
    print("| measurement | target | result |")
    print("| --- | --- | --- |")
    print(
        f"| cached re-run of the default build (wall) | < 1 s | "
        f"{statistics.median(cached):.2f} s (min {min(cached):.2f}); TensorFlow imported: "
        f"{'yes' if tf_imported else 'no'} |"
    )
    print(
        f"| `mode=check`, 3 models x 4 profiles (wall) | < 1.5 s | "
        f"{statistics.median(check):.2f} s (min {min(check):.2f}) |"
    )
    cold = "page cache dropped" if dropped else "page cache warm (could not drop it)"
    print(
        f"| hashing a {size / 1e6:.0f} MB SavedModel, first read | >= 1 GB/s | "
        f"{speed:.2f} GB/s ({cold}) |"
    )
    print(f"| unchanged re-check of it (stat cache) | < 10 ms | {recheck_ms:.2f} ms |")


if __name__ == "__main__":
    main()
