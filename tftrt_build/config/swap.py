"""One attribute of Hydra or OmegaConf (pinned versions) replaced for the length of a block.

tftrt-build replaces three of their internals while a command runs: Hydra's ``get_mode``
(``cli.app``), ``ConfigLoaderImpl.load_configuration`` (``cli.app``) and OmegaConf's
``get_yaml_loader`` (``yamlload``); each is put back when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)
