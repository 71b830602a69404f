"""Plans: keys, rebuild reasons and staleness, without building or TensorFlow."""

from __future__ import annotations

import dataclasses
import enum
import sys
from typing import Any

from conftest import Project

from tftrt_build.config.schema import Config
from tftrt_build.execute.local import LocalExecutor
from tftrt_build.plan import make_plan
from tftrt_build.plan.keys import plain
from tftrt_build.plan.reasons import changes, stale
from tftrt_build.store.cache import Store
from tftrt_build.store.digest import StatCache
from tftrt_build.store.lock import Lock


def plan_for(compose_request, p: Project, *overrides: str, lock: Lock | None = None):  # type: ignore[no-untyped-def]
    request = compose_request(p.root, *overrides)
    store = Store(p.cache, StatCache(None), readonly=True)
    return make_plan(request, store, LocalExecutor(), lock or Lock())


def test_changes_names_paths_and_values() -> None:
    before = {"args": {"classes": 10, "size": 64}, "seed": 0, "gone": 1}
    after = {"args": {"classes": 12, "size": 64}, "seed": 0, "new": 2}
    assert changes(before, after) == ["args.classes: 10 -> 12", "gone: removed", "new: added"]


def test_plan_keys_are_stable_and_input_addressed(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    a = plan_for(compose_request, project)
    b = plan_for(compose_request, project)
    assert [s.key for s in a.artifacts[0].stages] == [s.key for s in b.artifacts[0].stages]
    c = plan_for(compose_request, project, "model.source.seed=1")
    assert c.artifacts[0].source.key != a.artifacts[0].source.key
    # The convert key follows the source key it consumes.
    assert c.artifacts[0].convert.inputs["source"] == c.artifacts[0].source.key
    # Samples do not change what is built.
    d = plan_for(compose_request, project, "model.samples.count=9")
    assert d.artifacts[0].key == a.artifacts[0].key
    assert "tensorflow" not in sys.modules


def test_reasons_against_a_lock(compose_request, project: Project) -> None:  # type: ignore[no-untyped-def]
    first = plan_for(compose_request, project)
    assert first.artifacts[0].source.reason == "new: not in tftrt.lock"
    lock = Lock(
        {first.artifacts[0].id: first.artifacts[0].to_lock()},
        {first.bundle_id: first.bundle.to_lock()},
    )
    same = plan_for(compose_request, project, lock=lock)
    assert same.artifacts[0].source.reason == "not in the cache (the lock is up to date)"
    assert stale(same) == []
    changed = plan_for(compose_request, project, "model.source.args.classes=7", lock=lock)
    assert changed.artifacts[0].source.reason == "changed: args.classes: 10 -> 7"
    assert changed.artifacts[0].convert.reason.startswith("changed: source: ")
    items = dict(stale(changed))
    assert "demo/native source" in items and "demo/native convert" in items
    assert items["demo/native"].startswith("config changed: model.source.args.classes: 10 -> 7")


def _plain_reference(value: Any) -> Any:
    """What plain did before it kept field names by class: every check on every value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain_reference(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return {str(k): _plain_reference(v) for k, v in items}
    if isinstance(value, list | tuple):
        return [_plain_reference(v) for v in value]
    return value


def test_plain_data_is_what_every_check_on_every_value_made(
    compose_request, project: Project
) -> None:  # type: ignore[no-untyped-def]
    # Keys and the lock are made of plain(...): the fast path must not change a byte of them.
    class Mode(str, enum.Enum):
        fast = "fast"

    request = compose_request(project.root, "profile=fp16")
    art = request.artifacts[0]
    odd = {"b": (1, Mode.fast), 2: [art.profile], "a": {"x": None, "y": 1.5, "z": True}}
    values = (request, art, art.model, art.profile, request.target, odd, Config, Mode.fast)
    for value in values:
        assert plain(value) == _plain_reference(value)
    assert plain(Mode.fast) == "fast" and plain(Config) is Config
