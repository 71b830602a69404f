"""Helpers for tests that compare OmegaConf node trees node by node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import Node


def nodes(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    yield path, node
    content = node.__dict__.get("_content")
    if isinstance(content, dict):
        for key, child in content.items():
            yield from nodes(child, f"{path}.{key}")
    elif isinstance(content, list):
        for i, child in enumerate(content):
            yield from nodes(child, f"{path}[{i}]")


def shape(cfg: Node) -> list[tuple[Any, ...]]:
    """Every node: its path, class, attributes, metadata, parent (its path in the tree, or its
    class and flags when outside it) and value. The flags cache is left out: OmegaConf fills
    it on a node's first flag lookup, and None (empty) is always a correct value for it."""
    walked = list(nodes(cfg))
    paths = {id(node): path for path, node in walked}
    found = []
    for path, node in walked:
        meta = {k: dict(v) if k == "resolver_cache" else v for k, v in vars(node._metadata).items()}
        parent = node._get_parent()
        content = node.__dict__.get("_content", node.__dict__.get("_val"))
        outside = None if parent is None else (type(parent).__name__, dict(parent._metadata.flags))
        found.append(
            (
                path,
                type(node).__name__,
                sorted(vars(node)),
                repr(meta),
                paths.get(id(parent), outside),
                None if isinstance(content, (dict, list)) else repr(content),
            )
        )
    return found
