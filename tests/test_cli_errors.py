"""What a failure is reported as: config (2), stage (1), internal (3), never Hydra's own lines.

These run the real console script (or a few lines of Python calling ``Command.main``) in a
project folder: Hydra's job launching, logging and error printing are what is under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Project, Result

from tftrt_build.config.explain import explain


def fake_python(folder: Path) -> Path:
    """An executor.python that records a stage's environment, then dies as a crashed stage.

    The package-version query goes to the real interpreter; a stage does not.
    """
    script = folder / "fake-python"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            case "$*" in *package_versions*) exec {sys.executable} "$@";; esac
            env > "{folder}/stage-env-$$"
            echo "the stage fell over" >&2
            exit 1
            """
        )
    )
    script.chmod(0o755)
    return script


def stage_envs(folder: Path) -> list[dict[str, str]]:
    envs = []
    for path in sorted(folder.glob("stage-env-*")):
        lines = path.read_text().splitlines()
        envs.append(dict(line.split("=", 1) for line in lines if "=" in line))
    return envs


def test_failing_stage_is_exit_1_without_hydra_lines(project: Project, tmp_path: Path) -> None:
    python = fake_python(tmp_path)
    result = project.run(f"executor.python={python}")
    assert result.code == 1, result.err
    assert "the stage process died" in result.error_line
    assert "Error executing job" not in result.err + result.out
    # The TensorFlow worker this python stands for may be started twice: a worker found dead
    # before its task was handed over is restarted once.
    envs = stage_envs(tmp_path)
    assert 1 <= len(envs) <= 2
    for env in envs:
        # The stage saw the user's environment: no HYDRA_FULL_ERROR forced into it.
        assert "HYDRA_FULL_ERROR" not in env
        assert env["TFTRT_PARENT_PID"]


def test_failing_stage_in_a_sweep(project: Project, tmp_path: Path) -> None:
    python = fake_python(tmp_path)
    result = project.run("-m", f"executor.python={python}", "model.source.seed=1,2")
    assert result.code == 1, result.err
    assert "Error executing job" not in result.err + result.out
    assert result.out.count("the stage process died") == 2
    envs = stage_envs(tmp_path)
    assert 2 <= len(envs) <= 4  # a worker found dead before its task is restarted once
    assert all("HYDRA_FULL_ERROR" not in env for env in envs)


def test_failing_config_single_and_in_a_sweep(project: Project) -> None:
    single = project.run("target.ports.rest=0")
    assert single.code == 2
    assert single.error_line == "command line: target.ports.rest: 0 is not a TCP port"
    sweep = project.run("-m", "mode=plan", "target.ports.rest=0,8601")
    assert sweep.code == 2, sweep.err
    assert "Error executing job" not in sweep.err + sweep.out
    assert "target.ports.rest: 0 is not a TCP port" in sweep.out
    assert "planned" in sweep.out  # the other job ran


def run_python(project: Project, code: str) -> Result:
    env = {**os.environ, "TFTRT_CACHE_DIR": str(project.cache), "COLUMNS": "200"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_a_bug_in_a_job_is_internal_error_3_with_its_log(project: Project) -> None:
    result = run_python(
        project,
        """
        import sys
        from tftrt_build.cli.app import Command

        def body(config, options, context):
            raise RuntimeError("boom in the job")

        sys.argv = ["tftrt-build", "mode=plan"]
        Command(body).main()
        """,
    )
    assert result.code == 3, result.err
    line = result.error_line
    assert line.startswith("internal error: RuntimeError: boom in the job (a bug in tftrt-build;")
    log = Path(line.split("traceback in ", 1)[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(project.cache / "runs")
    assert "Traceback" in log.read_text() and "boom in the job" in log.read_text()
    assert "Traceback" not in result.err


def test_a_bug_while_composing_is_internal_error_3_not_a_config_error(project: Project) -> None:
    result = run_python(
        project,
        """
        import sys
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from tftrt_build.cli.build import main

        def broken(*args, **kwargs):
            raise KeyError("composer bug")

        ConfigLoaderImpl.load_configuration = broken
        sys.argv = ["tftrt-build", "mode=plan"]
        main()
        """,
    )
    assert result.code == 3, result.err
    line = result.error_line
    assert line.startswith("internal error: KeyError: 'composer bug' (a bug in tftrt-build;")
    log = Path(line.split("traceback in ", 1)[1].rstrip(")"))
    assert "composer bug" in log.read_text()


@pytest.mark.parametrize(
    "exc", [RuntimeError("x"), KeyError("k"), AttributeError("a"), ZeroDivisionError()]
)
def test_explain_leaves_unknown_exceptions_to_be_reported_as_bugs(exc: Exception) -> None:
    assert explain(exc, {}, None) is None


def test_console_prints_emoji_codes_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.markup import escape

    from tftrt_build.cli.console import RichUI, console

    console().print(escape("bundles/:warning:/demo"), highlight=False)
    RichUI().note("model :smile: cached")
    captured = capsys.readouterr()
    assert "bundles/:warning:/demo" in captured.out
    assert "model :smile: cached" in captured.err
