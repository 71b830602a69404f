"""The options a target lists by name, loaded from the search path Hydra composed from.

A target names its models and profiles (``target.models[i].model``, ``.versions[j].profile``).
Each is loaded once per process from the same config sources as the command line's own config:
Hydra's search path with ``hydra.searchpath`` additions and the project's ``conf/`` included.
An option file is merged onto its schema inside a copy of the composed config, so its
interpolations resolve as they would on the command line; an option with a defaults list of its
own is composed by Hydra.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tftrt_build.config.explain import explain
from tftrt_build.config.paths import display_path
from tftrt_build.config.schema import Config, ModelConf, ProfileConf

PRIMARY = "tftrt_build"
BUILTIN = "pkg://tftrt_build.conf"
# The schema each listed group's options are checked against.
_SCHEMAS: dict[str, type] = {"model": ModelConf, "profile": ProfileConf}


class HydraOptions:
    """Loads options through the running Hydra app (or the compose API in tests)."""

    def __init__(self, base: DictConfig | None = None, searchpath: Sequence[str] = ()) -> None:
        # The composed config (without its hydra node) that listed options sit in.
        self._base = base if base is not None else OmegaConf.structured(Config)
        self._searchpath = list(searchpath)
        self._repo: Any = None
        self._loaded: dict[tuple[str, str], Any] = {}

    @property
    def repository(self) -> Any:
        """Hydra's config repository over the search path of this run."""
        if self._repo is None:
            from hydra._internal.config_repository import (
                CachingConfigRepository,
                ConfigRepository,
            )
            from hydra._internal.utils import create_config_search_path
            from hydra.core.global_hydra import GlobalHydra

            hydra = GlobalHydra.instance()
            if hydra.is_initialized():
                path = copy.deepcopy(hydra.config_loader().get_search_path())
            else:
                # Composing failed and Hydra is gone: the search path the app would have had.
                path = create_config_search_path(BUILTIN)
            # As Hydra does for hydra.searchpath: after every other source, before the schema.
            schema = path.get_path().pop(-1)
            for entry in self._searchpath:
                path.append(provider="hydra.searchpath", path=entry)
            path.append(schema.provider, schema.path)
            self._repo = CachingConfigRepository(ConfigRepository(path))
        return self._repo

    def names(self, group: str) -> list[str]:
        return sorted(self.repository.get_group_options(group))

    def file(self, group: str, name: str) -> str | None:
        """The file an option comes from, as messages show it; None for a schema default."""
        config_path = f"{group}/{name}"
        for source in self.repository.get_sources():
            if not source.is_config(config_path):
                continue
            if source.scheme() == "file":
                return display_path(Path(source.path) / f"{config_path}.yaml")
            if source.scheme() == "pkg":
                found = resources.files(source.path).joinpath(f"{config_path}.yaml")
                return display_path(Path(str(found)))
            return None
        return None

    def _load(self, group: str, name: str) -> Any:
        if (group, name) in self._loaded:
            return self._loaded[(group, name)]
        try:
            loaded = self.repository.load_config(f"{group}/{name}")
            if loaded is None:
                raise ValueError(f"no {group} option '{name}'")
            if any(d.get_config_path() != f"{group}/_self_" for d in loaded.defaults_list or []):
                node = self._composed(group, name)
            else:
                # Merged under its group's key, so an error names the full key (model.inptus).
                typed = OmegaConf.create({group: OmegaConf.structured(_SCHEMAS[group])})
                merged = OmegaConf.merge(typed, {group: loaded.config})
                assert isinstance(merged, DictConfig)
                node = merged[group]
            full = copy.deepcopy(self._base)
            assert isinstance(full, DictConfig)
            full[group] = node
            obj = OmegaConf.to_object(full[group])
        except Exception as exc:
            raise explain(exc, {group: name}, self) from exc
        self._loaded[(group, name)] = obj
        return obj

    def _composed(self, group: str, name: str) -> Any:
        from hydra import compose

        return compose(config_name=PRIMARY, overrides=[f"{group}={name}"])[group]

    def model(self, name: str) -> ModelConf:
        found = self._load("model", name)
        assert isinstance(found, ModelConf)
        return found

    def profile(self, name: str) -> ProfileConf:
        found = self._load("profile", name)
        assert isinstance(found, ProfileConf)
        return found
