"""Group choices on the command line (``model=demo``): option names, never paths.

Hydra turns ``model=<value>`` into the file ``model/<value>.yaml`` on each config source, so a
value with ``..`` or a leading ``/`` reaches a YAML file outside every config folder: the YAML
guard (``yamlguard``) never read it, so an alias bomb there hangs the load and a non-UTF-8 file
crashes it, and the value becomes part of lock keys and bundle paths (``../model/demo/native``).
The choices of tftrt-build's own groups are therefore names (``names.NAME``); a choice in any
other group (``hydra/launcher=ray``) may not climb out of its group or be absolute. Each value
of a sweep (``-m model=demo,resnet50``) is checked; a ``glob(...)`` only matches real options.
This runs before Hydra composes, so whether a well-formed name exists is still Hydra's to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override
from hydra.errors import OverrideParseException

from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.names import NAME_RULE, is_name
from tftrt_build.config.options import GROUPS, HydraOptions, search_path_entries
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
