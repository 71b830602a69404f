"""Install modes: the project's conf/ must load however tftrt-build was installed.

pip's default editable install (setuptools >= 64) maps packages with an import hook, which
Hydra's plugin scan does not see; tftrt-build registers its search-path plugin by name instead.
The test installs a copy of this repository editable, without ``editable_mode=compat``, into a
fresh virtual environment whose other packages come from this one, and runs the console script
from a project folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO

# What an editable install of the repository needs.
SOURCES = ("pyproject.toml", "README.md", "tftrt_build", "hydra_plugins", "models")


def _base_packages(dest: Path) -> Path:
    """This environment's packages, without tftrt-build itself (so only the new install counts).

    Every site-packages folder on sys.path (a venv may reach another's through a .pth file),
    linked entry by entry into one folder, leaving out tftrt-build and the hydra_plugins folder
    a non-editable install of it would bring.
    """
    dest.mkdir()
    sites = [Path(sysconfig.get_paths()["purelib"])]
    sites += [Path(p) for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    for site in sites:
        for entry in sorted(site.iterdir()) if site.is_dir() else []:
            name = entry.name
            skip = name.startswith(("tftrt_build", "__editable__", "hydra_plugins"))
            if skip or name.endswith(".pth") or (dest / name).exists():
                continue
            (dest / name).symlink_to(entry)
    return dest


@pytest.mark.slow
def test_editable_install_keeps_the_project_conf(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(src, source / name)
    venv = tmp_path / "venv"
    # With pip (and, where the Python bundles it, setuptools), as a contributor's venv has.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "zz_base_packages.pth").write_text(f"{_base_packages(tmp_path / 'base')}\n")
    install = subprocess.run(
        [
            *(python, "-m", "pip", "install", "-q"),
            *("--no-deps", "--no-build-isolation", "--no-index", "-e", str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    # An editable install of the import-hook kind, not a path entry to the source folder.
    assert list(Path(site).glob("__editable__*finder.py")), sorted(os.listdir(site))

    project = tmp_path / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    env = {**os.environ, "TFTRT_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    env.pop("TFTRT_PROJECT_CONF", None)
    exe = venv / "bin" / "tftrt-build"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    info = run("--info", "searchpath")
    assert info.returncode == 0, info.stderr
    assert f"file://{project / 'conf'}" in info.stdout, info.stdout
    plan = run("target=example", "mode=plan")
    assert plan.returncode == 0, plan.stderr
    assert "resnet50/native" in plan.stdout and "demo/native" in plan.stdout
