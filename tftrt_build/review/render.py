"""A review as text (a terminal, a CI log), Markdown (a pull request comment) or JSON (tools).

Pure: each function returns the document; the CLI prints it or writes it to ``diff.output``.
The Markdown starts with a hidden marker (``MARKER``) so a CI job can find and update its own
comment, puts the warnings first, and folds each target into a ``<details>`` block, open when
the target changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tftrt_build.config.schema import DiffFormat
from tftrt_build.plan.reasons import Change
from tftrt_build.review.records import (
    ADDED,
    REBUILT,
    REMOVED,
    UNCHANGED,
    ArtifactDiff,
    Review,
    ServingChange,
    TargetDiff,
)

MARKER = "<!-- tftrt-build:diff -->"
NONE = "—"
RECIPE = "no config key, file or toolchain moved (a new key recipe)"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Longer values (a list of batch sizes, a whole mapping) are cut; the JSON keeps them whole.
LONGEST = 80


def show(value: Any) -> str:
    """A value as a reviewer reads it: digests cut to 12 characters, names and paths whole."""
    if isinstance(value, str):
        return value[:12] + "…" if _DIGEST.match(value) else value
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= LONGEST else text[: LONGEST - 1] + "…"


def change_line(c: Change) -> str:
    """'path: old -> new' (or 'path: added'), values shown whole but for digests."""
    if c.kind != "changed":
        return f"{c.path}: {c.kind}"
    return f"{c.path}: {show(c.before)} -> {show(c.after)}"


def render(review: Review, fmt: DiffFormat) -> str:
    if fmt is DiffFormat.json:
        return json.dumps(review.to_json(), indent=2, sort_keys=True) + "\n"
    if fmt is DiffFormat.markdown:
        return markdown(review)
    return text(review)


def summary(review: Review) -> str:
    """One line: how many targets change, how many warnings, how many block."""
    changed = len(review.changed)
    line = f"{len(review.targets)} target{'s' if len(review.targets) != 1 else ''}: "
    line += f"{changed} changed, {len(review.targets) - changed} unchanged"
    if review.warnings:
        line += f"; {len(review.warnings)} warning{'s' if len(review.warnings) != 1 else ''}"
        line += f", {len(review.blocking)} blocking (diff.blocking)"
    else:
        line += "; no warnings"
    return line


def base_line(review: Review) -> str:
    base = review.base
    if not base.found:
        return f"compared with {base.description}, which has no lock: every bundle is new"
    return f"compared with {base.description}"


def moved(a: ArtifactDiff) -> list[Change]:
    """What moved for an artifact: config keys, then files (as "file <path>"), then the rest."""
    files = [Change(f"file {c.path}", c.before, c.after, c.kind) for c in a.files]
    return [*a.config, *files, *a.toolchain, *a.inputs]


def reasons(a: ArtifactDiff) -> list[str]:
    """Why an artifact is rebuilt or changed, one line per thing that moved."""
    lines = [change_line(c) for c in moved(a)]
    if a.status == REBUILT and not lines:
        lines.append(RECIPE)
    return lines


def values(c: ServingChange) -> tuple[str, str]:
    """A serving change's before and after, as short text; NONE for a side that lacks it."""
    return (
        NONE if c.change == ADDED else _value(c.what, c.before),
        NONE if c.change == REMOVED else _value(c.what, c.after),
    )


def _value(what: str, value: Any) -> str:
    if what == "version" and isinstance(value, dict):
        return f"{value['artifact']} ({value.get('precision') or '?'})"
    if what == "label" and isinstance(value, dict):
        return f"version {value['version']} ({value.get('precision') or '?'})"
    if what == "model":
        return "served"
    return show(value)


def describe(c: ServingChange) -> str:
    before, after = values(c)
    name = {"warmup": "warm-up records of", "parameter": "", "file": "file"}.get(c.what, c.what)
    head = f"{name} {c.item}".strip()
    if c.what == "model" or (c.what == "file" and c.change not in (ADDED, REMOVED)):
        return f"{head}: {c.change}"  # a file's digests say nothing to a reader
    if c.change == ADDED:
        return f"{head}: added, {after}"
    if c.change == REMOVED:
        return f"{head}: removed, was {before}"
    return f"{head}: {before} -> {after}"


def _key(value: str | None) -> str:
    return value[:12] if value else NONE


def _artifact_key(a: ArtifactDiff) -> str:
    if a.status in (ADDED, REMOVED) or a.before == a.after:
        return _key(a.after or a.before)
    return f"{_key(a.before)} -> {_key(a.after)}"


def _target_title(t: TargetDiff) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in t.counts.items())
    return f"{t.bundle} (target {t.target}): {t.status}" + (
        f"; artifacts: {counts}" if counts else ""
    )


def text(review: Review) -> str:
    out = [f"tftrt-build diff: the working tree's configs {base_line(review)}", ""]
    for t in review.targets:
        out.append(_target_title(t))
        if t.status == UNCHANGED:
            continue
        out.append("  artifacts:")
        width = max(len(a.id) for a in t.artifacts) if t.artifacts else 0
        for a in t.artifacts:
            precision = a.precision or "?"
            out.append(f"    {a.status:<9}  {a.id:<{width}}  {precision:<4}  {_artifact_key(a)}")
            out += [f"      {line}" for line in reasons(a)]
        if t.serving:
            out.append("  TF Serving:")
            out += [f"    {describe(c)}" for c in t.serving]
        out += [f"  note: {n}" for n in t.notes]
    if review.targets:
        out.append("")
    if review.warnings:
        out.append("warnings:")
        for w in review.warnings:
            flag = "BLOCKING " if w.blocking else ""
            out.append(f"  {flag}{w.kind.value}: {w.bundle}: {w.message}")
        out.append("")
    out += [f"note: {n}" for n in review.notes]
    out.append(summary(review))
    return "\n".join(out) + "\n"


def _md(value: str) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return value.replace("|", "\\|").replace("\n", " ")


def _code(value: str) -> str:
    return f"`{_md(value)}`" if value and value != NONE else NONE


def markdown(review: Review) -> str:
    out = [MARKER, "### tftrt-build diff", ""]
    out += [f"The working tree's configs {_md(base_line(review))}.", ""]
    out += [f"**{summary(review)}**", ""]
    if review.warnings:
        out += ["| | warning | bundle | what |", "| --- | --- | --- | --- |"]
        for w in review.warnings:
            flag = ":no_entry: **blocking**" if w.blocking else ":warning:"
            out.append(f"| {flag} | `{w.kind.value}` | {_code(w.bundle)} | {_md(w.message)} |")
        out.append("")
    for t in review.targets:
        out += _markdown_target(t)
    out += [f"- {_md(n)}" for n in review.notes]
    return "\n".join(out).rstrip("\n") + "\n"


def _markdown_target(t: TargetDiff) -> list[str]:
    opened = " open" if t.status != UNCHANGED else ""
    counts = ", ".join(f"{n} {status}" for status, n in t.counts.items())
    title = (
        f"<code>{_html(t.bundle)}</code> (target <code>{_html(t.target)}</code>): "
        f"<b>{t.status}</b>" + (f"; artifacts: {counts}" if counts else "")
    )
    out = [f"<details{opened}>", f"<summary>{title}</summary>", ""]
    if t.artifacts:
        out += [
            "| artifact | status | precision | key | what moved |",
            "| --- | --- | --- | --- | --- |",
        ]
        for a in t.artifacts:
            lines = [_md_change(c) for c in moved(a)] or ([RECIPE] if a.status == REBUILT else [])
            key = " → ".join(_code(k) for k in _artifact_key(a).split(" -> "))
            out.append(
                f"| `{_md(a.id)}` | {a.status} | {a.precision or '?'} | {key} | "
                f"{'<br>'.join(lines)} |"
            )
        out.append("")
    serving = [c for c in t.serving if c.what != "file"]
    if serving:
        out += ["| TF Serving | item | before | after |", "| --- | --- | --- | --- |"]
        for c in serving:
            before, after = values(c)
            what = {"warmup": "warm-up records"}.get(c.what, c.what)
            out.append(
                f"| {what} {c.change} | {_code(c.item)} | {_code(before)} | {_code(after)} |"
            )
        out.append("")
    files = [c for c in t.serving if c.what == "file"]
    if files:
        out += [f"<details><summary>{len(files)} rendered file(s) change</summary>", ""]
        out += [f"- `{_md(c.item)}`: {c.change}" for c in files]
        out += ["", "</details>", ""]
    out += [f"- {_md(n)}" for n in t.notes]
    if t.notes:
        out.append("")
    out += ["</details>", ""]
    return out


def _md_change(c: Change) -> str:
    if c.kind != "changed":
        return f"`{_md(c.path)}`: {c.kind}"
    return f"`{_md(c.path)}`: {_md(show(c.before))} → {_md(show(c.after))}"


def _html(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
