"""Config options as Hydra composes them, for targets that name other models and profiles."""

from __future__ import annotations

import functools
from pathlib import Path

from omegaconf import OmegaConf

from tftrt_build.schema import Config, ModelConf, ProfileConf

BUILTIN_CONF = Path(__file__).parent / "conf"
PRIMARY = "tftrt_build"


def search_dirs() -> list[Path]:
    from hydra_plugins.tftrt_build_searchpath import project_conf_dir

    return [project_conf_dir(), BUILTIN_CONF]


def display_path(path: Path) -> str:
    """A config file as messages show it: relative to the project, or within tftrt_build."""
    cwd = Path.cwd()
    if path.is_relative_to(cwd):
        return path.relative_to(cwd).as_posix()
    if path.is_relative_to(BUILTIN_CONF):
        return "tftrt_build/conf/" + path.relative_to(BUILTIN_CONF).as_posix()
    return str(path)


class HydraOptions:
    """Composes options through the running Hydra app (or the compose API in tests)."""

    @functools.cache  # noqa: B019 - options are read a handful of times per run
    def names(self, group: str) -> list[str]:
        from hydra.core.global_hydra import GlobalHydra

        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))

    def file(self, group: str, name: str) -> str | None:
        for folder in search_dirs():
            path = folder / group / f"{name}.yaml"
            if path.is_file():
                return display_path(path)
        return None

    @functools.cache  # noqa: B019
    def _compose(self, group: str, name: str) -> Config:
        from hydra import compose

        from tftrt_build.explain import explain

        try:
            cfg = compose(config_name=PRIMARY, overrides=[f"{group}={name}"])
            obj = OmegaConf.to_object(cfg)
        except Exception as exc:
            raise explain(exc, {group: name}, self) from exc
        assert isinstance(obj, Config)
        return obj

    def model(self, name: str) -> ModelConf:
        return self._compose("model", name).model

    def profile(self, name: str) -> ProfileConf:
        return self._compose("profile", name).profile
