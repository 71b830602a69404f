"""Which config file set a key of a composed config.

Hydra keeps no record of where a value came from, but it records what it composed: the option
chosen in each group (``hydra.runtime.choices``), the primary config and the search path
(``hydra.runtime.config_sources``). A refusal that names a config file (``runfolders``) loads
the files those name through Hydra's own config sources and looks for the key under each one's
package, to say which file it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tftrt_build.config.paths import display_path


def setting_file(cfg: DictConfig, key: str) -> str | None:
    """The config files, among those a composed config came from, that write ``key`` (or a
    mapping above or below it), as a message names them ("a.yaml and b.yaml").

    Each option's file is the first the search path has, loaded by Hydra's own config source
    (its header rules, OmegaConf's loader) and read under its package. Hydra does not record
    the order it merged them in (``hydra.runtime.choices`` is in another), so when several
    write the key, all are named. None when no file the search path names sets it (a package's
    own file, a plain entry of a defaults list), or when the composed config does not say.
    Only a message depends on the answer: nothing here may fail the refusal it is for.
    """
    try:
        return _setting_file(cfg, key)
    except Exception:  # the refusal stands; only its file is unknown
        return None


def _setting_file(cfg: DictConfig, key: str) -> str | None:
    runtime = cfg.hydra.runtime
    sources = OmegaConf.to_container(runtime.config_sources, resolve=False) or []
    choices = OmegaConf.to_container(runtime.choices, resolve=False) or {}
    assert isinstance(sources, list) and isinstance(choices, dict)
    chosen = [
        (str(group), f"{str(group).split('@', 1)[0]}/{name.removesuffix('.yaml')}")
        for group, name in choices.items()
        if isinstance(name, str) and name != "???"
    ]
    chosen.append(("", str(cfg.hydra.job.config_name)))  # the primary config
    found = []
    for group, config_path in chosen:
        loaded = _first_file(sources, config_path)
        if loaded is None:
            continue
        file, result = loaded
        body = OmegaConf.to_container(result.config, resolve=False)
        if _writes(body, _package(result.header.get("package"), group), key):
            found.append(display_path(file))
    return " and ".join(sorted(found)) or None


def _first_file(sources: list[Any], config_path: str) -> tuple[Path, Any] | None:
    """The file Hydra takes for a config, and what Hydra loads from it: the first source that
    has it, asked through Hydra's own source classes; None when that source is not a folder of
    files (a package's configs or a structured one are not a user's)."""
    from hydra._internal.sources_registry import SourcesRegistry
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers Hydra's source classes (done already inside a run)
    for entry in sources:
        scheme, root = str(entry.get("schema")), str(entry.get("path"))
        try:
            source = SourcesRegistry.instance().resolve(scheme)("origin", f"{scheme}://{root}")
            found = source.is_config(config_path)
        except (ValueError, ImportError, OSError):
            continue
        if not found:
            continue
        if scheme != "file":
            return None
        return Path(root) / f"{config_path}.yaml", source.load_config(config_path)
    return None


def _package(header: str | None, group: str) -> str:
    """Where a config file's values go, as Hydra puts them: the package the defaults list
    gives (``group@pkg``), else the file's ``# @package`` header, else its group's path; a
    ``_global_`` in it means from the root."""
    name, _, package = group.partition("@")
    package = package or header or name.replace("/", ".")
    package = package.replace("_group_", name.replace("/", "."))
    if "_global_" in package:
        package = package[package.rfind("_global_") + len("_global_") :]
    return package.strip(".")


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
