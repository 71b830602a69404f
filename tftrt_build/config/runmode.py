"""Whether Hydra must compose the config once more to learn ``hydra.mode``.

``hydra.main`` composes the whole config once only to read ``hydra.mode`` (RUN or MULTIRUN),
then again to run; ``tftrt_build.cli.app`` spares the first compose when nothing the user
wrote can set that key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path


def may_set_run_mode(argv: Sequence[str], folders: Sequence[Path]) -> bool:
    """Whether a value the user wrote could set ``hydra.mode`` (RUN or MULTIRUN).

    Hydra composes the whole config once just to read that key, then again to run. Only the
    user's config files and the command line can set it: tftrt-build's own configs and the
    launchers' never do. A file that mentions ``hydra`` at all, or lies in a ``hydra/`` folder,
    counts, so the test errs towards composing.
    """
    if any(arg.lstrip("+~").startswith("hydra.mode") for arg in argv):
        return True
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.yaml"):
            if "hydra" in path.relative_to(folder).parts[:-1]:
                return True
            with contextlib.suppress(OSError):
                if b"hydra" in path.read_bytes():
                    return True
    return False
