"""review: what a change to the configs and the lock does, for the reviewer of a pull request.

Owns ``mode=diff``: finding the base lock (``base``: a git ref's merge-base or a file), which
targets a diff covers and how each pairs with its base bundle (``targets``), the comparison of
a target's two sides in the lock's own shape (``sides``, ``compare``: artifacts added, removed,
rebuilt and why; models, versions, labels, warm-up and serving parameters), the warnings a
reviewer must see (``checks``) and their renderings as text, Markdown and JSON (``render``).
It builds nothing and writes nothing: the working tree's side is a plan.

May import: ``plan``, ``emit``, ``stages``, ``execute``, ``store``, ``config``, ``errors``.
"""

from __future__ import annotations

from tftrt_build.review.base import Base, load_base
from tftrt_build.review.records import Review
from tftrt_build.review.targets import Planned, Selection, assemble, from_locks

__all__ = ["Base", "Planned", "Review", "Selection", "assemble", "from_locks", "load_base"]
