"""Errors raised by tftrt-build, one hierarchy so the CLI can catch them in one place.

    TftrtError
     ├── ConfigError      a config file, key or override is wrong (exit 2)
     ├── LockError        tftrt.lock cannot be read or has an unknown schema (exit 2)
     ├── CapabilityError  this machine cannot run the requested stage (exit 1)
     ├── SourceError      the model source cannot be obtained or fails its pin (exit 1)
     ├── StageError       a stage ran and failed: export, conversion, emit (exit 1)
     └── CacheError       the content-addressed store cannot be used (exit 1)

Any other exception is a bug: the CLI reports it as an internal error (exit 3) and writes its
traceback to the run's log. Only ``tftrt_build.cli`` prints; everything else raises with
``from exc``.

May import: nothing of tftrt_build.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TftrtError(Exception):
    """Base class: ``str(err)`` is the one line the CLI prints."""

    exit_code = 1


class ConfigError(TftrtError):
    """A config value is wrong; names the file (when known) and the key path."""

    exit_code = 2

    def __init__(
        self, message: str, *, key: str | None = None, file: str | None = None, hint: str = ""
    ) -> None:
        self.message = message
        self.key = key
        self.file = file
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def located(self, file: str | None) -> ConfigError:
        """The same error with the file filled in, if it was not known where it was raised."""
        if self.file or not file:
            return self
        return ConfigError(self.message, key=self.key, file=file, hint=self.hint)


class LockError(TftrtError):
    exit_code = 2


class CapabilityError(TftrtError):
    pass


class SourceError(TftrtError):
    pass


class StageError(TftrtError):
    pass


class CacheError(TftrtError):
    pass


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A 'did you mean ...?' hint for a misspelt name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
