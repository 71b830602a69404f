"""Group choices on the command line (``model=demo``) and the primary config: names, never paths.

Hydra turns ``model=<value>`` into the file ``model/<value>.yaml`` on each config source, so a
value with ``..`` or a leading ``/`` reaches a YAML file outside every config folder: the YAML
guard (``yamlguard``) never read it, so an alias bomb there hangs the load and a non-UTF-8 file
crashes it, and the value becomes part of lock keys and bundle paths (``../model/demo/native``).
The choices of tftrt-build's own groups are therefore names (``names.NAME``); a choice in any
other group (``hydra/launcher=ray``) may not climb out of its group or be absolute. Each value
of a sweep (``-m model=demo,resnet50``) is checked; a ``glob(...)`` only matches real options.
This runs before Hydra composes, so whether a well-formed name exists is still Hydra's to say.

The same holds for Hydra's ``--config-name``: a name, and a config that builds on one of
tftrt-build's own (else Hydra would load a file outside every config folder, or run a config
with none of tftrt-build's keys and make its default ``outputs/`` run folder in the project).
``--config-path`` would replace tftrt-build's own config folder, relative to the installed
package: it is refused, with ``--config-dir`` (a folder added to the search path) as the way.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import yaml
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override
from hydra.errors import OverrideParseException

from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.names import NAME_RULE, is_name
from tftrt_build.config.options import GROUPS, HydraOptions, search_path_entries
from tftrt_build.config.paths import display_path
from tftrt_build.errors import ConfigError, did_you_mean


def check_choices(argv: Sequence[str]) -> None:
    """Refuse a group choice on the command line that is a path rather than an option name."""
    for override in _overrides(argv):
        group = override.key_or_group
        if override.is_delete() or (group not in GROUPS and "/" not in group):
            continue
        for value in _values(override):
            if not _acceptable(group, value):
                raise _refusal(group, value, argv)


def _overrides(argv: Sequence[str]) -> list[Override]:
    found = []
    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue  # flags (-m, --config-dir x) and their values; Hydra reads those
        try:
            found.extend(parser.parse_overrides([arg]))
        except OverrideParseException:
            continue  # Hydra reports the syntax error itself
    return found


def _values(override: Override) -> list[str]:
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return [v for v in value.list if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


def _acceptable(group: str, value: str) -> bool:
    if group in GROUPS:
        return is_name(value)
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts


def _refusal(group: str, value: str, argv: Sequence[str]) -> ConfigError:
    # Only now is the search path listed: a good command line never pays for it.
    options = HydraOptions(searchpath=search_path_entries(argv)).names(group)
    rule = NAME_RULE if group in GROUPS else "no '..', not absolute"
    return ConfigError(
        f"no {group} option '{value}': an option is named by its file in conf/{group}/, "
        f"not by a path ({rule}; options: {', '.join(options) or 'none'})",
        key=group,
        file=COMMAND_LINE,
        hint=did_you_mean(PurePosixPath(value).name, options),
    )


# The primary configs tftrt-build ships: one per command, each over tftrt_build.
PRIMARY_CONFIGS = ("tftrt_build", "tftrt_deploy", "tftrt_verify", "tftrt_bench")


def check_primary_config(argv: Sequence[str], folders: Sequence[Path]) -> None:
    """Refuse ``--config-path``, and a ``--config-name`` that is a path or a config of the
    user's (in one of ``folders``) whose defaults list names none of tftrt-build's own."""
    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, _ = parser.parse_known_args(list(argv))
    except (argparse.ArgumentError, SystemExit):
        return  # Hydra reports a malformed flag itself
    if args.config_path is not None:
        raise ConfigError(
            f"'{args.config_path}' would replace tftrt-build's own config folder",
            key="--config-path",
            file=COMMAND_LINE,
            hint="add a folder of configs with --config-dir DIR, or put them in ./conf/",
        )
    name = args.config_name
    if name is None or name in PRIMARY_CONFIGS:
        return
    stem = name.removesuffix(".yaml")
    if not is_name(stem):
        raise ConfigError(
            f"'{name}' is a path; a primary config is named by its file in a config folder "
            f"({NAME_RULE})",
            key="--config-name",
            file=COMMAND_LINE,
            hint=f"tftrt-build's own: {', '.join(PRIMARY_CONFIGS)}",
        )
    for folder in folders:
        path = folder / f"{stem}.yaml"
        if path.is_file():
            _check_builds_on_ours(path)
            return  # the first folder that has it is the one Hydra loads


def _check_builds_on_ours(path: Path) -> None:
    # The YAML guard has read every file of the user's config folders: this load is safe.
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return  # Hydra reports an unreadable file itself, naming it
    defaults = data.get("defaults") if isinstance(data, dict) else None
    entries = defaults if isinstance(defaults, list) else []
    if not any(isinstance(e, str) and e in PRIMARY_CONFIGS for e in entries):
        raise ConfigError(
            f"names none of tftrt-build's primary configs ({', '.join(PRIMARY_CONFIGS)}), so "
            "it has none of its keys",
            key="defaults",
            file=display_path(path),
            hint="start its defaults list with - tftrt_build",
        )
