"""Resolve: a composed config becomes a checked ``BuildRequest`` or one ``ConfigError``.

Everything here is pure: no file is written and TensorFlow is never imported. Options that a
target names (other models and profiles) come through ``Options``, which loads them from the
same search path Hydra composed the command line's config from.
"""

from __future__ import annotations

from pathlib import Path

from tftrt_build.config.checks import (
    LABEL,
    check_model,
    check_served_artifact,
    check_target,
)
from tftrt_build.config.paths import under
from tftrt_build.config.profiles import check_profile
from tftrt_build.config.request import (
    ArtifactSpec,
    BuildRequest,
    Option,
    Options,
    ServedModel,
    ServedVersion,
)
from tftrt_build.config.schema import Config, ModelConf, ProfileConf, TargetConf
from tftrt_build.errors import ConfigError, did_you_mean


def resolve(cfg: Config, choices: dict[str, str], options: Options, project: Path) -> BuildRequest:
    """Check the config and expand the target into the artifacts it serves."""
    target_option = Option("target", choices["target"], options.file("target", choices["target"]))
    target = cfg.target
    check_target(target, target_option.file)
    served: list[ServedModel] = []
    if not target.models:
        artifact = _artifact(cfg.model, cfg.profile, choices["model"], choices["profile"], options)
        served.append(ServedModel(cfg.model.name, (ServedVersion(1, artifact),)))
    else:
        served = _served_models(target, target_option.file, options)
    _check_unique_names(served, target_option.file)
    for model in served:
        for version in model.versions:
            check_served_artifact(version.artifact, target)
    cache_dir = under(project, cfg.cache.dir)
    bundle_dir = under(project, target.bundle_dir)
    _check_bundle_dir(bundle_dir, project, cache_dir, target_option.file)
    return BuildRequest(
        project=project,
        mode=cfg.mode,
        target=target,
        target_option=target_option,
        served=tuple(served),
        executor=cfg.executor,
        cache_dir=cache_dir,
        verify=cfg.cache.verify,
        lock_path=under(project, cfg.lock),
        bundle_dir=bundle_dir,
        verbose=cfg.verbose,
    )


def _artifact(
    model: ModelConf, profile: ProfileConf, model_name: str, profile_name: str, options: Options
) -> ArtifactSpec:
    model_option = Option("model", model_name, options.file("model", model_name))
    profile_option = Option("profile", profile_name, options.file("profile", profile_name))
    check_model(model, model_option.file)
    check_profile(profile, model, profile_option.file)
    return ArtifactSpec(model, profile, model_option, profile_option)


def _served_models(
    target: TargetConf, target_file: str | None, options: Options
) -> list[ServedModel]:
    served = []
    for i, entry in enumerate(target.models):
        key = f"target.models[{i}]"
        model_name = _known(options, "model", entry.model, f"{key}.model", target_file)
        model = options.model(model_name)
        if not entry.versions:
            raise ConfigError("lists no versions", key=f"{key}.versions", file=target_file)
        versions: list[ServedVersion] = []
        for j, v in enumerate(entry.versions):
            vkey = f"{key}.versions[{j}]"
            if v.version < 1:
                raise ConfigError(
                    f"version {v.version} is not a positive integer",
                    key=f"{vkey}.version",
                    file=target_file,
                )
            if any(s.version == v.version for s in versions):
                raise ConfigError(
                    f"version {v.version} of model '{model.name}' is listed twice",
                    key=f"{vkey}.version",
                    file=target_file,
                )
            profile_name = _known(options, "profile", v.profile, f"{vkey}.profile", target_file)
            artifact = _artifact(
                model, options.profile(profile_name), model_name, profile_name, options
            )
            versions.append(ServedVersion(v.version, artifact))
        numbers = sorted(s.version for s in versions)
        for label, number in sorted(entry.labels.items()):
            if not LABEL.match(label):
                raise ConfigError(
                    f"label '{label}' must start with a letter and use letters, digits, _ or -",
                    key=f"{key}.labels.{label}",
                    file=target_file,
                )
            if number not in numbers:
                raise ConfigError(
                    f"label '{label}' points at version {number}, which is not served "
                    f"(versions: {', '.join(map(str, numbers))})",
                    key=f"{key}.labels.{label}",
                    file=target_file,
                )
        served.append(ServedModel(model.name, tuple(versions), dict(entry.labels)))
    return served


def _known(options: Options, group: str, name: str, key: str, file: str | None) -> str:
    names = options.names(group)
    if name not in names:
        raise ConfigError(
            f"no {group} option '{name}'", key=key, file=file, hint=did_you_mean(name, names)
        )
    return name


def _check_unique_names(served: list[ServedModel], target_file: str | None) -> None:
    seen: set[str] = set()
    for i, model in enumerate(served):
        if model.name in seen:
            raise ConfigError(
                f"two entries serve a model named '{model.name}'",
                key=f"target.models[{i}].model",
                file=target_file,
            )
        seen.add(model.name)


def _check_bundle_dir(bundle: Path, project: Path, cache: Path, file: str | None) -> None:
    b, p, c = bundle.resolve(), project.resolve(), cache.resolve()
    # The bundle folder is replaced wholesale on every emit: it must not hold anything else.
    if p.is_relative_to(b) or c.is_relative_to(b) or b.is_relative_to(c):
        what = "the project folder" if p.is_relative_to(b) else "the cache"
        raise ConfigError(
            f"'{bundle}' overlaps {what}; pick a folder of its own",
            key="target.bundle_dir",
            file=file,
        )
