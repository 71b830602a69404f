"""The options a target lists by name, loaded from the search path Hydra composed from.

A target names its models and profiles (``target.models[i].model``, ``.versions[j].profile``).
Each is loaded once per process from the same config sources as the command line's own config:
Hydra's search path with ``hydra.searchpath`` additions and the project's ``conf/`` included.
An option file is merged onto its schema inside the composed config, so its
interpolations resolve as they would on the command line; an option with a defaults list of its
own is composed by Hydra.

The command line's ``model.*`` and ``profile.*`` overrides apply to a listed option only when
the command line chose that very option (``model=resnet50 model.source.seed=1``); they are
applied with Hydra's own override semantics (``+``, ``++``, ``~``). Whether overrides that fit
no listed option are refused is ``resolve``'s rule.

Why this module is long: loading a listed option as the command line's own would be (Hydra's
repository and search path, the group's schema, the override semantics, the composed config
its interpolations resolve in) is one mechanism, and its parts share that state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.tftrt_build_searchpath import TftrtProjectSearchPath, project_conf_dir
from tftrt_build.config.explain import COMMAND_LINE, explain
from tftrt_build.config.keys import check_known_keys
from tftrt_build.config.paths import display_path
from tftrt_build.config.schema import Config, ModelConf, ProfileConf
from tftrt_build.errors import ConfigError

PRIMARY = "tftrt_build"
BUILTIN = "pkg://tftrt_build.conf"
# The schema each listed group's options are checked against.
_SCHEMAS: dict[str, type] = {"model": ModelConf, "profile": ProfileConf}
# The groups whose values the lock records (an override of one makes a build an experiment).
CONTENT_GROUPS = ("model", "profile", "target")
# Config groups: group=name picks a file, it sets no key.
GROUPS = ("model", "profile", "target", "executor")


def register_search_path() -> None:
    """Make Hydra use the project search path plugin, however tftrt-build was installed.

    Hydra finds plugins by walking the ``hydra_plugins`` namespace package's folders, which an
    editable install made with import hooks (pip's default since setuptools 64) does not have:
    the plugin is then silently skipped and the project's conf/ disappears. Importing it by name
    works under every install mode; registering an already discovered plugin changes nothing.
    """
    Plugins.instance().register(TftrtProjectSearchPath)


def user_config_dirs(argv: Sequence[str]) -> list[Path]:
    """The folders of config files a user gives: the project's conf/ and any on the command line.

    That is ``hydra.searchpath=[...]`` entries on file paths and ``--config-dir``; tftrt-build's
    own options are trusted.
    """
    found = [project_conf_dir()]
    for text in search_path_entries(argv):
        if "://" not in text or text.startswith("file://"):
            found.append(Path(text.removeprefix("file://")))
    return [path.absolute() for path in found]


def search_path_entries(argv: Sequence[str]) -> list[str]:
    """The config sources the command line adds: ``--config-dir`` and ``hydra.searchpath``."""
    found: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith("--config-dir="):
            found.append(arg.split("=", 1)[1])
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            try:
                parsed = OverridesParser.create().parse_overrides([arg])[0].value()
            except OverrideParseException:
                continue  # Hydra reports the syntax error itself
            entries = parsed if isinstance(parsed, list) else [parsed]
            found.extend(str(entry) for entry in entries)
    return found


def command_line_value(argv: Sequence[str], key: str) -> Any:
    """The value the command line's last override of ``key`` sets; None when none does."""
    found: Any = None
    for arg in argv:
        if arg.startswith("-") or arg.lstrip("+~").split("=", 1)[0] != key:
            continue
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
        except OverrideParseException:
            continue  # Hydra reports the syntax error itself
        found = None if override.is_delete() else override.value()
    return found


@dataclass(frozen=True)
class CommandLine:
    """What the command line says about the groups a target lists: options chosen, keys set."""

    # group -> the option chosen with group=name (only when typed on the command line).
    chosen: dict[str, str] = field(default_factory=dict)
    # group -> overrides of keys under it (model.source.seed=1, +model.x=y, ~model.y).
    keys: dict[str, list[Override]] = field(default_factory=dict)
    # Every key an override sets (not group choices such as target=prod).
    set_anywhere: tuple[str, ...] = ()
    # Overrides, as typed, of values the lock records: keys under model, profile and target
    # (except target.bundle_dir, which says where to write, not what).
    content: tuple[str, ...] = ()

    @classmethod
    def parse(cls, overrides: Sequence[str]) -> CommandLine:
        chosen: dict[str, str] = {}
        keys: dict[str, list[Override]] = {}
        anywhere: list[str] = []
        content: list[str] = []
        for o in OverridesParser.create().parse_overrides(list(overrides)):
            group = o.key_or_group.split(".", 1)[0]
            if o.key_or_group == group and group in GROUPS:
                value = o.value()
                if group in _SCHEMAS and isinstance(value, str) and not o.is_delete():
                    chosen[group] = value
                continue
            anywhere.append(o.key_or_group)
            if group in CONTENT_GROUPS and o.key_or_group != "target.bundle_dir":
                content.append(o.input_line or o.key_or_group)
            if group in _SCHEMAS and o.package is None:
                keys.setdefault(group, []).append(o)
        return cls(chosen, keys, tuple(anywhere), tuple(content))

    def sets(self, key: str) -> bool:
        """Whether an override sets this key (or a mapping holding it)."""
        return any(key == k or key.startswith(k + ".") for k in self.set_anywhere)

    def set_keys(self, group: str) -> list[str]:
        """The overrides of keys under a group, as typed."""
        return [o.input_line or o.key_or_group for o in self.keys.get(group, [])]


class HydraOptions:
    """Loads options through the running Hydra app (or the compose API in tests)."""

    def __init__(
        self,
        base: DictConfig | None = None,
        searchpath: Sequence[str] = (),
        overrides: Sequence[str] = (),
    ) -> None:
        # The composed config (without its hydra node) that listed options sit in.
        self._base = base if base is not None else OmegaConf.structured(Config)
        self._searchpath = list(searchpath)
        self.command_line = CommandLine.parse(overrides)
        self._repo: Any = None
        self._loaded: dict[tuple[str, str], Any] = {}
        self._names: dict[str, list[str]] = {}
        self._files: dict[tuple[str, str], str | None] = {}
        self._schemas: dict[str, DictConfig] = {}

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
        # Hydra lists a group by walking every source on each call; a target asks per option.
        if group not in self._names:
            self._names[group] = sorted(self.repository.get_group_options(group))
        return list(self._names[group])

    def file(self, group: str, name: str) -> str | None:
        """The file an option comes from, as messages show it; None for a schema default."""
        # Asked for each listed version; each answer asks every config source.
        if (group, name) not in self._files:
            self._files[(group, name)] = self._find_file(group, name)
        return self._files[(group, name)]

    def _find_file(self, group: str, name: str) -> str | None:
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

    def chosen(self, group: str) -> str | None:
        return self.command_line.chosen.get(group)

    def set_keys(self, group: str) -> list[str]:
        return self.command_line.set_keys(group)

    def on_command_line(self, key: str) -> bool:
        return self.command_line.sets(key)

    def content_overrides(self) -> tuple[str, ...]:
        return self.command_line.content

    def _load(self, group: str, name: str) -> Any:
        if (group, name) in self._loaded:
            return self._loaded[(group, name)]
        # The command line's group.* overrides, when it chose this very option.
        overrides = self.command_line.keys.get(group, []) if self.chosen(group) == name else []
        # The composed config itself, not a copy (a target listing 128 versions makes it large):
        # this option goes under its group for as long as it loads, the composed node goes back.
        full = self._base
        kept = full._get_node(group)  # the node as composed, missing values and all
        try:
            loaded = self.repository.load_config(f"{group}/{name}")
            if loaded is None:
                raise ConfigError(f"no {group} option '{name}'", key=group)
            if any(d.get_config_path() != f"{group}/_self_" for d in loaded.defaults_list or []):
                _put(full, group, self._composed(group, name, overrides)._get_node(group))
            else:
                # Merged under its group's key, so an error names the full key (model.inptus).
                merged = OmegaConf.merge(self._typed(group), {group: loaded.config})
                assert isinstance(merged, DictConfig)
                _put(full, group, merged._get_node(group))
                _apply(overrides, full)
            check_known_keys(full[group], group, COMMAND_LINE)
            obj = OmegaConf.to_object(full[group])
        except Exception as exc:
            error = explain(exc, {group: name}, self)
            if error is None:
                raise
            raise error from exc
        finally:
            # The next option sees the composed config as it was, not this option in it.
            _put(full, group, kept)
        self._loaded[(group, name)] = obj
        return obj

    def _typed(self, group: str) -> DictConfig:
        """The group's schema under its key; built once (merge copies it, never changes it)."""
        if group not in self._schemas:
            self._schemas[group] = OmegaConf.create({group: OmegaConf.structured(_SCHEMAS[group])})
        return self._schemas[group]

    def _composed(self, group: str, name: str, overrides: list[Override]) -> DictConfig:
        from hydra import compose

        lines = [o.input_line or "" for o in overrides]
        return compose(config_name=PRIMARY, overrides=[f"{group}={name}", *lines])

    def model(self, name: str) -> ModelConf:
        found = self._load("model", name)
        assert isinstance(found, ModelConf)
        return found

    def profile(self, name: str) -> ProfileConf:
        found = self._load("profile", name)
        assert isinstance(found, ProfileConf)
        return found


def _put(root: DictConfig, group: str, node: Any) -> None:
    """Put a node that is already typed by its group's schema under that group, as it is.

    ``root[group] = node`` would validate it against the same schema again and deep-copy it, on
    the way in and again when the composed node goes back: three quarters of what loading a
    listed option took (a target listing 128 versions loads every option it names). This is
    the end state of that assignment (OmegaConf 2.3, pinned): the node, parented to the root.
    """
    node._set_parent(root)
    node._set_key(group)
    root.__dict__["_content"][group] = node


def _apply(overrides: list[Override], cfg: DictConfig) -> None:
    """Apply overrides to a config as Hydra applies the command line's to the composed one."""
    if overrides:
        ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
