"""One attribute of Hydra or OmegaConf (pinned versions) replaced for the length of a block.

tftrt-build replaces some of their internals while a command runs: Hydra's ``get_mode`` and
``ConfigLoaderImpl.load_configuration`` (``cli.app``), OmegaConf's ``get_yaml_loader``
(``yamlload``) and the copying of its node metadata (``nodecopy``). Each is put back as it was
when the block ends, however it ends: an attribute the owner did not have is removed again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_ABSENT = object()


@contextlib.contextmanager
def swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    # The owner's own attribute as stored (a class's staticmethod stays one), not one it
    # inherits: that is what goes back.
    original = vars(owner).get(name, _ABSENT)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if original is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
