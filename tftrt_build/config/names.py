"""Names: of models, profiles and targets (folder names, file names, lock keys) and labels.

A name becomes part of a path (``bundles/<model>-<profile>``, ``models/<name>/<version>``) and
of the lock's keys, so it is an identifier: 1 to 63 letters, digits, ``_``, ``.`` and ``-``,
starting with a letter or digit, and never containing ``..``. A TF Serving version label
starts with a letter and has no dots.
"""

from __future__ import annotations

import re

from tftrt_build.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
NAME_RULE = "1 to 63 letters, digits, _ . -, starting with a letter or digit, no '..'"
LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
LABEL_RULE = "1 to 63 letters, digits, _ or -, starting with a letter"


def is_name(value: str) -> bool:
    return bool(NAME.match(value)) and ".." not in value


def check_name(value: str, key: str, file: str | None) -> None:
    if not is_name(value):
        raise ConfigError(f"'{value}' is not a valid name ({NAME_RULE})", key=key, file=file)
