"""Composed-config records (``<cache>/composed/``): each fault that must make a record unused.

A record spares a single run Hydra's compose (``tftrt_build.cli.composed``); using a wrong
one would run a config the user no longer wrote. Each row of ``FAULTS`` writes a record of a
real compose (Hydra's compose API, in-process, in a project with an option of its own), does
one thing to it or to what it was composed from, and says whether the next run may use it.
The end-to-end cases through the console script (a hit composes nothing, an edit is seen, a
refused config or a sweep writes no record) are in ``tests/test_warm_path.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tftrt_build.cli.composed import FOLDER, ComposeCache

MINE = "name: mine\nsource: {kind: export, script: models/demo.py}\n"
ARGS: tuple[Any, ...] = ("tftrt_build", ["model=mine"], RunMode.RUN, True, True)


@dataclass
class Setup:
    root: Path
    record: Path
    marker: Path  # what a planted pickle would create if it ran

    def rewrite(self, change: Callable[[dict[str, Any]], None]) -> None:
        body = json.loads(self.record.read_text())
        change(body)
        self.record.write_text(json.dumps(body))

    def plant(self, obj: object) -> None:
        """Replace the config with another pickle, its digest made to match."""
        data = pickle.dumps(obj)

        def swap(body: dict[str, Any]) -> None:
            body["config"] = base64.b64encode(data).decode()
            body["sha256"] = hashlib.sha256(data).hexdigest()

        self.rewrite(swap)


class RunsACommand:
    """What an attacker would plant: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class CallsAnAllowedModulesFunction:
    """A function of a module a config is made of (OmegaConf.save writes a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (OmegaConf.save, ({"x": 1}, str(self.marker)))


def _option(s: Setup, name: str) -> Path:
    return s.root / "conf" / "model" / name


def _edit_option(s: Setup) -> None:
    option = _option(s, "mine.yaml")
    st = option.stat()
    option.write_text(MINE.replace("demo.py", "demx.py"))  # same size
    os.utime(option, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its mtime put back


FAULTS = [
    ("intact", lambda s: None, True),
    ("truncated", lambda s: s.record.write_text(s.record.read_text()[:100]), False),
    ("config-bytes-flipped", lambda s: s.rewrite(lambda b: b.update(sha256="0" * 64)), False),
    ("planted-os-system", lambda s: s.plant(RunsACommand(s.marker)), False),
    ("planted-allowed-function", lambda s: s.plant(CallsAnAllowedModulesFunction(s.marker)), False),
    ("option-edited-mtime-restored", _edit_option, False),
    (
        "option-added",
        lambda s: (s.root / "conf" / "model" / "new.yaml").write_text("name: n\n"),
        False,
    ),
    ("option-removed", lambda s: (s.root / "conf" / "model" / "mine.yaml").unlink(), False),
    (
        "env-copy-changed",
        lambda s: s.rewrite(lambda b: b.update(env={"TFTRT_NOT_SET": "1"})),
        False,
    ),
]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Setup, ComposeCache]]:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from tftrt_build.config.schema import register_configs

    root = tmp_path / "p"
    (root / "conf" / "model").mkdir(parents=True)
    (root / "conf" / "model" / "mine.yaml").write_text(MINE)
    (root / ".tftrt-cache").mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv("TFTRT_CACHE_DIR", raising=False)
    monkeypatch.delenv("TFTRT_UNSET", raising=False)
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("tftrt_build.conf", version_base="1.3"):
        cfg = compose("tftrt_build", ["model=mine"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    cache = ComposeCache(["model=mine"], root)
    key = cache._key([], *ARGS)
    # Recorded as if the compose had started a minute from now: the files are not "racy".
    cache._record(key, cfg, time.time_ns() + 60 * 10**9)
    cache.keep()
    (record,) = (root / ".tftrt-cache" / FOLDER).iterdir()
    yield Setup(root, record, tmp_path / "marker"), cache


@pytest.mark.parametrize(("fault", "used"), [pytest.param(d, u, id=i) for i, d, u in FAULTS])
def test_a_record_is_used_only_as_it_was_written(
    setup: tuple[Setup, ComposeCache], fault: Callable[[Setup], None], used: bool
) -> None:
    s, cache = setup
    fault(s)
    found = cache._load(cache._key([], *ARGS))
    assert (found is not None) == used
    if used:
        assert isinstance(found, DictConfig)
        assert found.model.name == "mine" and found.hydra.runtime.choices.model == "mine"
    assert not s.marker.exists(), "a planted pickle ran"


def test_a_record_is_not_written_when_a_config_file_is_newer_than_two_seconds(
    setup: tuple[Setup, ComposeCache],
) -> None:
    s, cache = setup
    s.record.unlink()
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("tftrt_build.conf", version_base="1.3"):
        cfg = compose("tftrt_build", ["model=mine"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    # mine.yaml was written a moment ago: it may change again within its mtime tick.
    cache._record(cache._key([], *ARGS), cfg, time.time_ns())
    cache.keep()
    assert list((s.root / ".tftrt-cache" / FOLDER).iterdir()) == []
