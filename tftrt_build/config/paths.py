"""Where the paths a config names point: the project first, then tftrt-build's own ``models/``.

One lookup serves both the cache key (the file is hashed) and the stage (the file is handed
over), so the two can never disagree on which file a config meant.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tftrt_build.errors import ConfigError

# The built-in options, shipped inside the package.
BUILTIN_CONF = Path(__file__).resolve().parents[1] / "conf"


def under(project: Path, path: str) -> Path:
    """A path from a config: absolute as given (with ~), else relative to the project."""
    p = Path(path).expanduser()
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
    """A config file as messages show it: relative to the project, or within tftrt_build."""
    cwd = Path.cwd()
    if path.is_relative_to(cwd):
        return path.relative_to(cwd).as_posix()
    if path.is_relative_to(BUILTIN_CONF):
        return "tftrt_build/conf/" + path.relative_to(BUILTIN_CONF).as_posix()
    return str(path)


def relative(path: Path, project: Path) -> str:
    """A path as the lock and messages name it: relative to the project where it can be."""
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)
