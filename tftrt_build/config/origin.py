"""Which config file set a key of a composed config.

Hydra keeps no record of where a value came from, but it records what it composed: the option
chosen in each group (``hydra.runtime.choices``), the primary config and the search path
(``hydra.runtime.config_sources``). A refusal that names a config file (``runfolders``) reads
the files those name, as plain YAML under their packages, to say which one it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from tftrt_build.config.paths import display_path


def setting_file(cfg: DictConfig, key: str) -> str | None:
    """The config files, among those a composed config came from, that write ``key`` (or a
    mapping above or below it), as a message names them ("a.yaml and b.yaml").

    Each option's file is the first the search path has, read under its package (``# @package``
    header, else its group). Hydra does not record the order it merged them in
    (``hydra.runtime.choices`` is in another), so when several write the key, all are named.
    None when no file the search path names sets it (a package's own file, or a plain entry
    of a defaults list).
    """
    runtime = cfg.hydra.runtime
    sources = [(str(s.schema), str(s.path)) for s in runtime.config_sources or []]
    chosen = [
        (group, f"{group.split('@', 1)[0]}/{name}")
        for group, name in (runtime.choices or {}).items()
        if isinstance(name, str)
    ]
    chosen.append(("", str(cfg.hydra.job.config_name)))  # the primary config
    found = []
    for group, config_path in chosen:
        file = _first_file(sources, config_path)
        if file is None:
            continue
        try:
            text = file.read_text(encoding="utf-8")
            body = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if _writes(body, _package(text, group), key):
            found.append(display_path(file))
    return " and ".join(sorted(found)) or None


def _first_file(sources: list[tuple[str, str]], config_path: str) -> Path | None:
    """The file Hydra takes for a config: the first source that has it, asked through Hydra's
    own source classes; None when that source is not a folder of files (a package's configs or
    a structured one are not a user's)."""
    from hydra._internal.sources_registry import SourcesRegistry
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers Hydra's source classes (done already inside a run)
    for scheme, root in sources:
        try:
            source = SourcesRegistry.instance().resolve(scheme)("origin", f"{scheme}://{root}")
            found = source.is_config(config_path)
        except (ValueError, ImportError, OSError):
            continue
        if found:
            return Path(root) / f"{config_path}.yaml" if scheme == "file" else None
    return None


def _package(text: str, group: str) -> str:
    """Where a config file's values go: the package the defaults list gives (``group@pkg``),
    else the file's ``# @package`` header, else its group's path."""
    name, _, package = group.partition("@")
    for line in text.splitlines() if not package else []:
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
