"""YAML read with bounds: UTF-8 text, limited nesting, limited alias expansion.

Hydra loads a config file with PyYAML and copies the result into OmegaConf nodes. PyYAML shares
an aliased node, but the copy expands every alias, so nine lines of nested aliases ("billion
laughs") become 10^9 values and the load never ends; a file nested thousands of levels deep
overflows PyYAML's recursive composer. Both are caught here from the event stream, which takes
time linear in the size of the text whatever it would expand to, before Hydra or the lock reader
loads the file. A syntax error is left to the loader, which reports it with its position.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from tftrt_build.config.paths import display_path
from tftrt_build.errors import ConfigError

# Deeper than any config or lock tftrt-build writes (the lock nests about 8 levels).
MAX_DEPTH = 64
# Values (scalars and collections) once aliases are expanded.
MAX_VALUES = 100_000
# libyaml's parser is fast but stops at its own nesting limit with a syntax error; PyYAML's
# parser, used when libyaml fails, says whether the failure was nesting or syntax.
_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def yaml_problem(data: bytes) -> str | None:
    """What makes this text unsafe to load as YAML, or None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
    try:
        return _expansion_problem(text, _FAST)
    except yaml.YAMLError:
        try:
            return _expansion_problem(text, yaml.SafeLoader)
        except yaml.YAMLError:
            return None


def _expansion_problem(text: str, loader: type) -> str | None:
    # Per open collection its anchor and the values in it so far; per anchor, its values.
    anchors: list[str | None] = []
    counts: list[int] = [0]
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            anchors.append(event.anchor)
            counts.append(1)
            if len(anchors) > MAX_DEPTH:
                return f"nests deeper than {MAX_DEPTH} levels (line {_line(event)})"
            continue
        anchor: str | None = None
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = anchors.pop(), counts.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, count = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            count = sizes.get(event.anchor or "", 1)
        else:
            continue
        if anchor:
            sizes[anchor] = count
        counts[-1] += count
        if counts[-1] > MAX_VALUES:
            return (
                f"YAML aliases expand to more than {MAX_VALUES} values (line {_line(event)}); "
                "write the values out, or use ${...} interpolation"
            )
    return None


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark else 0


def check_config_dirs(folders: Iterable[Path]) -> None:
    """Refuse a config file under these folders that is not safe to load, naming it."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.yaml")):
            if not path.is_file():
                if path.exists() and not path.is_dir():
                    # A FIFO or a device: reading it (here, or Hydra) would wait forever.
                    raise ConfigError(
                        "is not a regular file (a FIFO, socket or device never ends)",
                        file=display_path(path),
                    )
                continue  # a folder is a config group; a dangling link, Hydra's to report
            problem = yaml_problem(path.read_bytes())
            if problem:
                raise ConfigError(problem, file=display_path(path))
