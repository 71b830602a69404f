"""Turn Hydra's and OmegaConf's errors into one ConfigError line naming the file and key."""

from __future__ import annotations

from typing import Any

from tftrt_build.errors import ConfigError, TftrtError


def explain(exc: BaseException, choices: dict[str, str], options: Any) -> TftrtError:
    if isinstance(exc, TftrtError):
        return exc
    return ConfigError(" ".join(str(exc).split()))
