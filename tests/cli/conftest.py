"""Fixtures for the command-line tests: a runner, a shared demo, and fresh demos to change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from distill_es.cli.main import app

ENV_VARS = ("DISTILL_ES_HOME", "DISTILL_ES_STORE", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_BASE_URL", "DISTILL_ES_STUDENT_URL")  # fmt: skip
SESSION_ID = re.compile(r"session ([0-9a-f-]{36})")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own workspace, store or API key must never leak into a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def cli(*args: Any, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def cli_json(*args: Any) -> Any:
    """Run a read command with --json; its stdout must be JSON and nothing else."""
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@dataclass
class Demo:
    home: Path
    session_id: str
    result: Result


def run_demo_cli(home: Path) -> Demo:
    result = cli("demo", "--home", home)
    assert result.exit_code == 0, result.output
    found = SESSION_ID.search(result.stdout)
    assert found, result.stdout
    return Demo(home=home, session_id=found.group(1), result=result)


@pytest.fixture(scope="module")
def shared_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the read-only tests of a module (it is left awaiting_review)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        yield run_demo_cli(tmp_path_factory.mktemp("shared") / "demo")


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Demo:
    """A demo of one's own, for tests that approve, reject or roll back."""
    return run_demo_cli(tmp_path / "demo")
