"""Config files parsed by libyaml, with OmegaConf's own rules for what the text means.

Hydra reads every config file through ``OmegaConf.load``, which parses with PyYAML's pure-Python
parser: 44 ms for a target listing 128 versions, about 5 ms for each small option file, a fifth
of a warm run. libyaml's parser (PyYAML's ``CParser``) yields the same nodes about six times
faster. Only the parsing changes: constructing values stays OmegaConf's (duplicate keys refused,
its float and no-timestamp resolvers), so a file means the same thing either way.

libyaml words some syntax errors differently and has a nesting limit of its own, so when it
fails the text is parsed again by PyYAML, whose result or error stands: a user sees the same
message, at the same line and column, as without this module.

``omegaconf_loader`` swaps the loader in for as long as its ``with`` block runs (OmegaConf 2.3,
pinned, looks ``get_yaml_loader`` up in ``omegaconf._utils`` on every load).

The other way round, Hydra writes each run's records (``.hydra/config.yaml``, ``hydra.yaml``,
``overrides.yaml``) through OmegaConf's pure-Python dumper: 25 ms a run, 70 ms for a target of
128 versions. ``libyaml_run_records`` has them written by libyaml's emitter under the same
representers (OmegaConf quotes strings that would read back as numbers or booleans). The
values are the same; the text may differ in layout: libyaml folds long strings at other
places and escapes characters outside the Basic Multilingual Plane. ``--cfg`` output, which a
user reads, stays OmegaConf's.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from hydra.core import utils as hydra_utils
from omegaconf import DictConfig, ListConfig, OmegaConf, _utils

from tftrt_build.config.swap import swapped

_CParser: Any
try:
    from yaml import cyaml

    _CParser = getattr(cyaml, "CParser", None)
except ImportError:  # PyYAML built without libyaml
    _CParser = None

_PYTHON_LOADER: type = _utils.get_yaml_loader()


def _c_loader() -> type | None:
    if _CParser is None:
        return None  # PyYAML built without libyaml: OmegaConf's loader as it is

    class LibyamlLoader(_CParser, _PYTHON_LOADER):  # type: ignore[misc]
        """libyaml's parser under OmegaConf's constructor and resolvers."""

        def __init__(self, stream: str | bytes | IO[Any]) -> None:
            self._source: Any = stream
            if hasattr(stream, "read"):
                # Read once, for libyaml and for PyYAML after it; messages keep the file's name.
                data = stream.read()
                self._source = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
                self._source.name = getattr(stream, "name", "<file>")
            _CParser.__init__(self, self._source)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        def get_single_node(self) -> Any:
            try:
                return _CParser.get_single_node(self)
            except yaml.YAMLError:
                # PyYAML's parser decides: its error message, or a node libyaml refused.
                if hasattr(self._source, "seek"):
                    self._source.seek(0)
                return _PYTHON_LOADER(self._source).get_single_node()

    return LibyamlLoader


_LOADER = _c_loader()


@contextlib.contextmanager
def omegaconf_loader() -> Iterator[None]:
    """Config files loaded while this runs are parsed by libyaml (when PyYAML has it)."""
    if _LOADER is None:
        yield
        return
    with swapped(_utils, "get_yaml_loader", lambda: _LOADER):
        yield


def _c_dumper() -> type | None:
    base = getattr(yaml, "CDumper", None)
    if base is None:
        return None  # PyYAML built without libyaml

    class LibyamlDumper(base):  # type: ignore[misc, valid-type]
        """libyaml's emitter under OmegaConf's representers."""

    python_dumper = _utils.get_omega_conf_dumper()  # adds its str representer
    LibyamlDumper.add_representer(str, python_dumper.str_representer)
    return LibyamlDumper


_DUMPER = _c_dumper()


def _save_record(cfg: DictConfig | ListConfig, filename: str, output_dir: Path) -> None:
    """Hydra's ``_save_config``, with libyaml's emitter."""
    data = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    try:
        text = yaml.dump(
            data, Dumper=_DUMPER, default_flow_style=False, allow_unicode=True, sort_keys=False
        )
    except (UnicodeEncodeError, yaml.YAMLError):
        # libyaml refuses what the pure emitter escapes: a name Python decoded from bytes
        # that are not UTF-8 (a folder or an argument, as lone surrogates).
        text = OmegaConf.to_yaml(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / filename).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def libyaml_run_records() -> Iterator[None]:
    """Hydra's run records written while this runs are emitted by libyaml (when PyYAML has it)."""
    if _DUMPER is None:
        yield
        return
    with swapped(hydra_utils, "_save_config", _save_record):
        yield
