"""The composed config of a single run, kept in the cache and used again while nothing it was
composed from has changed.

Hydra composes the config on every run: it reads each YAML file of the defaults list with
PyYAML's pure-Python loader and merges them onto tftrt-build's structured schema, a fifth of a
warm no-op build and more as a target lists more versions (0.26 s for the default, 0.62 s for a
target of 128 versions). Unpickling the config it composed last time takes 5-10 ms.

A record (``<cache>/composed/<key>.json``) is used only when all of these are as they were:

- in its name (a digest): the command line, the primary config's name, the overrides and
  flags Hydra composes with, its search path (``--config-dir`` included), the working folder,
  the job's name, this interpreter, ``TFTRT_CACHE_DIR``, Hydra's and OmegaConf's versions and
  the bytes of the code that defines structured configs (``tftrt_build/config``, Hydra's own,
  every ``hydra_plugins`` package: installing or removing a plugin changes that folder);
- in its body, checked before the config is unpickled: the folders and the bytes of the YAML
  files of every config source Hydra composed from (an added, removed or edited option is
  seen, whatever its mtime says), and the environment variables ``hydra.job.env_copy`` copies.

A damaged record, or one whose inputs differ, is ignored and Hydra composes. A record is
unpickled with only the classes a composed config is made of (OmegaConf's nodes, Hydra's and
its plugins' config classes, tftrt-build's schema, plain builtins): a record planted in a
repository's cache folder cannot name a function to call.

A record is written only after the run's config was accepted (exit 0 or 1), into a cache
folder that exists, and not when a config file changed within two seconds of the compose (it
may differ from what Hydra read). Only single runs use records: a sweep composes through
Hydra as before.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.resources
import io
import json
import os
import pickle
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import omegaconf
from hydra.core.utils import JobRuntime
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tftrt_build.config.options import command_line_value
from tftrt_build.config.paths import under
from tftrt_build.store.fs import atomic_write_text
from tftrt_build.store.tmp import Scratch

FOLDER = "composed"
# A file changed this close to the compose (or after it began) may differ from what Hydra read.
_RACY_NS = 2_000_000_000
# Bump when a record's layout or what its key covers changes.
_FORMAT = 1
# Records kept (one per command line used in this project); the oldest go first.
_KEEP = 64


class ComposeCache:
    """Serves Hydra's ``load_configuration`` of a single run from the cache (``reuse``), and
    records what it composed once the run succeeded (``keep``)."""

    def __init__(self, argv: Sequence[str], cwd: Path) -> None:
        self.cwd = cwd
        env_dir = os.environ.get("TFTRT_CACHE_DIR")
        given = command_line_value(argv, "cache.dir")
        # Where the run's cache will be, as far as the command line and environment say; a
        # config file that moves it makes the run compose every time (see ``_record``).
        self.folder = under(cwd, given if isinstance(given, str) else env_dir or ".tftrt-cache")
        self._env_dir = env_dir
        self._argv = list(argv)
        self._pending: tuple[Path, str] | None = None

    @contextlib.contextmanager
    def reuse(self) -> Iterator[None]:
        """Patch Hydra's config loader for the duration of ``hydra.main`` (hydra-core 1.3)."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        original = ConfigLoaderImpl.load_configuration
        cache = self

        def load_configuration(
            loader: ConfigLoaderImpl,
            config_name: str | None,
            overrides: list[str],
            run_mode: RunMode,
            from_shell: bool = True,
            validate_sweep_overrides: bool = True,
        ) -> DictConfig:
            args = (config_name, list(overrides), run_mode, from_shell, validate_sweep_overrides)
            if run_mode is not RunMode.RUN:
                return original(loader, *args)
            search_path = [[e.provider, e.path] for e in loader.get_search_path().get_path()]
            key = cache._key(search_path, *args)
            found = cache._load(key)
            if found is not None:
                return found
            started = time.time_ns()
            cfg = original(loader, *args)
            cache._record(key, cfg, started)
            return cfg

        ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[assignment]
        try:
            yield
        finally:
            ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]

    def keep(self) -> None:
        """Write the record of this run's compose: the run succeeded."""
        if self._pending is None or not self.folder.is_dir():
            return
        path, text = self._pending
        self._pending = None
        with contextlib.suppress(OSError):
            path.parent.mkdir(exist_ok=True)
            atomic_write_text(path, text, Scratch(self.folder).path("composed", suffix=".tmp"))
            records = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in records[:-_KEEP]:
                old.unlink(missing_ok=True)

    def _key(self, search_path: list[list[str]], *args: Any) -> str:
        name, overrides, run_mode, from_shell, validate = args
        material = {
            "format": _FORMAT,
            "argv": self._argv,
            # The sources before the primary config's hydra.searchpath: --config-dir's folder.
            "search_path": search_path,
            "config_name": name,
            "overrides": overrides,
            "mode": run_mode.name,
            "from_shell": from_shell,
            "validate": validate,
            "cwd": str(self.cwd),
            "job": JobRuntime.instance().get("name"),
            "python": [sys.executable, sys.version],
            "cache_dir_env": self._env_dir,
            "versions": [hydra.__version__, omegaconf.__version__],
            "code": [_tree(folder, ".py") for folder in _code_folders()],
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:40]

    def _path(self, key: str) -> Path:
        return self.folder / FOLDER / f"{key}.json"

    def _load(self, key: str) -> DictConfig | None:
        try:
            record = json.loads(self._path(key).read_text())
            if record["format"] != _FORMAT or record["sources"] != _sources(record["folders"]):
                return None
            if any(os.environ.get(name) != value for name, value in record["env"].items()):
                return None
            data = base64.b64decode(record["config"])
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                return None
            # Unpickled only once every input above matched.
            cfg = _ConfigUnpickler(io.BytesIO(data)).load()
        except (OSError, ValueError, KeyError, TypeError, pickle.UnpicklingError, EOFError):
            return None  # absent or damaged: compose
        return cfg if isinstance(cfg, DictConfig) else None

    def _record(self, key: str, cfg: DictConfig, started: int) -> None:
        resolved = OmegaConf.select(cfg, "cache.dir", default=None)
        if not isinstance(resolved, str) or under(self.cwd, resolved) != self.folder:
            return  # a config file moved the cache: it is not where the next run looks
        folders = []
        for source in cfg.hydra.runtime.config_sources:
            if source.schema == "structured":
                continue  # the code that registers them is in the key
            folder = _source_folder(source.schema, source.path)
            if folder is None:
                return  # a source this record cannot watch: compose every time
            folders.append(str(folder))
        if _newest(folders) + _RACY_NS > started:
            return
        sources = _sources(folders)
        data = pickle.dumps(cfg)
        env = {name: os.environ.get(name) for name in cfg.hydra.job.env_copy}
        record = {
            "format": _FORMAT,
            "folders": folders,
            "sources": sources,
            "env": env,
            "sha256": hashlib.sha256(data).hexdigest(),
            "config": base64.b64encode(data).decode(),
        }
        self._pending = (self._path(key), json.dumps(record))


def _code_folders() -> list[Path]:
    """Where the structured configs Hydra composes with are defined: tftrt-build's schema,
    Hydra's own, and the plugins' (a plugin installed or removed changes ``hydra_plugins``)."""
    import hydra.conf

    import hydra_plugins
    import tftrt_build.config

    own = [tftrt_build.config.__file__, hydra.conf.__file__]
    return [*(Path(str(f)).parent for f in own), *map(Path, hydra_plugins.__path__)]


# What a composed config is made of; anything else in a record is refused.
_MODULES = ("omegaconf.", "hydra.conf.", "hydra.types.", "hydra._internal.core_plugins.")
_PACKAGES = ("hydra_plugins.", "tftrt_build.config.schema.")
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "bytes"}
_TYPING = {"Any", "Dict", "List", "Optional", "Tuple", "Union"}


class _ConfigUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = (
            (module == "builtins" and name in _BUILTINS)
            or (module == "typing" and name in _TYPING)
            or (module == "collections" and name == "defaultdict")
            or (module + ".").startswith(_MODULES + _PACKAGES)
        )
        found = super().find_class(module, name) if allowed else None
        # Classes only: a function (or a class's method reached by a dotted name) is a call.
        if found is None or (not isinstance(found, type) and module != "typing"):
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a composed config")
        return found


def _tree(folder: Path, suffix: str) -> list[list[str]]:
    """The folders under a folder, and the ``suffix`` files with the digests of their bytes.

    Bytes, not times: a few dozen small files cost a few milliseconds to read, and an edit
    whose mtime was put back is still seen (``mode=check`` trusts no file's times).
    """
    found: list[list[str]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, folder)
        found.append([rel])
        for name in sorted(filenames):
            if name.endswith(suffix):
                data = Path(dirpath, name).read_bytes()
                found.append([f"{rel}/{name}", hashlib.sha256(data).hexdigest()])
    return found


def _newest(folders: list[str]) -> int:
    """The latest mtime of the folders and files under these folders."""
    newest = 0
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in [".", *filenames]:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime_ns)
    return newest


def _sources(folders: list[str]) -> list[list[Any]]:
    return [[folder, _tree(Path(folder), ".yaml")] for folder in folders]


def _source_folder(scheme: str, path: str) -> Path | None:
    """The folder on disk a file:// or pkg:// config source reads; None for anything else."""
    if scheme == "file":
        return Path(path).absolute()
    if scheme == "pkg":
        try:
            found = importlib.resources.files(path.replace("/", "."))
        except (ModuleNotFoundError, TypeError, ValueError):
            return None
        return found if isinstance(found, Path) and found.is_dir() else None
    return None
