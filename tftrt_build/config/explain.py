"""Turn Hydra's and OmegaConf's errors into one ConfigError line naming the file and key.

Hydra reports a bad override or option over several lines (search path, type names, hints).
Here each known shape becomes ``<file or "command line">: <key>: <what is wrong> (<hint>)``,
with the nearest valid name for a misspelt option, key or choice. An exception of any other
kind is not a config error but a bug: ``explain`` returns None and the caller reports it as an
internal error, never as bad input.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from tftrt_build.config import schema
from tftrt_build.config.paths import display_path
from tftrt_build.errors import ConfigError, TftrtError, did_you_mean

COMMAND_LINE = "command line"
# The schema of each group's options, to find where in an option's YAML an error is.
_GROUP_SCHEMAS: dict[str, type] = {
    "model": schema.ModelConf,
    "profile": schema.ProfileConf,
    "target": schema.TargetConf,
    "executor": schema.ExecutorConf,
}
_IN_CONFIG = re.compile(r"^In '([^']+)'")
_FULL_KEY = re.compile(r"full_key: (\S+)")
_NOT_IN = re.compile(r"Key '([^']+)' not in '(\w+)'")
_CHOICES = re.compile(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]")
_CONVERT = re.compile(r"Value '([^']*)' of type '\w+' could not be converted to (\w+)")
_BOOL = re.compile(r"Value '([^']*)' is not a valid bool")


def explain(exc: BaseException, choices: dict[str, str], options: Any) -> TftrtError | None:
    """The one-line error for an exception raised while composing or converting the config.

    None when the exception is none of Hydra's, OmegaConf's or PyYAML's: a bug, not bad input.
    """
    if isinstance(exc, TftrtError):
        return exc
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc, options)
    if isinstance(exc, OverrideParseException):
        first = str(exc).splitlines()[0]
        return ConfigError(f"cannot parse an override: {first}", file=COMMAND_LINE)
    if isinstance(exc, yaml.MarkedYAMLError):
        return _yaml_error(exc, options)
    if isinstance(exc, ConfigCompositionException):
        return _composition(exc, choices, options)
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None) or None
        return _value_error(_first_line(exc), key, _file_of_key(key, choices, options), exc)
    if isinstance(exc, yaml.YAMLError):
        return ConfigError(f"invalid YAML: {_first_line(exc)}")
    if isinstance(exc, HydraException):
        return ConfigError(_first_line(exc), file=COMMAND_LINE)
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def _missing_option(exc: MissingConfigException, options: Any) -> ConfigError:
    missing = exc.missing_cfg_file or ""
    group, _, name = missing.rpartition("/")
    where = _IN_CONFIG.match(str(exc))
    file = COMMAND_LINE
    if where and where.group(1) != "tftrt_build":
        file = _file_of_path(where.group(1), options) or where.group(1)
    if not group:
        return ConfigError(f"no config '{missing}'", file=file)
    available = list(exc.options or [])
    return ConfigError(
        f"no {group} option '{name}' (options: {', '.join(available) or 'none'})",
        key=group,
        file=file,
        hint=did_you_mean(name, available),
    )


def _yaml_error(exc: yaml.MarkedYAMLError, options: Any) -> ConfigError:
    mark = exc.problem_mark
    where = "a config file"
    if mark is not None:
        where = f"{display_path(Path(mark.name))}:{mark.line + 1}:{mark.column + 1}"
    return ConfigError(f"invalid YAML: {exc.problem or exc.context}", file=where)


def _composition(
    exc: ConfigCompositionException, choices: dict[str, str], options: Any
) -> ConfigError:
    text = str(exc)
    cause = exc.__cause__
    in_file = _IN_CONFIG.match(text)
    if in_file:
        # A YAML option failed against its schema: "In 'model/bad': ... full_key: model.x".
        config_path = in_file.group(1)
        file = _file_of_path(config_path, options) or config_path
        body = text.split("\n", 1)[1] if "\n" in text else text
        key_match = _FULL_KEY.search(body)
        key = key_match.group(1) if key_match else None
        group = config_path.rpartition("/")[0]
        raw = _raw_option(config_path, options) if group in _GROUP_SCHEMAS else None
        if raw is not None and key and not key.startswith(group):
            # Inside a list element OmegaConf names the key from the element (labels.stable).
            key = _locate(key, raw, group) or key
        if raw is not None and not key:
            mismatch = _mismatch(raw, _GROUP_SCHEMAS[group], group)
            if mismatch:
                return ConfigError(mismatch[1], key=mismatch[0], file=file)
        return _value_error(body.splitlines()[0].strip(), key, file, cause)
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or None
        return _value_error(_first_line(cause), key, COMMAND_LINE, cause)
    return ConfigError(_first_line(exc), file=COMMAND_LINE)


def _raw_option(config_path: str, options: Any) -> Any:
    """An option's YAML as plain data, to find where in it an error is."""
    try:
        loaded = options.repository.load_config(config_path)
    except (HydraException, yaml.YAMLError, OSError):
        return None
    if loaded is None:
        return None
    return OmegaConf.to_container(loaded.config, resolve=False)


def _segments(key: str) -> list[str]:
    return re.findall(r"\[\d+\]|[^.\[\]]+", key)


def _locate(key: str, raw: Any, group: str) -> str | None:
    """The full key of the first place in ``raw`` that ``key`` (a relative key) names."""
    want = _segments(key)

    def walk(node: Any, path: list[str]) -> str | None:
        if path[-len(want) :] == want:
            return group + "".join(p if p.startswith("[") else f".{p}" for p in path)
        items = (
            [(str(k), v) for k, v in node.items()]
            if isinstance(node, dict)
            else [(f"[{i}]", v) for i, v in enumerate(node)]
            if isinstance(node, list)
            else []
        )
        for name, child in items:
            found = walk(child, [*path, name])
            if found:
                return found
        return None

    return walk(raw, [])


def _mismatch(raw: Any, schema: type, key: str) -> tuple[str, str] | None:
    """The first key whose YAML is a mapping where the schema wants a list, or the reverse."""
    if not isinstance(raw, dict):
        return None
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name not in raw:
            continue
        value, hint, where = raw[f.name], _unwrap(hints[f.name]), f"{key}.{f.name}"
        wants, found = _shape(hint), _shape(value)
        if wants and found and wants != found:
            return where, f"expected {wants}, found {found}"
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            inner = _mismatch(value, hint, where)
            if inner:
                return inner
        item = (typing.get_args(hint) or (None,))[0] if typing.get_origin(hint) is list else None
        if isinstance(item, type) and dataclasses.is_dataclass(item) and isinstance(value, list):
            for i, element in enumerate(value):
                inner = _mismatch(element, item, f"{where}[{i}]")
                if inner:
                    return inner
    return None


def _shape(hint_or_value: Any) -> str | None:
    """'a list' or 'a mapping', for a schema's type hint or a YAML value; None for a scalar."""
    if isinstance(hint_or_value, list) or typing.get_origin(hint_or_value) is list:
        return "a list"
    if (
        isinstance(hint_or_value, dict)
        or typing.get_origin(hint_or_value) is dict
        or (isinstance(hint_or_value, type) and dataclasses.is_dataclass(hint_or_value))
    ):
        return "a mapping"
    return None


def _unwrap(hint: Any) -> Any:
    """Optional[X] is X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _value_error(
    message: str, key: str | None, file: str | None, cause: BaseException | None
) -> ConfigError:
    if m := _NOT_IN.search(message):
        wrong, schema_name = m.group(1), m.group(2)
        return ConfigError(
            "unknown key",
            key=key,
            file=file,
            hint=did_you_mean(wrong, _fields_of(schema_name)),
        )
    if m := _CHOICES.search(message):
        allowed = [c.strip() for c in m.group(2).split(",")]
        return ConfigError(
            f"'{m.group(1)}' is not one of {', '.join(allowed)}",
            key=key,
            file=file,
            hint=did_you_mean(m.group(1), allowed),
        )
    if m := _CONVERT.search(message):
        kind = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}
        return ConfigError(
            f"'{m.group(1)}' is not {kind.get(m.group(2), m.group(2))}", key=key, file=file
        )
    if m := _BOOL.search(message):
        return ConfigError(f"'{m.group(1)}' is not true or false", key=key, file=file)
    if isinstance(cause, MissingMandatoryValue) or "missing mandatory value" in message.lower():
        return ConfigError(
            "has no value; set it in the file or on the command line", key=key, file=file
        )
    return ConfigError(message, key=key, file=file)


def _fields_of(schema_name: str) -> list[str]:
    cls = getattr(schema, schema_name, None)
    if cls is None or not dataclasses.is_dataclass(cls):
        return []
    return [f.name for f in dataclasses.fields(cls)]


def _file_of_path(config_path: str, options: Any) -> str | None:
    group, _, name = config_path.rpartition("/")
    if not group:
        return None
    found: str | None = options.file(group, name)
    return found


def _file_of_key(key: str | None, choices: dict[str, str], options: Any) -> str | None:
    if not key:
        return None
    group = key.split(".", 1)[0].split("[", 1)[0]
    if group in choices:
        found: str | None = options.file(group, choices[group])
        return found
    return None
