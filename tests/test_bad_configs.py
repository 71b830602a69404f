"""What only the installed console script shows about bad configs: tracebacks on request, and
a damaged lock. The catalogue of bad configs itself runs in-process, in
tests/reliability/test_bad_input.py (CATALOGUE)."""

from __future__ import annotations

from conftest import Project


def test_traceback_on_request(catalogue: Project) -> None:
    result = catalogue.run("model=bad_dtype", env={"HYDRA_FULL_ERROR": "1"})
    assert result.code != 0
    assert "Traceback" in result.err


def test_bad_lock_schema_is_refused(catalogue: Project) -> None:
    catalogue.lock.write_text("schema: 99\nhash: blake3\nartifacts: {}\nbundles: {}\n")
    result = catalogue.run("mode=check")
    assert result.code == 2
    assert result.error_line == (
        "tftrt.lock: schema 99 is not the supported 1 (written by another version of "
        "tftrt-build) (restore it from version control, or delete it and run tftrt-build to "
        "write it again)"
    )
