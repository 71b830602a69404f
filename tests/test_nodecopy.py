"""OmegaConf configs deep-copied with ``fast_node_copies`` are what the generic copy makes."""

from __future__ import annotations

import copy
from collections import defaultdict
from enum import Enum
from typing import Any

import pytest
from nodetrees import nodes
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import Metadata

from tftrt_build.config.nodecopy import fast_node_copies
from tftrt_build.config.schema import Config, TargetConf


class Color(Enum):
    red = 1
    blue = 2


def _target() -> DictConfig:
    served = [
        {"model": f"m{i}", "versions": [{"version": j + 1, "profile": f"p{j}"} for j in range(3)]}
        for i in range(2)
    ]
    raw = OmegaConf.create({"name": "t", "bundle_dir": "b", "models": served})
    merged = OmegaConf.merge(OmegaConf.structured(TargetConf), raw)
    assert isinstance(merged, DictConfig)
    return merged


def _flagged() -> DictConfig:
    cfg = OmegaConf.create(
        {"a": {"b": [1, "${a.c}", None], "c": "x"}, "e": {Color.red: 1}, "n": "${cached:}"}
    )
    OmegaConf.set_struct(cfg.a, True)
    OmegaConf.set_readonly(cfg.a.b, True)
    cfg._set_flag("allow_objects", True)
    return cfg


def _with_resolver_cache() -> DictConfig:
    OmegaConf.register_new_resolver("cached", lambda: [1, 2], use_cache=True, replace=True)
    cfg = _flagged()
    assert list(cfg.n) == [1, 2]  # fills the root's resolver_cache
    assert cfg._metadata.resolver_cache
    return cfg


CONFIGS = {
    "schema": lambda: OmegaConf.structured(Config),
    "target": _target,
    "flags and enum keys": _flagged,
    "resolver cache": _with_resolver_cache,
    "list": lambda: ListConfig([{"a": 1}, [2, 3], "${x}"]),
}


@pytest.mark.parametrize("make", CONFIGS.values(), ids=list(CONFIGS))
def test_a_copy_is_what_the_generic_copy_makes(make: Any) -> None:
    original = make()
    expected = copy.deepcopy(original)
    with fast_node_copies():
        fast = copy.deepcopy(original)
    assert OmegaConf.to_container(fast) == OmegaConf.to_container(expected)
    pairs = list(zip(nodes(expected), nodes(fast), nodes(original), strict=True))
    assert len(pairs) > 1
    for (path, want), (fast_path, got), (_, source) in pairs:
        assert fast_path == path
        assert type(got) is type(want)
        assert type(got._metadata) is type(want._metadata), path
        assert vars(got._metadata) == vars(want._metadata), path
        assert got._metadata is not source._metadata, path
        # Nothing mutable is shared with the original: changing the copy leaves it alone.
        assert got._metadata.flags is not source._metadata.flags, path
        assert got._metadata.resolver_cache is not source._metadata.resolver_cache, path
        got._metadata.flags["probe"] = True
        got._metadata.resolver_cache["probe"]["k"] = 1
        assert "probe" not in source._metadata.flags, path
        assert "probe" not in source._metadata.resolver_cache, path


def test_the_resolver_cache_is_copied_not_shared() -> None:
    original = _with_resolver_cache()
    with fast_node_copies():
        fast = copy.deepcopy(original)
    cached = original._metadata.resolver_cache
    assert fast._metadata.resolver_cache == cached
    for key, value in cached.items():
        assert fast._metadata.resolver_cache[key] is not value


def test_metadata_is_copied_generically_outside_the_block() -> None:
    assert "__deepcopy__" not in vars(Metadata)
    with fast_node_copies():
        assert "__deepcopy__" in vars(Metadata)
    assert "__deepcopy__" not in vars(Metadata)


class _Derived(Metadata):
    """Someone else's metadata class, with copying rules of its own."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        self.reduced = True
        return super().__reduce_ex__(protocol)


def _metadata(**changes: Any) -> Metadata:
    meta = Metadata(ref_type=Any, object_type=None, optional=True, key="k")
    vars(meta).update(changes)
    return meta


def test_what_the_generic_copy_shares_or_links_stays_so() -> None:
    # A record reaching itself, and one empty resolver cache held twice: the copy keeps both
    # shapes, as the generic protocol does (it enters each copy in the memo first).
    looped = _metadata()
    looped.key = ("k", [looped])
    shared = _metadata()
    shared.flags_root = shared.resolver_cache  # type: ignore[assignment]
    other_factory = _metadata(resolver_cache=defaultdict(list))
    for meta in (looped, shared, other_factory):
        with fast_node_copies():
            fast = copy.deepcopy(meta)
        generic = copy.deepcopy(meta)
        assert type(fast) is type(generic)
    with fast_node_copies():
        fast_loop = copy.deepcopy(looped)
        fast_shared = copy.deepcopy(shared)
        fast_other = copy.deepcopy(other_factory)
    assert fast_loop.key[1][0] is fast_loop
    assert fast_shared.flags_root is fast_shared.resolver_cache
    assert fast_shared.resolver_cache is not shared.resolver_cache
    assert fast_other.resolver_cache.default_factory is list
    assert fast_other.resolver_cache is not other_factory.resolver_cache


def test_a_derived_metadata_class_is_copied_the_generic_way() -> None:
    meta = _Derived(ref_type=Any, object_type=None, optional=True, key="k")
    with fast_node_copies():
        fast = copy.deepcopy(meta)
    assert type(fast) is _Derived and getattr(meta, "reduced", False)
    assert vars(fast) == vars(meta)
