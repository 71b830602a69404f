"""The request a config resolves to: which artifacts to build and how the target serves them.

Plain, frozen data: what every later step reads, from the plan to deploy and verify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tftrt_build.config.schema import (
    ExecutorConf,
    Mode,
    ModelConf,
    ProfileConf,
    TargetConf,
    VerifyMode,
)


class Options(Protocol):
    """Access to the config options of a group, as Hydra composes them."""

    def model(self, name: str) -> ModelConf: ...

    def profile(self, name: str) -> ProfileConf: ...

    def names(self, group: str) -> list[str]: ...

    def file(self, group: str, name: str) -> str | None: ...

    def chosen(self, group: str) -> str | None:
        """The option of a group the command line chose by name (model=resnet50), if any."""
        ...

    def set_keys(self, group: str) -> list[str]:
        """The command line's overrides of keys under a group, as typed."""
        ...

    def on_command_line(self, key: str) -> bool:
        """Whether the command line sets this key."""
        ...

    def content_overrides(self) -> tuple[str, ...]:
        """The command line's overrides of values the lock records (model.*, profile.*,
        target.* but bundle_dir), as typed."""
        ...


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    # The YAML file the option came from, as shown in messages; None for a schema default.
    file: str | None


@dataclass(frozen=True)
class ArtifactSpec:
    """One model built with one profile: what the cache stores and the lock records."""

    model: ModelConf
    profile: ProfileConf
    model_option: Option
    profile_option: Option

    @property
    def id(self) -> str:
        return f"{self.model_option.name}/{self.profile_option.name}"


@dataclass(frozen=True)
class ServedVersion:
    version: int
    artifact: ArtifactSpec


@dataclass(frozen=True)
class ServedModel:
    name: str
    versions: tuple[ServedVersion, ...]
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildRequest:
    project: Path
    mode: Mode
    target: TargetConf
    target_option: Option
    served: tuple[ServedModel, ...]
    executor: ExecutorConf
    cache_dir: Path
    verify: VerifyMode
    lock_path: Path
    bundle_dir: Path
    verbose: bool = False
    # The command line's overrides that make this build an experiment, unless recorded.
    experiment: tuple[str, ...] = ()
    record: bool = False
    # cache.remote (checked: no credentials in it) and cache.remote_required.
    remote: str | None = None
    remote_required: bool = True

    @property
    def records(self) -> bool:
        """Whether a build writes the lock: not for an experiment, unless record=true."""
        return self.record or not self.experiment

    @property
    def artifacts(self) -> list[ArtifactSpec]:
        seen: dict[str, ArtifactSpec] = {}
        for model in self.served:
            for version in model.versions:
                seen.setdefault(version.artifact.id, version.artifact)
        return list(seen.values())
