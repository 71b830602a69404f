"""The layout is the architecture: imports flow down the pipeline, and modules stay readable.

The layers and the no-cycle rule are import-linter contracts in pyproject.toml; these tests run
them, and show the checker refuses a layering that the code breaks.
"""

from __future__ import annotations

import ast
import re
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


def may_import(doc: str) -> set[str] | None:
    """The steps a package's docstring allows it to import, or None for "anything".

    The steps are named in double backticks; parentheses remark on them or name third-party
    packages, e.g. "May import: ``store`` (digests), ``config``, ``errors`` (and PyYAML)."
    """
    text = doc.split("May import", 1)[1].split("\n\n", 1)[0]
    if text.lstrip().startswith("anything"):
        return None
    ticked = re.sub(r"\([^)]*\)", "", text).split("``")[1::2]
    return {name.removeprefix("tftrt_build.") for name in ticked}


def imported_steps(package: Path) -> dict[str, set[str]]:
    """Every tftrt_build module each file of a package imports, outside the package itself."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = (
                    [node.module]
                    if node.module != "tftrt_build"
                    else [f"tftrt_build.{alias.name}" for alias in node.names]
                )
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("tftrt_build.") and not name.startswith(
                    f"tftrt_build.{package.name}"
                ):
                    found.setdefault(name.removeprefix("tftrt_build."), set()).add(
                        str(path.relative_to(package.parent))
                    )
    return found


def test_every_step_imports_only_what_its_docstring_allows() -> None:
    wrong = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name in ("conf", "models"):
            continue
        allowed = may_import(ast.get_docstring(ast.parse(init.read_text())) or "")
        if allowed is None:
            continue
        for name, where in sorted(imported_steps(init.parent).items()):
            if not any(name == step or name.startswith(step + ".") for step in allowed):
                wrong.append(f"{init.parent.name} -> {name} ({', '.join(sorted(where))})")
    assert wrong == [], "imports a package's docstring does not allow:\n" + "\n".join(wrong)


def test_the_docstring_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    assert may_import("May import: ``tftrt_build.errors`` (and ``yaml``).") == {"errors"}
    assert may_import("May import: ``store`` (digests), ``config``.") == {"store", "config"}
    assert may_import("May import anything in tftrt_build; nothing imports it.") is None
    step = tmp_path / "store"
    step.mkdir()
    (step / "lock.py").write_text(
        "import json\nfrom tftrt_build.config.paths import under\n"
        "from tftrt_build import errors\nfrom tftrt_build.store import fs\n"
    )
    assert imported_steps(step) == {"config.paths": {"store/lock.py"}, "errors": {"store/lock.py"}}
