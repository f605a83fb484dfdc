"""Bad store inputs — a store file that is not SQLite, an export that is not text, a folder where a
file belongs, a foreign store a failing command must not create, out-of-range paging — are each one
clean error with the contract's exit code, never "this is a bug", and create nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import Demo, cli, run_demo_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("DISTILL_ES_HOME", "DISTILL_ES_STORE"):
            mp.delenv(name, raising=False)
        return run_demo_cli(tmp_path_factory.mktemp("bad_inputs") / "d")


@pytest.fixture(scope="module")
def export_file(demo: Demo) -> Path:
    out = demo.home.parent / "all.jsonl"
    assert cli("--home", demo.home, "export", "--all", "--out", out).exit_code == 0
    return out


def _error(result: object) -> dict:
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.output  # type: ignore[attr-defined]
    return json.loads(lines[0])


def test_a_store_file_that_is_not_sqlite_is_one_clean_error_everywhere(
    demo: Demo, export_file: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(5000))
    store = f"sqlite:///{junk}"
    for command in (
        ["sessions"],
        ["regate", "--all"],
        ["verify"],
        ["show", demo.session_id],
        ["history", demo.session_id],
        ["import", export_file],
        ["run"],
    ):
        result = cli("--home", demo.home, "--store", store, *command, "--json")
        error = _error(result)
        assert result.exit_code == 1 == error["exit_code"], (command, result.output)
        assert f"{junk} cannot be read: file is not a database" in error["error"], (command, error)
        assert "bug" not in result.output
