"""`loop`, `loops`, `daemon` and `flag` mounted on a typer app with `register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from distill_es.api import Engine
from distill_es.app.loop import loops
from distill_es.cli.loop import register
from tests.loop.conftest import LoopWorld
from tests.loop.scripted import FAIL, Beat


@pytest.fixture
def cli(loop_world: LoopWorld) -> Any:
    """A one-command-group app whose engine opener uses the scripted world; `beats` per call."""
    opened: list[Path | None] = []

    def invoke(*args: str, beats: list[Beat] | None = None) -> Result:
        def open_engine(home: Path | None) -> Engine:
            opened.append(home)
            return loop_world.engine(beats or [Beat(0.5)], session={"autonomy_mode": "auto"})

        app = typer.Typer()
        register(app, open_engine)
        return CliRunner().invoke(app, list(args))

    invoke.opened = opened  # type: ignore[attr-defined]
    return invoke


def test_loop_prints_progress_and_a_summary_and_exits_0(cli: Any, loop_world: LoopWorld) -> None:
    result = cli("loop", "--stagnation-k", "1", "--home", str(loop_world.home))
    assert result.exit_code == 0, result.output
    assert cli.opened == [loop_world.home]
    assert "▸ session 1" in result.stderr and "loop stopped (stagnation)" in result.stderr
    assert "stagnation: 1 session(s) in a row" in result.stdout
    assert "1 session(s), best gated score 0.500" in result.stdout


def test_loop_exits_1_when_a_session_failed(cli: Any) -> None:
    result = cli("loop", beats=[FAIL])
    assert result.exit_code == 1
    assert "failed:" in result.stdout and "the plan could not be used" in result.stdout


def test_resume_a_loop_by_prefix_and_list_loops(cli: Any, loop_world: LoopWorld) -> None:
    first = cli("loop", "--stagnation-k", "1", "--json")
    assert first.exit_code == 0, first.output
    view = json.loads(first.stdout)
    assert view["stop_reason"] == "stagnation" and len(view["sessions"]) == 1

    again = cli("loop", "--resume", view["id"][:8], "--json")
    assert again.exit_code == 0 and json.loads(again.stdout) == view  # stopped: returned as it is

    listed = cli("loops", "--json")
    assert [v["id"] for v in json.loads(listed.stdout)] == [view["id"]]
    table = cli("loops")
    assert view["id"][:8] in table.stdout and "stagnation" in table.stdout

    missing = cli("loop", "--resume", "ffffffff")
    assert missing.exit_code == 3 and "not a loop id" in missing.stderr
    engine = loop_world.engine()
    assert len(loops(engine)) == 1 and len(engine.sessions()) == 1
    engine.close()


def test_invalid_loop_options_are_usage_errors(cli: Any) -> None:
    assert cli("loop", "--stagnation-k", "0").exit_code == 2
    assert cli("loop", "--max-total-cost", "0").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("loop", "--eps", "nan"), ("loop", "--eps", "inf"), ("loop", "--eps", "-0.1"),
        ("loop", "--max-total-cost", "nan"), ("loop", "--max-total-cost", "inf"),
        ("loop", "--max-total-cost", "1e309"), ("loop", "--stagnation-k", "1_0"),
        ("daemon", "--once", "--interval", "nan"), ("daemon", "--once", "--interval", "inf"),
        ("daemon", "--once", "--interval", "-5"), ("daemon", "--once", "--interval", "6_0"),
    ],
)  # fmt: skip
def test_nan_inf_and_underscored_numbers_are_usage_errors(cli: Any, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert args[-2] in result.output and "bug" not in result.output


def test_flag_then_daemon_once_starts_the_flagged_session(cli: Any, loop_world: LoopWorld) -> None:
    flagged = cli("flag", "t003", "--note", "wrong capital", "--json")
    assert flagged.exit_code == 0, flagged.output
    assert json.loads(flagged.stdout)["status"] == "pending"
    assert cli("flag", "nope").exit_code == 3

    result = cli("daemon", "--once")
    assert result.exit_code == 0, result.output
    assert "started session" in result.stdout
    assert "user_flag: FIRED — 1 flagged trace(s): t003" in result.stdout
    assert "cluster: no — disabled" in result.stdout
    idle = cli("daemon", "--once")
    assert "idle: nothing fired" in idle.stdout and "user_flag: no — no trace is flagged" in idle.stdout
