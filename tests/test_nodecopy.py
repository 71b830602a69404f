"""OmegaConf configs deep-copied with ``fast_node_copies`` are what the generic copy makes."""

from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import pytest
from nodetrees import nodes, shape
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.base import Metadata
from omegaconf.basecontainer import BaseContainer

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


@dataclass
class _Entry:
    version: int = MISSING
    profile: str = "native"
    tags: list[str] = field(default_factory=list)


@dataclass
class _Lists:
    entries: list[_Entry] = MISSING
    maybe: Optional[list[Optional[_Entry]]] = None  # noqa: UP045 (OmegaConf reads it)
    plain: list[int] = field(default_factory=list)
    x: int = 0
    y: Any = None
    other: Any = None


def _sources() -> dict[str, Any]:
    flagged = OmegaConf.create({"entries": [{"version": 1}, {"version": 2, "tags": ["a"]}]})
    flagged._set_flag("allow_objects", True)
    OmegaConf.set_struct(flagged.entries, False)
    return {
        "entries": {"entries": [{"version": i, "profile": f"p{i}"} for i in range(5)]},
        "interpolations": {"x": 3, "entries": [{"version": "${x}", "profile": "${y}"}], "y": "p"},
        "None and missing entries": {"entries": [{"version": 1}], "maybe": [None, {"version": 2}]},
        "whole list None": {"entries": [{"version": 1}], "maybe": None},
        "whole list missing": {"entries": "???"},
        "whole list interpolation": {"entries": "${other}", "other": [{"version": 7}]},
        "plain list": {"entries": [], "plain": [1, 2]},
        "flags on the source": flagged,
    }


def _merged(source: Any, fast: bool, dest_flag: bool = False) -> DictConfig:
    base = OmegaConf.structured(_Lists)
    if dest_flag:
        base._get_node("entries")._set_flag("no_deepcopy_set_nodes", True)
    with fast_node_copies() if fast else contextlib.nullcontext():
        merged = OmegaConf.merge(base, source)
    assert isinstance(merged, DictConfig)
    return merged


@pytest.mark.parametrize("dest_flag", [False, True], ids=["plain list", "flagged list"])
@pytest.mark.parametrize("name", list(_sources()))
def test_a_list_merge_makes_what_omegaconfs_makes(name: str, dest_flag: bool) -> None:
    source = _sources()[name]
    generic = _merged(source, fast=False, dest_flag=dest_flag)
    fast = _merged(source, fast=True, dest_flag=dest_flag)
    assert shape(fast) == shape(generic)
    assert len(shape(fast)) > 3


def test_a_merged_target_is_what_omegaconfs_merge_makes() -> None:
    served = [
        {"model": f"m{i}", "versions": [{"version": j + 1, "profile": f"p{j}"} for j in range(4)]}
        for i in range(3)
    ]
    raw = OmegaConf.create({"target": {"name": "t", "bundle_dir": "b", "models": served}})
    generic = OmegaConf.merge(OmegaConf.structured(Config), raw)
    with fast_node_copies():
        fast = OmegaConf.merge(OmegaConf.structured(Config), raw)
    assert shape(fast) == shape(generic)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"entries": [{"version": "one"}]}, "could not be converted to Integer"),
        ({"entries": [[1, 2]]}, "Invalid type assigned"),
        ({"entries": ["${y}"], "y": {"version": 4}}, "Invalid type assigned"),
        ({"entries": [{"versoin": 1}]}, "Key 'versoin' not in '_Entry'"),
    ],
)
def test_a_bad_entry_fails_as_with_omegaconfs_merge(source: Any, message: str) -> None:
    errors = []
    for fast in (False, True):
        with pytest.raises(Exception) as caught:
            _merged(source, fast=fast)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    assert message in errors[1][1]


def test_a_merged_list_shares_no_node_with_its_source() -> None:
    source = OmegaConf.create({"entries": [{"version": 1, "tags": ["a"]}]})
    fast = _merged(source, fast=True)
    entry = fast.entries[0]
    assert entry._get_flag("no_deepcopy_set_nodes") is None  # not left on the filled list
    entry.tags.append("b")
    entry.version = 2
    assert OmegaConf.to_container(source) == {"entries": [{"version": 1, "tags": ["a"]}]}
    # A node set into a merged entry later is copied, as OmegaConf copies it.
    tags = OmegaConf.create(["c"])
    entry.tags = tags
    tags.append("d")
    assert entry.tags == ["c"]


def test_each_merged_entry_is_copied_once_less() -> None:
    counted: list[int] = []
    original = DictConfig.__deepcopy__

    def counting(self: DictConfig, memo: Any) -> DictConfig:
        counted.append(1)
        return original(self, memo)

    source = OmegaConf.create({"entries": [{"version": i} for i in range(10)]})
    copies = {}
    for fast in (False, True):
        counted.clear()
        DictConfig.__deepcopy__ = counting  # type: ignore[method-assign]
        try:
            _merged(source, fast=fast)
        finally:
            DictConfig.__deepcopy__ = original  # type: ignore[method-assign]
        copies[fast] = len(counted)
    assert copies[True] <= copies[False] - 10, copies


def test_lists_are_merged_by_omegaconf_outside_the_block() -> None:
    original = vars(BaseContainer)["_list_merge"]
    with fast_node_copies():
        assert vars(BaseContainer)["_list_merge"] is not original
    assert vars(BaseContainer)["_list_merge"] is original
