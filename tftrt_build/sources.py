"""The source stage: get the SavedModel a model config describes, by export, archive or folder.

``inputs()`` is what the stage's cache key is made of: content digests and parameters, never
paths or times, so two machines agree on it. ``obtain()`` does the work into a staging folder.
"""

from __future__ import annotations

import importlib.util
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from tftrt_build.digest import Progress, StatCache, hash_file, hash_tree, sha256_file
from tftrt_build.errors import ConfigError, SourceError, did_you_mean
from tftrt_build.executors import RUNNER_FORMAT, Executor, LogSink, Task
from tftrt_build.fs import under
from tftrt_build.schema import ModelConf, SourceKind


def builtin_models() -> Path:
    """tftrt-build's own models/ folder, shipped as the package tftrt_build.models."""
    spec = importlib.util.find_spec("tftrt_build.models")
    if spec is None or not spec.submodule_search_locations:
        # A source checkout without the package mapping (compat editable install).
        return Path(__file__).resolve().parents[1] / "models"
    return Path(next(iter(spec.submodule_search_locations)))


def find_file(rel: str, project: Path, key: str, file: str | None) -> Path:
    """A file named in a config: in the project first, then among tftrt-build's own models/."""
    path = Path(rel).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [project / path]
        if path.parts[0] == "models":
            candidates.append(builtin_models().joinpath(*path.parts[1:]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"file '{rel}' not found in {project}", key=key, file=file)


class Source:
    def __init__(
        self,
        model: ModelConf,
        file: str | None,
        project: Path,
        stat_cache: StatCache,
        executor: Executor,
        downloads: Path,
        fetch_unpinned: bool = False,
    ) -> None:
        self.model = model
        # Download an archive that has no sha256 pin, only to tell the user its sha256.
        self.fetch_unpinned = fetch_unpinned
        self.file = file
        self.project = project
        self.stat_cache = stat_cache
        self.executor = executor
        self.downloads = downloads
        self._inputs: dict[str, Any] | None = None

    @property
    def kind(self) -> SourceKind:
        return self.model.source.kind

    def inputs(self, progress: Progress | None = None) -> dict[str, Any]:
        if self._inputs is None:
            self._inputs = self._compute_inputs(progress)
        return self._inputs

    def _compute_inputs(self, progress: Progress | None) -> dict[str, Any]:
        src = self.model.source
        if src.kind is SourceKind.export:
            assert src.script is not None
            script = find_file(src.script, self.project, "model.source.script", self.file)
            deps = {
                dep: hash_file(
                    find_file(dep, self.project, f"model.source.deps[{i}]", self.file),
                    self.stat_cache,
                )
                for i, dep in enumerate(src.deps)
            }
            return {
                "kind": "export",
                "script": src.script,
                "script_digest": hash_file(script, self.stat_cache, progress),
                "deps": deps,
                "args": dict(src.args),
                "seed": src.seed,
                "signature": self.model.signature,
                "inputs": [
                    {"name": i.name, "dtype": i.dtype, "shape": list(i.shape)}
                    for i in self.model.inputs
                ],
                "outputs": list(self.model.outputs),
                "runner": RUNNER_FORMAT,
            }
        if src.kind is SourceKind.archive:
            if not src.sha256:
                if self.fetch_unpinned:
                    self.fetch(progress)  # raises, naming the archive's sha256
                raise ConfigError(
                    "is not set: an archive must be pinned by its sha256",
                    key="model.source.sha256",
                    file=self.file,
                    hint="run mode=build once to be told the archive's sha256",
                )
            return {"kind": "archive", "sha256": src.sha256.lower(), "subdir": src.subdir or ""}
        assert src.path is not None
        folder = self._local_folder()
        return {"kind": "local", "tree": hash_tree(folder, self.stat_cache, progress).digest}

    def toolchain(self) -> dict[str, str]:
        # Only an export runs TensorFlow code that decides the bytes of the SavedModel.
        if self.kind is not SourceKind.export:
            return {}
        found = self.executor.toolchain()
        return {**self.executor.identity(), **{n: found[n] for n in ("tensorflow", "keras")}}

    def _local_folder(self) -> Path:
        assert self.model.source.path is not None
        folder = under(self.project, self.model.source.path)
        if not (folder / "saved_model.pb").is_file():
            raise ConfigError(
                f"'{self.model.source.path}' holds no saved_model.pb",
                key="model.source.path",
                file=self.file,
            )
        return folder

    def obtain(self, dest: Path, log: LogSink, progress: Progress | None = None) -> dict[str, Any]:
        """Put the SavedModel into ``dest`` and return its description (MetaGraphs, signatures)."""
        src = self.model.source
        if src.kind is SourceKind.export:
            assert src.script is not None
            script = find_file(src.script, self.project, "model.source.script", self.file)
            inputs = self.inputs()
            params = {k: inputs[k] for k in ("args", "seed", "signature", "inputs", "outputs")}
            task = Task("export", params, {"script": script}, dest, f"export of {src.script}")
            report = self.executor.run(task, log)
        else:
            if src.kind is SourceKind.archive:
                self._unpack(self.fetch(progress), dest)
            else:
                shutil.copytree(self._local_folder(), dest, dirs_exist_ok=True)
            task = Task("inspect", {}, {"model": dest}, None, "reading the SavedModel")
            report = self.executor.run(task, log)
        check_signature(self.model, report, self.file)
        return report

    def fetch(self, progress: Progress | None = None) -> Path:
        """The archive file, downloaded once into the cache's downloads/ and checked."""
        src = self.model.source
        pin = (src.sha256 or "").lower()
        if pin and (cached := self.downloads / pin).is_file():
            return cached
        if src.path:
            archive = under(self.project, src.path)
            if not archive.is_file():
                raise ConfigError(
                    f"'{src.path}' is not a file", key="model.source.path", file=self.file
                )
            digest = sha256_file(archive, progress)
            self._check_pin(digest, str(archive))
            return archive
        assert src.url is not None
        self.downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.downloads, suffix=".part", delete=False) as f:
            part = Path(f.name)
        try:
            _download(src.url, part, progress, self.file)
            digest = sha256_file(part)
            self._check_pin(digest, src.url)
            final = self.downloads / digest
            part.rename(final)
            return final
        finally:
            part.unlink(missing_ok=True)

    def _check_pin(self, digest: str, where: str) -> None:
        pin = (self.model.source.sha256 or "").lower()
        if not pin:
            raise ConfigError(
                f"is not set; {where} has sha256 {digest}: add it to pin the archive",
                key="model.source.sha256",
                file=self.file,
            )
        if digest != pin:
            raise SourceError(
                f"{where} has sha256 {digest}, but {self.file or 'the model'} pins "
                f"model.source.sha256 {pin}: the archive changed or the pin is wrong"
            )

    def _unpack(self, archive: Path, dest: Path) -> None:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix="unpack-") as tmp:
            root = Path(tmp)
            _extract(archive, root)
            folder = self._saved_model_folder(root)
            for child in folder.iterdir():
                shutil.move(str(child), dest / child.name)

    def _saved_model_folder(self, root: Path) -> Path:
        subdir = self.model.source.subdir
        found = sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("saved_model.pb"))
        if subdir:
            if subdir.strip("/") not in found:
                raise ConfigError(
                    f"the archive has no SavedModel in '{subdir}' (SavedModels: "
                    f"{', '.join(found) or 'none'})",
                    key="model.source.subdir",
                    file=self.file,
                    hint=did_you_mean(subdir, found),
                )
            return root / subdir.strip("/")
        if len(found) != 1:
            what = ", ".join(found) if found else "no saved_model.pb"
            raise ConfigError(
                f"the archive holds {what}; name the folder to use",
                key="model.source.subdir",
                file=self.file,
            )
        return root / found[0]


def _download(url: str, part: Path, progress: Progress | None, file: str | None) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            with Path(parsed.path).open("rb") as src, part.open("wb") as out:
                shutil.copyfileobj(src, out)
        except OSError as exc:
            raise SourceError(f"cannot read {url}: {exc.strerror}") from exc
        return
    if parsed.scheme not in ("http", "https"):
        raise ConfigError(
            f"'{url}' is not an http, https or file URL", key="model.source.url", file=file
        )
    import requests

    try:
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            with part.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
    except requests.RequestException as exc:
        raise SourceError(f"cannot download {url}: {exc}") from exc


def _extract(archive: Path, root: Path) -> None:
    """Unpack a tar or zip archive, refusing members that would land outside ``root``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(name)
                zf.extractall(root)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(root, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"cannot unpack {archive.name}: {exc}") from exc


def _check_member(name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise SourceError(f"archive member '{name}' would be written outside the archive folder")


def check_signature(model: ModelConf, report: dict[str, Any], file: str | None) -> None:
    """The SavedModel must have the model's tag set, signature and declared inputs."""
    graphs = report.get("meta_graphs", [])
    wanted = sorted(model.tags)
    graph = next((g for g in graphs if g["tags"] == wanted), None)
    if graph is None:
        have = "; ".join(",".join(g["tags"]) for g in graphs) or "none"
        raise ConfigError(
            f"no MetaGraph has tags {wanted} (tag sets: {have})", key="model.tags", file=file
        )
    signatures = graph["signatures"]
    if model.signature not in signatures:
        raise ConfigError(
            f"the SavedModel has no signature '{model.signature}' "
            f"(signatures: {', '.join(sorted(signatures)) or 'none'})",
            key="model.signature",
            file=file,
            hint=did_you_mean(model.signature, signatures),
        )
    sig = signatures[model.signature]
    for i, spec in enumerate(model.inputs):
        actual = sig["inputs"].get(spec.name)
        if actual is None:
            raise ConfigError(
                f"'{spec.name}' is not an input of signature '{model.signature}' "
                f"(inputs: {', '.join(sorted(sig['inputs']))})",
                key=f"model.inputs[{i}].name",
                file=file,
                hint=did_you_mean(spec.name, sig["inputs"]),
            )
        if actual["dtype"] != spec.dtype:
            raise ConfigError(
                f"the SavedModel's '{spec.name}' is {actual['dtype']}, not {spec.dtype}",
                key=f"model.inputs[{i}].dtype",
                file=file,
            )
        shape = actual["shape"]
        if shape is not None and not _compatible(shape, list(spec.shape)):
            raise ConfigError(
                f"the SavedModel's '{spec.name}' has shape {shape}, not {list(spec.shape)}",
                key=f"model.inputs[{i}].shape",
                file=file,
            )
    declared = {spec.name for spec in model.inputs}
    if missing := sorted(set(sig["inputs"]) - declared):
        raise ConfigError(
            f"signature '{model.signature}' also needs input '{missing[0]}'; declare it",
            key="model.inputs",
            file=file,
        )
    for i, name in enumerate(model.outputs):
        if name not in sig["outputs"]:
            raise ConfigError(
                f"'{name}' is not an output of signature '{model.signature}' "
                f"(outputs: {', '.join(sorted(sig['outputs']))})",
                key=f"model.outputs[{i}]",
                file=file,
                hint=did_you_mean(name, sig["outputs"]),
            )


def _compatible(actual: list[int], declared: list[int]) -> bool:
    return len(actual) == len(declared) and all(
        a == d or a == -1 or d == -1 for a, d in zip(actual, declared, strict=True)
    )
