"""Errors: one or two lines on stderr, distinct exit codes, a traceback only with --debug."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill_es.api import Engine
from distill_es.cli import errors as cli_module
from distill_es.cli.engines import resolve_session
from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DistillError,
    GuardRejected,
    IllegalTransition,
    SessionBusy,
    SessionInterrupted,
    SessionNotFound,
    SettingsError,
    WorkspaceConflict,
    WorkspaceError,
)
from distill_es.domain.layout import STATE_DIR
from distill_es.store.locks import exclusive
from distill_es.store.urls import default_store_url
from tests.cli.conftest import Demo, cli, cli_json


def assert_short_error(result: object, code: int) -> None:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("error: ")
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert len(stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SessionNotFound("x"), 3),
        (IllegalTransition("approve_edit", "completed", []), 4),
        (GuardRejected("approve_edit", "awaiting_review", [], "not pending"), 4),
        (ConcurrentSessionWrite("x"), 4),
        (SessionBusy("x"), 4),
        (WorkspaceConflict("x"), 4),
        (SettingsError("x"), 2),
        (SessionInterrupted("x"), 1),
        (WorkspaceError("x"), 1),
        (DistillError("x"), 1),
        (RuntimeError("x"), 1),
        (cli_module.CliFailure(3, "x"), 3),
    ],
)
def test_exit_code_mapping(error: BaseException, code: int) -> None:
    assert cli_module.exit_code_for(error) == code


def test_unknown_session_is_3(shared_demo: Demo) -> None:
    assert_short_error(cli("--home", shared_demo.home, "show", str(uuid.uuid4())), 3)
    result = cli("--home", shared_demo.home, "history", "ffffffff")
    assert_short_error(result, 3)
    assert "distill-es sessions" in result.stderr
    assert_short_error(cli("--home", shared_demo.home, "approve", "nope", "edit_003", "--by", "x"), 3)


def test_illegal_approve_of_an_edit_that_is_not_pending_is_4(shared_demo: Demo) -> None:
    result = cli("--home", shared_demo.home, "approve", shared_demo.session_id, "edit_001", "--by", "x")
    assert_short_error(result, 4)
    assert "not pending review" in result.stderr


def test_ambiguous_prefix_is_2() -> None:
    views = [SimpleNamespace(id="abc1" + "0" * 32), SimpleNamespace(id="abc2" + "0" * 32)]
    engine = SimpleNamespace(
        session_ids=lambda prefix="": [v.id for v in views if v.id.startswith(prefix)], home=Path("/ws")
    )
    with pytest.raises(cli_module.CliFailure) as caught:
        resolve_session(engine, "abc")  # type: ignore[arg-type]
    assert caught.value.code == 2 and "ambiguous" in caught.value.message
    assert resolve_session(engine, "ABC2") == views[1].id  # type: ignore[arg-type]


def test_empty_session_id_is_2(shared_demo: Demo) -> None:
    assert_short_error(cli("--home", shared_demo.home, "show", " "), 2)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--autonomy", "bogus"],
        ["sessions", "--limit", "0"],
        ["sessions", "--status", "sleeping"],
        ["show", "x", "--at", "yesterday"],
        ["show", "x", "--at", "0"],
        ["frobnicate"],
        ["run", "--teacher", "openai"],
        ["run", "--teacher", "cassette:/no/such/file.jsonl"],
        ["run", "--trigger", "user_flag"],
        ["reject", "x", "edit_003", "--by", "me"],  # --reason is required
    ],
)
def test_bad_usage_is_2(shared_demo: Demo, args: list[str]) -> None:
    result = cli("--home", shared_demo.home, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_no_workspace_is_2_and_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("sessions")
    assert_short_error(result, 2)
    assert "distill-es init DIR" in result.stderr and "distill-es demo" in result.stderr


def test_a_home_that_is_not_a_workspace_is_3_and_stays_untouched(tmp_path: Path) -> None:
    result = cli("--home", tmp_path, "review")
    assert_short_error(result, 3)
    assert f"distill-es init {tmp_path}" in result.stderr
    assert not (tmp_path / STATE_DIR).exists()


def test_debug_shows_the_traceback(shared_demo: Demo) -> None:
    result = cli("--debug", "--home", shared_demo.home, "show", "ffffffff")
    assert result.exit_code == 3
    assert "Traceback" in result.stderr and "SessionNotFound" in result.stderr
    assert "error: no session" in result.stderr


def test_a_busy_session_is_4(fresh_demo: Demo) -> None:
    home = fresh_demo.home.resolve()
    lock = f"session:{fresh_demo.session_id}"
    with exclusive(default_store_url(home), home / STATE_DIR, lock, f"session {fresh_demo.session_id}"):
        result = cli("--home", home, "approve", fresh_demo.session_id, "edit_003", "--by", "x")
    assert_short_error(result, 4)
    assert "in use by another process" in result.stderr
    assert cli_json("--home", home, "show", fresh_demo.session_id)["status"] == "awaiting_review"


def test_uncommitted_workspace_changes_are_4(fresh_demo: Demo) -> None:
    config = fresh_demo.home / "config.toml"
    config.write_text(config.read_text() + "\n# a local tweak\n")
    result = cli("--home", fresh_demo.home, "run")
    assert_short_error(result, 4)
    assert "uncommitted changes" in result.stderr
    assert len(cli_json("--home", fresh_demo.home, "sessions")) == 1  # no session was started


def test_bad_settings_are_2(tmp_path: Path) -> None:
    cli("init", tmp_path)
    (tmp_path / "distill_es.toml").write_text("[session]\nautonomy_mode = 'sometimes'\n")
    result = cli("--home", tmp_path, "sessions")
    assert_short_error(result, 2)
    assert "distill_es.toml" in result.stderr


def test_an_interrupted_step_is_1_with_a_resume_hint(
    shared_demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Engine, session_id: str) -> None:
        raise SessionInterrupted("teacher call diagnose/2 did not complete (APIConnectionError)")

    monkeypatch.setattr(Engine, "run", interrupted)
    result = cli("--home", shared_demo.home, "resume", shared_demo.session_id)
    assert_short_error(result, 1)
    assert f"resume {shared_demo.session_id}" in result.stderr


def test_ctrl_c_is_130_with_a_resume_hint(shared_demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Engine, session_id: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "run", interrupted)
    result = cli("--home", shared_demo.home, "resume", shared_demo.session_id)
    assert result.exit_code == 130
    assert f"resume {shared_demo.session_id}" in result.stderr


def test_an_unexpected_error_is_1_without_a_traceback(
    shared_demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Engine) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(Engine, "pending_reviews", broken)
    result = cli("--home", shared_demo.home, "review")
    assert_short_error(result, 1)
    assert "ZeroDivisionError: boom" in result.stderr and "--debug" in result.stderr


def test_verify_finds_a_deleted_event_and_exits_1(fresh_demo: Demo) -> None:
    db = sqlite3.connect(fresh_demo.home / STATE_DIR / "events.sqlite")
    with db:
        db.execute("DELETE FROM stored_events WHERE originator_version = 5")
    db.close()
    result = cli("--home", fresh_demo.home, "verify")
    assert result.exit_code == 1
    assert "DAMAGED" in result.stdout and "deleted" in result.stdout
    assert "damage found" in result.stderr
    as_json = cli("--home", fresh_demo.home, "verify", "--json")
    assert as_json.exit_code == 1
    damage = json.loads(as_json.stdout)[0]["damage"]
    assert any(d["kind"] == "deleted" and d["position"] == 5 for d in damage)


def test_an_argument_that_is_not_utf8_is_a_usage_error_not_a_bug(tmp_path) -> None:
    """A reviewer name with a stray byte (a Latin-1 terminal) cannot be recorded: exit 2, one line."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "distill_es.cli", "--home", str(tmp_path), "cancel", "s", "--by", b"a\x9bb",
         "--reason", "r"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert b"is not UTF-8 text" in result.stderr and b"a\\x9bb" in result.stderr
    assert b"bug" not in result.stderr and b"\x9b" not in result.stderr


def test_settings_that_are_not_utf8_are_a_settings_error_naming_the_file(tmp_path) -> None:
    from distill_es.config.settings import read_settings_file
    from distill_es.domain.errors import SettingsError
    from distill_es.domain.layout import SETTINGS_FILE

    (tmp_path / SETTINGS_FILE).write_bytes(b"[session]\nmin_traces = 3\n\xff\xfe\n")
    with pytest.raises(SettingsError, match=r"distill_es\.toml: not UTF-8 text"):
        read_settings_file(tmp_path)
