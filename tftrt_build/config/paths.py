"""Where the paths a config names point: the project first, then tftrt-build's own ``models/``.

One lookup serves both the cache key (the file is hashed) and the stage (the file is handed
over), so the two can never disagree on which file a config meant.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from tftrt_build.errors import ConfigError

# The built-in options, shipped inside the package.
BUILTIN_CONF = Path(__file__).resolve().parents[1] / "conf"


def under(project: Path, path: str) -> Path:
    """A path from a config: absolute as given (with ~), else relative to the project."""
    try:
        p = Path(path).expanduser()
    except RuntimeError:  # ~user of no such user: a folder named so, as the OS would take it
        p = Path(path)
    return p if p.is_absolute() else project / p


def builtin_models() -> Path:
    """tftrt-build's own models/ folder, shipped as the package tftrt_build.models."""
    spec = importlib.util.find_spec("tftrt_build.models")
    if spec is None or not spec.submodule_search_locations:
        # A source checkout without the package mapping (compat editable install).
        return Path(__file__).resolve().parents[2] / "models"
    return Path(next(iter(spec.submodule_search_locations)))


def find_file(rel: str, project: Path, key: str, file: str | None) -> Path:
    """A file named in a config: in the project first, then among tftrt-build's own models/."""
    path = Path(rel).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [project / path]
        if path.parts[0] == "models":
            candidates.append(builtin_models().joinpath(*path.parts[1:]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"file '{rel}' not found in {project}", key=key, file=file)


def display_path(path: Path) -> str:
    """A config file as messages show it: within tftrt_build, or relative to the project.

    A built-in file is named the same wherever the package is installed, even from a virtual
    environment inside the project (where it would otherwise show as `.venv/lib/...`).
    """
    if path.is_relative_to(BUILTIN_CONF):
        return "tftrt_build/conf/" + path.relative_to(BUILTIN_CONF).as_posix()
    cwd = Path.cwd()
    if path.is_relative_to(cwd):
        return path.relative_to(cwd).as_posix()
    return str(path)


def lock_key(path: Path, project: Path) -> str:
    """A folder as the lock's keys name it: relative to the project, never absolute or '..'.

    A folder outside the project (allowed with allow_outside_project) is keyed by its name and
    a digest of where it is, so the lock still holds no path of this machine.
    """
    normal = Path(os.path.normpath(path))
    if normal.is_relative_to(project):
        return normal.relative_to(project).as_posix()
    where = hashlib.sha256(str(normal).encode()).hexdigest()[:12]
    return f"outside-project/{normal.name}-{where}"


def relative(path: Path, project: Path) -> str:
    """A path as the lock and messages name it: relative to the project where it can be."""
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)
