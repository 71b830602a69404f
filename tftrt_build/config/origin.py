"""Which config file set a key of a composed config.

Hydra keeps no record of where a value came from, but it records what it composed: the option
chosen in each group (``hydra.runtime.choices``), the primary config and the search path
(``hydra.runtime.config_sources``). A refusal that names a config file (``runfolders``) reads
the files those name, as plain YAML under their packages, to say which one it was.
"""

from __future__ import annotations

import contextlib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from tftrt_build.config.paths import display_path


def setting_file(cfg: DictConfig, key: str) -> str | None:
    """The config file, among those a composed config came from, that writes ``key`` (or a
    mapping above or below it); the last such file in the defaults list wins, as in Hydra.

    Each option's file is the first the search path has, read under its package (``# @package``
    header, else its group). None when no file the search path names sets the key (a package's
    own file, or a plain entry of a defaults list).
    """
    runtime = cfg.hydra.runtime
    sources = [(str(s.schema), str(s.path)) for s in runtime.config_sources or []]
    chosen = [
        (group, f"{group.split('@', 1)[0]}/{name}")
        for group, name in (runtime.choices or {}).items()
        if isinstance(name, str)
    ]
    # The primary config's own values come last (its _self_), as tftrt-build's own do.
    chosen.append(("", str(cfg.hydra.job.config_name)))
    found = None
    for group, config_path in chosen:
        file = _first_file(sources, f"{config_path}.yaml")
        if file is None:
            continue
        try:
            text = file.read_text(encoding="utf-8")
            body = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if _writes(body, _package(text, group), key):
            found = display_path(file)
    return found


def _first_file(sources: list[tuple[str, str]], relative: str) -> Path | None:
    """The file Hydra takes for a config: the first source that has it; None when that source
    is not a folder of files (a package's own configs are not a user's)."""
    for scheme, root in sources:
        if scheme == "file":
            candidate = Path(root) / relative
            if candidate.is_file():
                return candidate
        elif scheme == "pkg":
            with contextlib.suppress(ImportError, TypeError, ValueError):
                if resources.files(root).joinpath(relative).is_file():
                    return None
    return None


def _package(text: str, group: str) -> str:
    """Where a config file's values go: its ``# @package`` header, else its group's path."""
    name, _, package = group.partition("@")
    for line in text.splitlines():
        header = re.match(r"#\s*@package\s+(\S+)", line)
        if header:
            package = header.group(1)
            break
        if line.strip() and not line.lstrip().startswith("#"):
            break
    if not package:
        package = name.replace("/", ".")
    package = package.replace("_group_", name.replace("/", "."))
    return "" if package == "_global_" else package.removeprefix("_global_.")


def _writes(body: Any, package: str, key: str) -> bool:
    """Whether a file's values, put under ``package``, set ``key`` or a mapping above or below
    it."""
    path = key
    if package:
        if key == package or package.startswith(key + "."):
            return body is not None  # the file is the mapping, or a part of the key's
        if not key.startswith(package + "."):
            return False
        path = key[len(package) + 1 :]
    node = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def related(key: str, name: str) -> bool:
    """One key is the other, or a mapping holding it."""
    return key == name or key.startswith(name + ".") or name.startswith(key + ".")
