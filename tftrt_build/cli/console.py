"""Rich progress for long steps: one line per running stage, with its latest log line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def console(stderr: bool = False) -> Console:
    """A console that does not squeeze tables to 80 columns when output is captured.

    No emoji codes: text tftrt-build prints (names, paths, log lines) is escaped for markup,
    and ":warning:" in a model's name must print as written.
    """
    probe = Console(stderr=stderr, emoji=False)
    return probe if probe.is_terminal else Console(stderr=stderr, width=140, emoji=False)


class RichStage:
    def __init__(
        self,
        progress: Progress | None,
        task: TaskID | None,
        title: str,
        console: Console,
        verbose: bool,
    ) -> None:
        self._progress = progress
        self._task = task
        self._title = title
        self._console = console
        self._verbose = verbose
        self._bytes = 0

    def log(self, line: str) -> None:
        if self._verbose:
            self._console.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
        if line.strip() and self._progress is not None and self._task is not None:
            self._progress.update(self._task, note=escape(line.strip()[:60]))

    def advance(self, n: int) -> None:
        self._bytes += n
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, size=decimal(self._bytes))


class RichUI:
    """Progress on stderr; finished stages stay as one line each."""

    def __init__(self, verbose: bool = False) -> None:
        self.console = console(stderr=True)
        self.verbose = verbose

    def note(self, text: str) -> None:
        self.console.print(f"[green]•[/green] {escape(text)}", highlight=False)

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[RichStage]:
        if not self.console.is_terminal:
            # Captured output (CI, pipes): no live display, one line when the stage ends.
            yield RichStage(None, None, title, self.console, self.verbose)
            self.console.print(f"✓ {escape(title)}", highlight=False)
            return
        # Imported only for a live display: a captured run (CI, a script) never pays for it.
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[size]}"),
            TextColumn("[dim]{task.fields[note]}"),
            console=self.console,
            transient=True,
        )
        with progress:
            task = progress.add_task(escape(title), total=None, note="", size="")
            yield RichStage(progress, task, title, self.console, self.verbose)
        self.console.print(f"[green]✓[/green] {escape(title)}", highlight=False)
