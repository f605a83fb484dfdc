"""Paths like every tool: `~` and `$VARS` in `--home`, $DISTILL_ES_HOME and `Engine.open`; a path that
is not a workspace is refused unless creation is asked for; the CLI finds the workspace upward from
the current directory, as git finds its repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_es import Engine
from distill_es.domain.errors import NotAWorkspace
from tests.cli.conftest import cli, cli_json


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    home = tmp_path / "user" / "agent"
    assert cli("init", home).exit_code == 0
    return home


def test_home_option_and_environment_expand_tilde_and_variables(
    tmp_path: Path, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("AGENTS", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    for home in ("~/agent", "$AGENTS/agent", "${AGENTS}/agent"):
        assert cli_json("--home", home, "sessions") in ([], {"sessions": []}), home
        assert cli_json("sessions", "--home", home) in ([], {"sessions": []}), home
    monkeypatch.setenv("DISTILL_ES_HOME", "~/agent")  # a literal ~ from a config file or a service unit
    assert cli_json("sessions") in ([], {"sessions": []})
    assert not (tmp_path / "~").exists() and not (tmp_path / "$AGENTS").exists()


def test_a_home_that_is_not_a_workspace_is_refused_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = cli("--home", "~/nothing", "sessions")
    assert result.exit_code == 3 and f"{tmp_path / 'nothing'} is not a distill_es workspace" in result.output
    assert list(tmp_path.iterdir()) == []


def test_engine_open_expands_variables_and_creates_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORK", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotAWorkspace):
        Engine.open("$WORK/agent")
    assert list(tmp_path.iterdir()) == []
    engine = Engine.open("${WORK}/agent", create=True)
    try:
        assert engine.home == tmp_path / "agent"
    finally:
        engine.close()
    again = Engine.open("$WORK/agent")  # now a workspace: opened, not created again
    again.close()


def test_the_workspace_is_found_upward_from_the_current_directory(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = ws / "agents" / "assistant"
    monkeypatch.chdir(deep)
    assert cli_json("sessions") in ([], {"sessions": []})
    result = cli("benchmark", "show")
    assert result.exit_code == 0, result.output


def test_no_workspace_here_or_above_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lonely = tmp_path / "a" / "b"
    lonely.mkdir(parents=True)
    monkeypatch.chdir(lonely)
    result = cli("sessions")
    assert result.exit_code == 2 and "nor any folder above it is a workspace" in result.output
