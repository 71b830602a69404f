"""Resolve: a composed config becomes a checked ``BuildRequest`` or one ``ConfigError``.

Everything here is pure: no file is written and TensorFlow is never imported. Options that a
target names (other models and profiles) come through ``Options``, which loads them from the
same search path Hydra composed the command line's config from.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from tftrt_build.config.applies import check_executor_applies, check_gpu_pool
from tftrt_build.config.checks import check_model, check_served_artifact, check_target
from tftrt_build.config.commands import check_commands, check_numbers
from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.names import LABEL, LABEL_RULE
from tftrt_build.config.outputs import (
    check_bundle_dir,
    check_cache_dir,
    check_lock,
    check_output,
    check_remote,
)
from tftrt_build.config.profiles import check_profile
from tftrt_build.config.request import (
    ArtifactSpec,
    BuildRequest,
    Option,
    Options,
    ServedModel,
    ServedVersion,
)
from tftrt_build.config.schema import Config, Mode, ModelConf, ProfileConf, TargetConf
from tftrt_build.errors import ConfigError, did_you_mean

# The config groups whose option files can be blamed for a value.
GROUPS = ("model", "profile", "target", "executor")


def resolve(cfg: Config, choices: dict[str, str], options: Options, project: Path) -> BuildRequest:
    """Check the config and expand the target into the artifacts it serves."""
    target_option = Option("target", choices["target"], options.file("target", choices["target"]))
    files = {group: options.file(group, choices[group]) for group in GROUPS if group in choices}
    check_numbers(cfg, "", files)
    target = cfg.target
    check_target(target, target_option.file)
    check_executor_applies(cfg.executor, files.get("executor"))
    check_gpu_pool(cfg.executor, files.get("executor"))
    check_commands(cfg, files.get("executor"))
    served: list[ServedModel] = []
    if not target.models:
        artifact = _artifact(cfg.model, cfg.profile, choices["model"], choices["profile"], options)
        served.append(ServedModel(cfg.model.name, (ServedVersion(1, artifact),)))
    else:
        _check_listed_overrides(target, target_option.file, options)
        served = _served_models(target, target_option.file, options)
    _check_unique_names(served, target_option.file)
    for model in served:
        for version in model.versions:
            check_served_artifact(version.artifact, target)
    outside = cfg.allow_outside_project
    if outside and not options.on_command_line("allow_outside_project"):
        # A committed file may not lift the rule it is checked by.
        raise ConfigError(
            "true in a config file; only the command line may let outputs leave the project",
            key="allow_outside_project",
            file=_file_setting("allow_outside_project", files),
            hint="remove it from the file; pass allow_outside_project=true when you mean it",
        )
    cache_dir = check_cache_dir(cfg.cache.dir, project, COMMAND_LINE, outside)
    bundle_dir = check_bundle_dir(
        target.bundle_dir,
        project,
        cache_dir,
        target_option.file,
        outside,
        options.on_command_line("target.bundle_dir"),
    )
    experiment = options.content_overrides()
    if cfg.record and not experiment:
        raise ConfigError(
            "true, but the command line sets no model.*, profile.* or target.* value: a build "
            "of the committed configs records itself",
            key="record",
            file=COMMAND_LINE,
        )
    # mode=diff asks what the values would change in the committed bundle: no redirection.
    redirect = cfg.mode is not Mode.diff and not options.on_command_line("target.bundle_dir")
    if experiment and not cfg.record and redirect:
        bundle_dir = experiment_dir(bundle_dir, experiment)
    lock_path = check_lock(cfg.lock, project, COMMAND_LINE, outside)
    check_output(cfg.bench.output_dir, project, "bench.output_dir", COMMAND_LINE, outside)
    return BuildRequest(
        project=project,
        mode=cfg.mode,
        target=target,
        target_option=target_option,
        served=tuple(served),
        executor=cfg.executor,
        cache_dir=cache_dir,
        verify=cfg.cache.verify,
        lock_path=lock_path,
        bundle_dir=bundle_dir,
        verbose=cfg.verbose,
        experiment=experiment,
        record=cfg.record,
        remote=check_remote(cfg.cache.remote, COMMAND_LINE),
        remote_required=cfg.cache.remote_required,
    )


def experiment_dir(bundle_dir: Path, overrides: tuple[str, ...]) -> Path:
    """Where an experiment's bundle goes: beside the target's, named by its overrides, so the
    committed bundle stays as the lock records it and the same command line finds it again."""
    tag = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return bundle_dir.parent / "experiments" / f"{bundle_dir.name}-{tag}"


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
                    f"label '{label}' is not a valid label ({LABEL_RULE})",
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


def _check_listed_overrides(target: TargetConf, file: str | None, options: Options) -> None:
    """A target that lists its models takes model.* / profile.* only for an option it lists.

    The command line says which with model=/profile= (``model=resnet50 model.source.seed=1``);
    anything else would be silently dropped, so it is refused.
    """
    listed = {
        "model": sorted({e.model for e in target.models}),
        "profile": sorted({v.profile for e in target.models for v in e.versions}),
    }
    for group, names in listed.items():
        chosen, keys = options.chosen(group), options.set_keys(group)
        if chosen is not None and chosen not in names:
            raise ConfigError(
                f"target '{target.name}' lists its own {group}s ({', '.join(names)}), not "
                f"'{chosen}'; {group}= can only pick one of them, for {group}.* overrides",
                key=group,
                file=COMMAND_LINE,
                hint=did_you_mean(chosen, names),
            )
        if keys and chosen is None:
            key = keys[0].lstrip("+~").split("=", 1)[0]
            raise ConfigError(
                f"target '{target.name}' lists its own {group}s ({', '.join(names)}); say which "
                f"one this is for: {group}=<one of them> {keys[0]}, or set it in a config file",
                key=key,
                file=COMMAND_LINE,
            )


def _file_setting(key: str, files: dict[str, str | None]) -> str | None:
    """The chosen option file that writes ``key`` at the top level (``# @package _global_``)."""
    for file in files.values():
        if file is None:
            continue
        with contextlib.suppress(OSError):
            if f"\n{key}:" in "\n" + Path(file).read_text():
                return file
    return None
