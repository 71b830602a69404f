"""Puts the project's ./conf/ in front of tftrt-build's built-in options.

A deployment repository keeps its models, profiles and targets in ./conf/<group>/; running
tftrt-build there picks them up with no flag. An option in ./conf/ with the same name as a
built-in one replaces it. Only tftrt-build's own apps are touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

BUILTIN = "pkg://tftrt_build.conf"
PROVIDER = "tftrt-build project"


def project_conf_dir() -> Path:
    """./conf of the current folder, or TFTRT_PROJECT_CONF when set."""
    return Path(os.environ.get("TFTRT_PROJECT_CONF") or Path.cwd() / "conf").absolute()


class TftrtProjectSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(element.path == BUILTIN for element in search_path.get_path()):
            return
        conf = project_conf_dir()
        if conf.is_dir():
            search_path.prepend(
                provider=PROVIDER,
                path=f"file://{conf}",
                anchor=SearchPathQuery(provider=None, path=BUILTIN),
            )
