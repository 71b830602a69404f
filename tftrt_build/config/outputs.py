"""Where tftrt-build may write: inside the project, never into ``.git``, never over itself.

The output paths a config names (``target.bundle_dir``, ``lock``, ``cache.dir``,
``bench.output_dir``) must resolve (``..`` and symbolic links followed) inside the project
folder, unless the command line sets ``allow_outside_project=true``; the cache may also sit
where ``TFTRT_CACHE_DIR`` puts it, a machine's setting rather than a project's. No output ever
goes into a ``.git`` folder. A target file that names an absolute ``bundle_dir`` is refused even
then: a committed file must mean the same on every clone.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from tftrt_build.config.paths import under
from tftrt_build.errors import ConfigError


def check_output(
    value: str, project: Path, key: str, file: str | None, allow_outside: bool
) -> Path:
    """The path ``value`` names, refused if it leaves the project or enters ``.git``."""
    path = Path(os.path.normpath(under(project, value)))
    resolved = path.resolve()
    if ".git" in Path(value).parts or ".git" in resolved.parts:
        raise ConfigError(f"'{value}' is inside a .git folder; pick another", key=key, file=file)
    root = project.resolve()
    if not allow_outside and not resolved.is_relative_to(root):
        raise ConfigError(
            f"'{value}' is outside the project folder {root}",
            key=key,
            file=file,
            hint="pick a folder inside it, or set allow_outside_project=true on the command line",
        )
    return path


def check_cache_dir(value: str, project: Path, file: str | None, allow_outside: bool) -> Path:
    """The cache folder; the one ``TFTRT_CACHE_DIR`` names may be anywhere (but in .git)."""
    from_env = os.environ.get("TFTRT_CACHE_DIR")
    return check_output(value, project, "cache.dir", file, allow_outside or value == from_env)


def check_lock(value: str, project: Path, file: str | None, allow_outside: bool) -> Path:
    """The lock file: an output path that must not be a folder (it is replaced by a rename)."""
    path = check_output(value, project, "lock", file, allow_outside)
    if path.is_dir():
        raise ConfigError(
            f"'{value}' is a folder; a lock is a file",
            key="lock",
            file=file,
            hint="set lock=<a file path>, or move the folder out of the way",
        )
    return path


def check_bundle_dir(
    value: str, project: Path, cache: Path, file: str | None, allow_outside: bool, set_here: bool
) -> Path:
    """The bundle folder: an output path of its own, replaced wholesale on every build.

    ``set_here`` is whether the command line set it: a target file may not name an absolute path.
    """
    if Path(value).expanduser().is_absolute() and not set_here:
        raise ConfigError(
            f"'{value}' is absolute; a target file names a folder inside the project",
            key="target.bundle_dir",
            file=file,
            hint="use a relative path, or set it on the command line with "
            "allow_outside_project=true",
        )
    bundle = check_output(value, project, "target.bundle_dir", file, allow_outside)
    b, p, c = bundle.resolve(), project.resolve(), cache.resolve()
    # The bundle folder is replaced wholesale on every emit: it must not hold anything else.
    if p.is_relative_to(b) or c.is_relative_to(b) or b.is_relative_to(c):
        what = "the project folder" if p.is_relative_to(b) else "the cache"
        raise ConfigError(
            f"'{bundle}' overlaps {what}; pick a folder of its own",
            key="target.bundle_dir",
            file=file,
        )
    return bundle


def check_remote(value: str | None, file: str | None) -> str | None:
    """cache.remote: a URL with a scheme and no credentials (they would reach logs)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if not parts.scheme or len(parts.scheme) < 2:
        raise ConfigError(
            f"'{value}' is not a URL",
            key="cache.remote",
            file=file,
            hint="e.g. s3://bucket/prefix, gs://bucket/prefix or file:///shared/cache",
        )
    if "@" in parts.netloc or parts.password is not None:
        raise ConfigError(
            "the URL holds credentials, which would be written to logs",
            key="cache.remote",
            file=file,
            hint="drop them from the URL; the backend reads them from the environment or its "
            "profiles: AWS_PROFILE, AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            # Not echoed: a query string is where a signed URL keeps its secret.
            "the URL has a query or fragment, which tftrt-build would ignore",
            key="cache.remote",
            file=file,
            hint="give options through the backend's environment variables",
        )
    return value
