"""The keys of the executor and of tftrt-deploy, -verify and -bench, and every number's range.

Every command checks the whole config, so a value no command could use is refused whichever
command reads it. Integers are bounded by the 64-bit fields they end up in (TF Serving's
versions and batching parameters, Kubernetes and Compose numbers); a YAML or override integer
has no bound of its own.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlsplit

from tftrt_build.config.explain import COMMAND_LINE
from tftrt_build.config.paths import under
from tftrt_build.config.schema import (
    BenchConf,
    CacheConf,
    Config,
    DeployConf,
    DiffConf,
    ExecutorConf,
    ServerConf,
    WorkerMode,
)
from tftrt_build.errors import ConfigError, did_you_mean

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
PROTOCOLS = ("rest", "grpc")
DOCKER_SCHEMES = ("unix", "tcp", "ssh", "npipe", "http", "https")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_numbers(value: object, key: str, file_of: dict[str, str | None]) -> None:
    """Refuse an integer anywhere in the config that no 64-bit field can hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            check_numbers(getattr(value, f.name), f"{key}.{f.name}" if key else f.name, file_of)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_numbers(item, f"{key}[{i}]", file_of)
    elif isinstance(value, dict):
        for k, item in value.items():
            check_numbers(item, f"{key}.{k}", file_of)
    elif isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ConfigError(
            f"{value} is out of range (a 64-bit integer at most {INT64_MAX})",
            key=key,
            file=file_of.get(key.split(".", 1)[0], COMMAND_LINE),
        )


def check_executor(conf: ExecutorConf, file: str | None) -> None:
    if conf.timeout_s < 1:
        raise ConfigError(
            f"{conf.timeout_s}: a stage needs at least 1 second",
            key="executor.timeout_s",
            file=file,
        )
    if conf.worker is WorkerMode.fork and not sys.platform.startswith("linux"):
        raise ConfigError(
            f"fork: stages are forked only on Linux, not on {sys.platform}",
            key="executor.worker",
            file=file,
            hint="executor.worker=auto or process",
        )
    if conf.host:
        scheme = conf.host.split("://", 1)[0] if "://" in conf.host else ""
        if scheme not in DOCKER_SCHEMES:
            raise ConfigError(
                f"'{conf.host}' is not a Docker engine address "
                f"({', '.join(s + '://' for s in DOCKER_SCHEMES)})",
                key="executor.host",
                file=file,
            )


def check_server(conf: ServerConf) -> None:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"server.{key}", file=COMMAND_LINE, hint=hint)

    if conf.url is not None:
        parts = urlsplit(conf.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail("url", f"'{conf.url}' is not an http:// or https:// address with a host")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise fail("url", f"'{conf.url}' has a bad port") from exc
    if conf.grpc is not None:
        m = _HOST_PORT.match(conf.grpc)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise fail("grpc", f"'{conf.grpc}' is not host:port", "e.g. 127.0.0.1:8500")
    if not conf.timeout_s > 0:
        raise fail("timeout_s", f"{conf.timeout_s}: a timeout is a positive number of seconds")


def check_deploy(conf: DeployConf) -> None:
    if conf.timeout_s < 1:
        raise ConfigError(
            f"{conf.timeout_s}: wait at least 1 second", key="deploy.timeout_s", file=COMMAND_LINE
        )


def check_bench(conf: BenchConf) -> None:
    def fail(key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, key=f"bench.{key}", file=COMMAND_LINE, hint=hint)

    if not conf.protocols:
        raise fail("protocols", "names no protocol (rest, grpc)")
    for i, protocol in enumerate(conf.protocols):
        if protocol not in PROTOCOLS:
            raise fail(
                f"protocols[{i}]",
                f"unknown protocol '{protocol}' ({', '.join(PROTOCOLS)})",
                did_you_mean(protocol, PROTOCOLS),
            )
    for key in ("concurrency", "batch_sizes"):
        values = list(getattr(conf, key))
        if not values:
            raise fail(key, "is empty")
        for i, n in enumerate(values):
            if not 1 <= n <= INT32_MAX:
                raise fail(f"{key}[{i}]", f"{n} is not a positive number")
    if conf.requests < 1:
        raise fail("requests", f"{conf.requests}: measure at least 1 request")
    if conf.warmup < 0:
        raise fail("warmup", f"{conf.warmup} is negative")
    if conf.processes < 0:
        raise fail("processes", f"{conf.processes} is negative (0 means one per CPU core)")


def check_cache(conf: CacheConf) -> None:
    if conf.keep_runs < 1:
        raise ConfigError(
            f"{conf.keep_runs}: keep at least 1 run folder (this run's)",
            key="cache.keep_runs",
            file=COMMAND_LINE,
        )


def check_diff(
    conf: DiffConf, chosen: Collection[str], targets: Collection[str], project: Path
) -> None:
    """mode=diff's own keys, before any planning: what to compare and where the diff goes.

    ``chosen`` holds the groups the command line set (``target=``, ``model.x=``, ...), and
    ``targets`` the target options there are.
    """
    if conf.targets and "target" in chosen:
        raise ConfigError(
            "diff.targets and target= both choose what to compare; give one", key="diff.targets"
        )
    for i, name in enumerate(conf.targets):
        if name not in targets:
            raise ConfigError(
                f"no target option '{name}'",
                key=f"diff.targets[{i}]",
                hint=did_you_mean(name, sorted(targets)),
            )
    if conf.output:
        output = under(project, conf.output)
        if output.is_dir():
            raise ConfigError(f"'{conf.output}' is a folder; name a file", key="diff.output")
        for parent in output.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(
                        f"'{conf.output}' is below '{parent.relative_to(project)}', which is "
                        "a file; name a file in a folder"
                        if parent.is_relative_to(project)
                        else f"'{conf.output}' is below the file '{parent}'; name a file in a "
                        "folder",
                        key="diff.output",
                    )
                break


def check_commands(config: Config, executor_file: str | None) -> None:
    """The executor's keys and those of tftrt-deploy, -verify and -bench."""
    check_cache(config.cache)
    check_executor(config.executor, executor_file)
    check_server(config.server)
    check_deploy(config.deploy)
    check_bench(config.bench)
