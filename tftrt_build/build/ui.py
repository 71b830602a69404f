"""What the build step reports progress through; the CLI passes a Rich implementation."""

from __future__ import annotations

import contextlib
from typing import Protocol


class StageUI(Protocol):
    def log(self, line: str) -> None: ...

    def advance(self, n: int) -> None: ...


class UI(Protocol):
    def stage(self, title: str) -> contextlib.AbstractContextManager[StageUI]: ...

    def note(self, text: str) -> None: ...
