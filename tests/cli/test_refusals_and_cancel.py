"""Refused commands record nothing; `cancel` ends a stuck session (issue 13, through the CLI)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from distill_es.api import Engine
from distill_es.demo.run import CASSETTE
from distill_es.domain.triggers import OnDemandTrigger
from tests.cli.conftest import Demo, cli, cli_json


def test_approve_over_a_hand_edit_exits_4_and_the_edit_stays_reviewable(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    history = cli_json("--home", home, "history", sid)
    (home / "config.toml").write_text("# my hand edit\n")

    result = cli("--home", home, "approve", sid, "edit_003", "--by", "ann")

    assert result.exit_code == 4
    assert "config.toml" in result.stderr and "nothing was recorded" in result.stderr
    assert cli_json("--home", home, "history", sid) == history
    assert cli_json("--home", home, "show", sid)["status"] == "awaiting_review"
    assert [item["edit_id"] for item in cli_json("--home", home, "review")] == ["edit_003"]


def test_run_on_a_corrupt_config_is_refused_before_a_session_exists(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    (home / "config.toml").write_text("[agent\n")
    subprocess.run(["git", "-C", str(home), "commit", "-qam", "corrupt, but committed"], check=True)

    result = cli("--home", home, "run", "--teacher", f"cassette:{CASSETTE}")

    assert result.exit_code != 0
    assert "config.toml is not valid TOML" in result.stderr and "this is a bug" not in result.stderr
    assert cli_json("--home", home, "sessions") == []


def _stuck_session(home: Path) -> str:
    engine = Engine.open(home)
    try:
        return engine.start(OnDemandTrigger())
    finally:
        engine.close()


def test_cancel_ends_a_stuck_session_and_shows_who_and_why(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    sid = _stuck_session(home)

    result = cli("--home", home, "cancel", sid[:8], "--by", "ann", "--reason", "traces are broken", "--json")

    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["status"] == "failed" and view["error"] == "cancelled by ann: traces are broken"
    shown = cli("--home", home, "show", sid)
    assert "cancelled by ann: traces are broken" in shown.stdout
    entries = cli_json("--home", home, "history", sid)
    assert entries[-1]["type"] == "SessionCancelled" and entries[-1]["who"] == "ann"

    again = cli("--home", home, "cancel", sid, "--by", "ann", "--reason", "again")
    assert again.exit_code == 4 and "cancel" in again.stderr
    assert len(cli_json("--home", home, "history", sid)) == len(entries)


def test_cancel_of_a_resting_session_is_an_illegal_transition(fresh_demo: Demo) -> None:
    result = cli("--home", fresh_demo.home, "cancel", fresh_demo.session_id, "--by", "a", "--reason", "b")
    assert result.exit_code == 4
    assert "awaiting_review" in result.stderr


def test_cancel_without_a_name_or_reason_is_a_usage_error(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    sid = _stuck_session(home)
    assert cli("--home", home, "cancel", sid, "--by", " ", "--reason", "x").exit_code == 2
    assert cli("--home", home, "cancel", sid, "--by", "ann").exit_code == 2
    neither = cli("--home", home, "cancel", sid, "--json")  # both missing: both named, in one error
    assert neither.exit_code == 2
    message = json.loads(neither.stderr)["error"]
    assert "--by" in message and "--reason" in message
    assert cli_json("--home", home, "show", sid)["status"] == "initiated"
