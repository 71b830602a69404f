"""Keys a config may hold: the fields of its schema, and never one added with ``+``.

Hydra adds a ``+key=value`` override with the config's struct flag lifted, so a key the schema
does not know lands in the typed config, and ``OmegaConf.to_object`` sets it as a stray
attribute of the dataclass, where nothing reads it. Every node backed by a schema is compared
with the schema's fields before conversion. Free-form mappings (a script's ``args``, a model's
``labels``) are plain dicts in the schema and hold any key.
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, ListConfig, OmegaConf

from tftrt_build.errors import ConfigError, did_you_mean


def check_known_keys(node: DictConfig | ListConfig, path: str, file: str | None) -> None:
    """Refuse the first key under ``node`` that its schema does not declare."""
    if isinstance(node, ListConfig):
        for i in range(len(node)):
            _child(node._get_node(i), f"{path}[{i}]", file)
        return
    schema = OmegaConf.get_type(node)
    names = (
        [f.name for f in dataclasses.fields(schema)]
        if isinstance(schema, type) and dataclasses.is_dataclass(schema)
        else None
    )
    for key in node:
        name = str(key)
        where = f"{path}.{name}" if path else name
        if names is not None and name not in names:
            raise ConfigError("unknown key", key=where, file=file, hint=did_you_mean(name, names))
        _child(node._get_node(key), where, file)


def _child(child: object, path: str, file: str | None) -> None:
    if not isinstance(child, DictConfig | ListConfig):
        return
    if child._is_none() or child._is_missing() or child._is_interpolation():
        return
    check_known_keys(child, path, file)
