"""The source stage: get the SavedModel a model config describes, by export, archive or folder.

``inputs()`` is what the stage's cache key is made of: content digests and parameters, never
paths or times, so two machines agree on it. ``obtain()`` does the work into a staging folder.

What enters the staging folder holds folders and regular files only (``execute.trees``): a
link in an archive or a local folder is resolved to a copy of its target when that is a file
of the SavedModel folder kept, else refused naming it. A downloaded archive is kept under its
sha256 in ``downloads/`` and hashed again every time it is used, so a replaced file is
downloaded afresh rather than served under the pin. It is fetched into an owner-named
temporary path of the cache (``store.tmp``) and renamed into ``downloads/`` once it matches.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tftrt_build.config.paths import find_file, under
from tftrt_build.config.schema import ModelConf, SourceKind
from tftrt_build.errors import ConfigError, SourceError, did_you_mean
from tftrt_build.execute.task import RUNNER_FORMAT, Executor, LogSink, Task
from tftrt_build.execute.trees import copy_plain, make_plain, plain_copy_plan
from tftrt_build.stages.archive import Limits, download, extract, io_problem
from tftrt_build.stages.signature import check_signature
from tftrt_build.store.digest import Progress, StatCache, hash_file, hash_tree, sha256_file
from tftrt_build.store.tmp import Scratch

log = logging.getLogger(__name__)

# How an archive gets its pin: the digest of one trusted download.
PIN_HINT = (
    "run tftrt-build mode=build once where the archive can be fetched and paste the sha256 it "
    "prints, or set model.source.sha256=<64 hex digits>"
)


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
                "inputs": self.model.input_specs(),
                "outputs": list(self.model.outputs),
                "runner": RUNNER_FORMAT,
            }
        if src.kind is SourceKind.archive:
            if not src.sha256:
                if self.fetch_unpinned:
                    try:
                        self.fetch(progress)  # raises, naming the archive's sha256
                    except SourceError as exc:
                        raise ConfigError(
                            f"is not set, and getting the archive to compute it failed: {exc}",
                            key="model.source.sha256",
                            file=self.file,
                            hint=PIN_HINT,
                        ) from exc
                raise ConfigError(
                    "is not set: an archive must be pinned by its sha256",
                    key="model.source.sha256",
                    file=self.file,
                    hint=PIN_HINT,
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
        # Refuse a link out of the folder before its files are hashed (through the link).
        plain_copy_plan(folder, self._refuse_local)
        return folder

    def _refuse_local(self, rel: str, problem: str) -> SourceError:
        return SourceError(
            f"{self.model.source.path}/{rel} {problem}: a local source's links must point at "
            "files inside its folder"
        )

    def obtain(self, dest: Path, log: LogSink, progress: Progress | None = None) -> dict[str, Any]:
        """Put the SavedModel into ``dest`` and return its description (MetaGraphs, signatures)."""
        src = self.model.source
        if src.kind is SourceKind.export:
            assert src.script is not None
            script = find_file(src.script, self.project, "model.source.script", self.file)
            deps = tuple(
                find_file(dep, self.project, f"model.source.deps[{i}]", self.file)
                for i, dep in enumerate(src.deps)
            )
            inputs = self.inputs()
            params = {k: inputs[k] for k in ("args", "seed", "signature", "inputs", "outputs")}
            task = Task(
                "export",
                params,
                {"script": script},
                dest,
                f"export of {src.script}",
                companions={"script": deps},
            )
            report = self._run(task, log)
        else:
            if src.kind is SourceKind.archive:
                self._unpack(self.fetch(progress), dest)
            else:
                self._copy_local(dest)
            task = Task("inspect", {}, {"model": dest}, None, "reading the SavedModel")
            report = self._run(task, log)
        check_signature(self.model, report, self.file)
        return report

    def _run(self, task: Task, log: LogSink) -> dict[str, Any]:
        try:
            return self.executor.run(task, log)
        except ConfigError as exc:
            # The model is not what its config says (model.outputs): the model's file is to blame.
            raise exc.located(self.file) from exc

    def _copy_local(self, dest: Path) -> None:
        folder = self._local_folder()
        try:
            copy_plain(folder, dest, self._refuse_local)
        except OSError as exc:
            step = f"copy {self.model.source.path} into {dest}"
            raise SourceError(io_problem(exc, step)) from exc

    def fetch(self, progress: Progress | None = None) -> Path:
        """The archive file, checked against its pin every time it is used.

        A download is kept in the cache's downloads/ under its sha256; one that no longer
        hashes to its name (replaced, damaged) is removed and downloaded again.
        """
        src = self.model.source
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
        pin = (src.sha256 or "").lower()
        if pin and (cached := self.downloads / pin).is_file():
            if sha256_file(cached) == pin:
                return cached
            log.warning("%s no longer has sha256 %s: downloading %s again", cached, pin, src.url)
            cached.unlink()
        try:
            self.downloads.mkdir(parents=True, exist_ok=True)
            # An owner-named temporary path of the cache (downloads/ is in it): a kill leaves it
            # for the next build's clean-up, which spares it while its download runs.
            scratch = Scratch(self.downloads.parent)
            part = scratch.path("download", near=self.downloads, suffix=".part")
        except OSError as exc:
            raise SourceError(io_problem(exc, f"prepare the download of {src.url}")) from exc
        try:
            download(src.url, part, progress)
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

    def limits(self, archive: Path) -> Limits:
        src = self.model.source
        size = archive.stat().st_size
        return Limits(
            max_bytes=int(size * src.max_unpacked_ratio),
            max_members=src.max_members,
            bytes_reason=(
                f"{src.max_unpacked_ratio:g} x the archive's {size} bytes: "
                "model.source.max_unpacked_ratio"
            ),
        )

    def _unpack(self, archive: Path, dest: Path) -> None:
        label = self.model.source.path or self.model.source.url or archive.name
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix="unpack-") as tmp:
            root = Path(tmp)
            extract(archive, root, label, self.limits(archive))
            folder = self._saved_model_folder(root)
            kept = folder.relative_to(root).as_posix()

            def refuse(rel: str, problem: str) -> SourceError:
                return SourceError(
                    f"{label}: member '{kept}/{rel}' {problem} ('{kept}'); links are resolved "
                    "only to files of the SavedModel folder"
                )

            try:
                # Before the folder moves: links are judged where the archive put them.
                make_plain(folder, refuse)
                for child in folder.iterdir():
                    shutil.move(str(child), dest / child.name)
            except OSError as exc:
                raise SourceError(io_problem(exc, f"unpack {label} into {dest}")) from exc

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
