"""The layout is the architecture: imports flow down the pipeline, and modules stay readable.

The layers and the no-cycle rule are import-linter contracts in pyproject.toml; these tests run
them, and show the checker refuses a layering that the code breaks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "tftrt_build"
LONG = "Why this module is long:"


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_imports_flow_down_the_pipeline_without_cycles() -> None:
    result = lint_imports(REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    # The same layers upside down: every real import is then an upward one.
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["tftrt_build"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "reversed"\ntype = "layers"\n'
        'layers = ["tftrt_build.errors", "tftrt_build.config", "tftrt_build.plan", '
        '"tftrt_build.cli"]\n'
    )
    result = lint_imports(config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "tftrt_build.config" in result.stdout


def test_every_step_says_what_it_owns_and_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name in ("conf", "models"):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init.relative_to(REPO)} has no docstring"
        if init.parent.name != "cli":
            assert "May import:" in doc, f"{init.relative_to(REPO)} does not say what it may import"


def test_no_module_is_long_without_saying_why() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > 300:
            assert LONG in doc, f"{path.relative_to(REPO)} has {lines} lines and no '{LONG}'"
