"""Config files parsed by libyaml mean what OmegaConf's own loader makes of them."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
import yaml
from hydra.core import utils as hydra_utils
from nodetrees import shape
from omegaconf import OmegaConf, _utils

from tftrt_build.config import yamlload
from tftrt_build.config.plainnodes import plain_file_nodes, plain_tree
from tftrt_build.config.schema import Config
from tftrt_build.config.yamlload import libyaml_run_records, omegaconf_loader

original_save_config = hydra_utils._save_config

REPO = Path(__file__).resolve().parent.parent
# Every config file shipped or used by the tests, the broken fixtures too.
CONFIG_FILES = sorted(
    p
    for folder in ("tftrt_build/conf", "examples", "tests/fixtures")
    for p in (REPO / folder).rglob("*.yaml")
)
TRICKY = [
    "a: 1e3\nb: 1.0\nc: .inf\nd: 2001-12-14\ne: 0x1F\nf: 1_000\ng: 1:30\nh: yes\ni: ~\n",
    "x: &a {k: [1, 2]}\ny: *a\n",
    "s: '${model.name}'\nt: \"tab\\there\"\nu: |\n  line one\n  line two\n",
    "a: 1\na: 2\n",  # a duplicate key: OmegaConf's constructor refuses it
    "a: [1, 2\n",  # syntax errors: libyaml words these differently
    "a: {b: 1\n",
    "a:\n\tb: 1\n",
    "a: !!python/name:os.system\n",  # a tag the safe constructor refuses
    "",
    "- 1\n- two\n",
]


def _outcome(text: str) -> object:
    try:
        return OmegaConf.to_container(OmegaConf.load(io.StringIO(text)))
    except yaml.YAMLError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.skipif(yamlload._LOADER is None, reason="PyYAML here is built without libyaml")
def test_the_loader_parses_with_libyaml_inside_the_block_only() -> None:
    original = _utils.get_yaml_loader
    with omegaconf_loader():
        loader = _utils.get_yaml_loader()
        assert any(c.__module__ == "yaml._yaml" for c in loader.__mro__)  # libyaml's CParser
    assert _utils.get_yaml_loader is original


@pytest.mark.parametrize(
    "text",
    TRICKY + [p.read_text() for p in CONFIG_FILES],
    ids=[f"snippet-{i}" for i in range(len(TRICKY))]
    + [str(p.relative_to(REPO)) for p in CONFIG_FILES],
)
def test_a_file_loads_to_the_same_values_and_errors_either_way(text: str) -> None:
    expected = _outcome(text)
    with omegaconf_loader():
        assert _outcome(text) == expected


def test_a_syntax_error_keeps_pyyamls_message_and_position() -> None:
    with omegaconf_loader(), pytest.raises(yaml.MarkedYAMLError) as caught:
        OmegaConf.load(io.StringIO("a: {b: 1\n"))
    # libyaml says "did not find expected ',' or '}'"; the user sees PyYAML's words.
    assert caught.value.problem == "expected ',' or '}', but got '<stream end>'"
    assert caught.value.problem_mark is not None
    assert caught.value.problem_mark.line == 1


@pytest.mark.parametrize("binary", [False, True], ids=["text", "bytes"])
def test_a_files_name_stays_in_the_message(tmp_path: Path, binary: bool) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("a: 1\na: 2\n")
    messages = []
    for block in (contextlib.nullcontext, omegaconf_loader):
        with block(), path.open("rb" if binary else "r") as f, pytest.raises(yaml.YAMLError) as e:
            OmegaConf.load(f)
        messages.append(str(e.value))
    assert str(path) in messages[0]
    assert messages[1] == messages[0]


# Strings whose YAML needs quoting, escaping or folding, for the run records' emitter.
AWKWARD = [
    *("", " ", "a: b", "- x", "'q'", '"dq"', "yes", "no", "on", "1", "1.0", "1e3", ".inf"),
    *("0x1F", "null", "~", "#c", "a #c", "multi\nline", "trail ", "\t tab", "üñí", "😀 x"),
    *("a" * 200, "a " * 60, "{x}", "[y]", "*a", "&b", "!t", "%p", "@at", "`bt", "key:", "?"),
    *("\x07bell", "\u2028sep", "line\r\nwin", "${oc.env:HOME}", "???", "2001-12-14", "<<"),
]


def _records(tmp_path: Path, cfg: object, block: object) -> object:
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    with block():  # type: ignore[operator]
        hydra_utils._save_config(cfg, "config.yaml", folder)
    # Read back as OmegaConf reads YAML (its float rule: 1e3 is a number).
    return yaml.load((folder / "config.yaml").read_text(encoding="utf-8"), _utils.get_yaml_loader())


@pytest.mark.skipif(yamlload._DUMPER is None, reason="PyYAML here is built without libyaml")
@pytest.mark.parametrize(
    "cfg",
    [
        OmegaConf.structured(Config),
        OmegaConf.create({"strings": AWKWARD, "keys": {s: i for i, s in enumerate(AWKWARD)}}),
        OmegaConf.create([1, 2.5, None, True, "${x}", {"n": [Path("a/b").as_posix()]}]),
    ],
    ids=["schema", "awkward strings", "list"],
)
def test_run_records_hold_the_same_values_as_hydras_own(tmp_path: Path, cfg: object) -> None:
    expected = _records(tmp_path, cfg, contextlib.nullcontext)
    assert expected is not None
    with libyaml_run_records():
        assert hydra_utils._save_config is not original_save_config
    assert _records(tmp_path, cfg, libyaml_run_records) == expected
    assert hydra_utils._save_config is original_save_config


def test_a_name_that_is_not_utf8_is_still_recorded(tmp_path: Path) -> None:
    # A folder or an argument whose bytes are not UTF-8 reaches Python as lone surrogates;
    # libyaml refuses them where OmegaConf's dumper escapes them, so the run went down.
    name = os.fsdecode(b"target=caf\xe9")
    cfg = OmegaConf.create({"cwd": name, "list": [name]})
    expected = _records(tmp_path, cfg, contextlib.nullcontext)
    assert _records(tmp_path, cfg, libyaml_run_records) == expected == OmegaConf.to_container(cfg)


PLAIN = [
    "a: {b: [1, 2.5, null, true, '???', '']}\nc: []\nd: {}\n",
    "- {x: 1}\n- [a, [b]]\n- .nan\n",
    "{}\n",
    "a: '${b}'\nb: 1\n",  # an interpolation: OmegaConf makes the nodes
    "a: '${b'\n",  # a broken one: OmegaConf's error
    "1: one\n",  # a key that is not a string
    "a: !!binary aGVsbG8=\n",  # bytes
    "a: 'text'\n",
]


def _loaded(text: str) -> object:
    try:
        return shape(OmegaConf.load(io.StringIO(text)))
    except Exception as exc:  # the error itself is the outcome to compare
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(
    "text",
    PLAIN + TRICKY + [p.read_text() for p in CONFIG_FILES],
    ids=[f"plain-{i}" for i in range(len(PLAIN))]
    + [f"snippet-{i}" for i in range(len(TRICKY))]
    + [str(p.relative_to(REPO)) for p in CONFIG_FILES],
)
def test_a_files_nodes_are_what_omegaconf_makes(text: str) -> None:
    with omegaconf_loader():
        expected = _loaded(text)
        with plain_file_nodes():
            assert _loaded(text) == expected


def test_plain_data_is_made_directly_and_the_rest_by_omegaconf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with plain_file_nodes():
        calls: list[object] = []
        monkeypatch.setattr(OmegaConf, "create", lambda *a, **k: calls.append(a))
        OmegaConf.load(io.StringIO("a: [1, {b: 2}]\n"))
        assert calls == []  # not through OmegaConf.create
        OmegaConf.load(io.StringIO("a: '${b}'\n"))
        assert len(calls) == 1
    made = plain_tree({"a": [1, {"b": None}], "c": "x"})
    assert made is not None and made.a[1].b is None and made.c == "x"
    assert made._get_node("a")._get_parent() is made
    # What OmegaConf converts, refuses or parses as the node is made is left to it.
    assert plain_tree({1: "one"}) is None
    assert plain_tree({"a": b"bytes"}) is None
    assert plain_tree({"a": ["${b}"]}) is None


def test_files_are_loaded_by_omegaconf_outside_the_block(tmp_path: Path) -> None:
    original = vars(OmegaConf)["load"]
    with plain_file_nodes():
        assert vars(OmegaConf)["load"] is not original
        (tmp_path / "c.yaml").write_text("a: 1\n")
        assert OmegaConf.load(tmp_path / "c.yaml") == {"a": 1}
        assert OmegaConf.load(str(tmp_path / "c.yaml")) == {"a": 1}
        with pytest.raises(TypeError):
            OmegaConf.load(1)  # type: ignore[arg-type]
    assert vars(OmegaConf)["load"] is original
