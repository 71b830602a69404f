"""A config file's plain values made into OmegaConf nodes directly.

Hydra reads every config file with ``OmegaConf.load``: the YAML is parsed (by libyaml,
``yamlload``), then ``OmegaConf.create`` turns the plain data into untyped nodes, each key and
value going through ``__setitem__``, its validation, its flag overrides and a wrapper: 31 ms
for a target listing 128 versions, most of loading it. For a file of plain data (string keys;
strings, numbers, booleans and nulls for values) the result is fixed: every mapping a
``DictConfig`` of no declared type, every list a ``ListConfig``, every value an ``AnyNode``
holding it, each with the metadata OmegaConf gives it and no flags. ``plain_tree`` builds
exactly that, in 1.6 ms for that target.

Anything else goes to ``OmegaConf.create`` as before: other key types, values it converts or
refuses (bytes from ``!!binary``, dates), and strings holding ``${`` (OmegaConf parses each
interpolation as the node is made, and its error is the one a user should see). The nodes
carry no flags cache (OmegaConf fills it on the first flag lookup). ``tests/test_yamlload.py``
compares every node with what ``OmegaConf.create`` makes, for every shipped and test config.

``plain_file_nodes`` swaps ``OmegaConf.load`` for one that does this, for as long as its
``with`` block runs (OmegaConf 2.3, pinned).
"""

from __future__ import annotations

import os
import pathlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import yaml
from omegaconf import AnyNode, DictConfig, ListConfig, Node, OmegaConf, _utils
from omegaconf.base import Container, ContainerMetadata, Metadata

from tftrt_build.config.swap import swapped

# Values an AnyNode keeps as they are (bool before int does not matter: both are kept).
_VALUES = (str, int, float, bool, type(None))


class _NotPlain(Exception):
    """The data holds something only ``OmegaConf.create`` may judge."""


def plain_tree(data: dict[Any, Any] | list[Any]) -> DictConfig | ListConfig | None:
    """The untyped config ``OmegaConf.create(data)`` makes; None if ``data`` is not plain."""
    try:
        tree: DictConfig | ListConfig = _node(data, None, None)
    except _NotPlain:
        return None
    return tree


def _node(data: Any, key: Any, parent: Container | None) -> Any:
    if type(data) is dict:
        mapping = DictConfig.__new__(DictConfig)
        meta = ContainerMetadata(Any, dict, True, key, None, False, _cache(), Any, Any)
        _start(mapping, meta, parent)
        content: dict[str, Any] = {}
        for k, value in data.items():
            if type(k) is not str:
                raise _NotPlain
            content[k] = _node(value, k, mapping)
        mapping.__dict__["_content"] = content
        return mapping
    if type(data) is list:
        sequence = ListConfig.__new__(ListConfig)
        meta = ContainerMetadata(Any, list, True, key, None, False, _cache(), int, Any)
        _start(sequence, meta, parent)
        sequence.__dict__["_content"] = [_node(v, i, sequence) for i, v in enumerate(data)]
        return sequence
    if type(data) not in _VALUES or (type(data) is str and "${" in data):
        raise _NotPlain
    leaf = AnyNode.__new__(AnyNode)
    _start(leaf, Metadata(Any, None, True, key, None, False, _cache()), parent)
    leaf.__dict__["_val"] = data
    return leaf


def _start(node: Node, meta: Metadata, parent: Container | None) -> None:
    """What ``Node.__init__`` sets: metadata, parent, an empty flags cache."""
    fields = node.__dict__
    fields["_metadata"] = meta
    fields["_parent"] = parent
    fields["_flags_cache"] = None


def _cache() -> defaultdict[str, Any]:
    return defaultdict(dict)


def _load(file_: str | pathlib.Path | IO[Any]) -> DictConfig | ListConfig:
    """``OmegaConf.load``, with plain data made into nodes by ``plain_tree``."""
    loader = _utils.get_yaml_loader()
    if isinstance(file_, (str, pathlib.Path)):
        with open(os.path.abspath(file_), encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)
    elif getattr(file_, "read", None):
        data = yaml.load(file_, Loader=loader)
    else:
        raise TypeError("Unexpected file type")
    if data is not None and not isinstance(data, (list, dict, str)):
        raise OSError(f"Invalid loaded object type: {type(data).__name__}")
    if isinstance(data, (dict, list)) and (tree := plain_tree(data)) is not None:
        return tree
    return OmegaConf.create() if data is None else OmegaConf.create(data)


@contextmanager
def plain_file_nodes() -> Iterator[None]:
    """Config files loaded while this runs have their plain values made by ``plain_tree``."""
    with swapped(OmegaConf, "load", staticmethod(_load)):
        yield
