"""CLI conventions (issue 16, item 5), black-box through the command line: `--json` on every command
and JSON errors under it, `-h`, completion, flags without values, `--by` defaults, not-found is 3,
quiet on a closed pipe, user-facing words only, `--quiet` / `--verbose`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import Result

from distill_es.api import Engine
from distill_es.cli.main import app
from distill_es.domain.errors import InvalidVersion
from distill_es.domain.triggers import OnDemandTrigger
from tests.cli.conftest import Demo, cli, cli_json
from tests.cli.test_subprocess import clean_env, executable

INTERNAL_COMMANDS = ("approve_edit", "reject_edit", "roll_back_edit", "request_rollback")
STEP_CLASSES = ("CallTeacher", "ScoreTree", "RunTool", "EvaluateGate", "CaptureBenchmark", "FreezePlan")


def command_paths(command: Any = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command of the app (`benchmark show`, `training list`, …)."""
    command = command or typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [prefix]
    return [path for name, sub in subcommands.items() for path in command_paths(sub, (*prefix, name))]


def json_error(result: Result, code: int) -> dict[str, Any]:
    """Under --json an error is one JSON object on stderr, with its exit code, and nothing on stdout."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert error["exit_code"] == code and error["error"]
    return error


# --- --json everywhere -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_takes_json(path: tuple[str, ...]) -> None:
    result = cli(*path, "-h")
    assert result.exit_code == 0, result.output
    assert "--json" in result.stdout


def test_write_commands_print_the_resulting_session_view(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    result = cli("--home", home, "approve", sid, "edit_003", "--by", "ann", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["id"] == sid and view["status"] == "completed"
    assert result.stderr == ""  # no progress under --json: stderr holds at most the one error

    rolled = cli("--home", home, "rollback", sid, "--by", "ann", "--json")
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["status"] == "rolled_back"  # JSON only: no git log after it


def test_reject_and_resume_print_the_view(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    rejected = cli("--home", home, "reject", sid, "edit_003", "--by", "ann", "--reason", "no", "--json")
    assert rejected.exit_code == 0, rejected.output
    assert json.loads(rejected.stdout)["status"] == "completed"
    resumed = cli("--home", home, "resume", sid[:8], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["id"] == sid


def test_demo_init_and_diagram_print_json(tmp_path: Path) -> None:
    demo = cli("demo", "--home", tmp_path / "demo", "--json")
    assert demo.exit_code == 0, demo.output
    view = json.loads(demo.stdout)
    assert view["home"] == str((tmp_path / "demo").resolve()) and view["status"] == "awaiting_review"

    created = cli("init", tmp_path / "ws", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["home"] == str((tmp_path / "ws").resolve())

    diagram = cli("diagram", "--json")
    assert diagram.exit_code == 0 and "stateDiagram" in json.loads(diagram.stdout)["diagram"]


def test_run_prints_the_view(tmp_path: Path) -> None:
    from distill_es.demo import world

    home = world.create_demo_workspace(tmp_path / "ws")
    result = cli("--home", home, "run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "awaiting_review"


def test_export_and_daemon_print_json(shared_demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    exported = cli("--home", shared_demo.home, "export", "--all", "--out", out, "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout) == {"events": len(out.read_text().splitlines()) - 1, "sessions": 1,
                                           "out": str(out)}  # fmt: skip
    ticks = cli("--home", shared_demo.home, "daemon", "--once", "--json")
    assert ticks.exit_code == 0, ticks.output
    for line in ticks.stdout.splitlines():
        assert {"at", "action", "decisions"} <= set(json.loads(line))


def test_worker_prints_its_report_as_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    result = cli("--store", url, "worker", "--state-dir", tmp_path / "w", "--migrate", "--exit-when-idle", 1,
                 "--poll", 0.01, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["finished"] == []


# --- errors under --json -----------------------------------------------------------------------------


def test_errors_under_json_are_one_json_object_on_stderr(shared_demo: Demo, tmp_path: Path) -> None:
    home = shared_demo.home
    assert "sessions" in json_error(cli("--home", home, "show", "ffffffff", "--json"), 3)["hint"]
    json_error(cli("--home", tmp_path / "nowhere", "sessions", "--json"), 3)
    json_error(cli("--home", home, "approve", shared_demo.session_id, "edit_001", "--by", "x", "--json"), 4)
    assert "SESSION" in json_error(cli("show", "--json"), 2)["error"]  # a usage error too
    json_error(cli("--home", home, "show", shared_demo.session_id, "--at", "soon", "--json"), 2)
    json_error(cli("--home", home, "export", "--json"), 2)  # a mounted group's own errors


def test_without_json_errors_stay_plain_lines(shared_demo: Demo) -> None:
    result = cli("--home", shared_demo.home, "show", "ffffffff")
    assert result.exit_code == 3 and result.stderr.startswith("error: ")


# --- help, completion, flags ------------------------------------------------------------------------


def test_dash_h_is_help_and_completion_is_on() -> None:
    root = cli("-h")
    assert root.exit_code == 0 and "--install-completion" in root.stdout
    assert cli("show", "-h").stdout == cli("show", "--help").stdout
    assert cli("benchmark", "show", "-h").exit_code == 0


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "root")
def test_flags_show_no_value_type(path: tuple[str, ...]) -> None:
    assert "<bool>" not in cli(*path, "--help").stdout


# --- --by ---------------------------------------------------------------------------------------------


def git_env(tmp_path: Path, name: str | None, user: str | None) -> dict[str, Any]:
    """A person whose global git config has `name` (or none), logged in as `user` (or nobody)."""
    config = tmp_path / "gitconfig"
    config.write_text(f"[user]\n\tname = {name}\n" if name else "", encoding="utf-8")
    return {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": None,
            "USER": user}  # fmt: skip


def test_by_defaults_to_git_user_name_then_user(fresh_demo: Demo, tmp_path: Path) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    env = git_env(tmp_path, "Grace Hopper", "grace")
    result = cli("--home", home, "approve", sid, "edit_003", "--json", env=env)
    assert result.exit_code == 0, result.output
    approved = [e for e in cli_json("--home", home, "history", sid) if e["type"] == "EditApprovedByReviewer"]
    assert approved[-1]["who"] == "Grace Hopper"  # the person, not the workspace's engine committer

    rolled = cli("--home", home, "rollback", sid, "--json", env=git_env(tmp_path, None, "grace"))
    assert rolled.exit_code == 0, rolled.output
    asked = [e for e in cli_json("--home", home, "history", sid) if e["type"] == "RollbackRequested"]
    assert asked[-1]["who"] == "grace"


def test_without_any_name_by_is_asked_for(fresh_demo: Demo, tmp_path: Path) -> None:
    env = git_env(tmp_path, None, None)
    result = cli("--home", fresh_demo.home, "approve", fresh_demo.session_id, "edit_003", env=env)
    assert result.exit_code == 2 and "--by" in result.stderr


# --- not found is 3 -------------------------------------------------------------------------------


def test_an_unknown_edit_is_not_found(shared_demo: Demo) -> None:
    home, sid = shared_demo.home, shared_demo.session_id
    for command in (["approve", sid, "edit_999", "--by", "x"], ["reject", sid, "edit_999", "--by", "x",
                                                                  "--reason", "r"]):  # fmt: skip
        result = cli("--home", home, *command)
        assert result.exit_code == 3, result.output
        assert "no edit 'edit_999'" in result.stderr and "edit_003" in result.stderr


def test_a_version_past_the_end_is_not_found_and_names_the_last(shared_demo: Demo) -> None:
    home, sid = shared_demo.home, shared_demo.session_id
    last = cli_json("--home", home, "show", sid)["version"]
    result = cli("--home", home, "show", sid, "--at", "999")
    assert result.exit_code == 3
    assert f"last version is {last}" in result.stderr
    assert cli_json("--home", home, "show", sid, "--at", str(last))["version"] == last


def test_version_zero_is_a_usage_error_through_the_api(shared_demo: Demo) -> None:
    engine = Engine.open(shared_demo.home)
    try:
        with pytest.raises(InvalidVersion, match="versions start at 1"):
            engine.get(shared_demo.session_id, version=0)
    finally:
        engine.close()


# --- a closed pipe ----------------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly(shared_demo: Demo, tmp_path: Path) -> None:
    command = " ".join(executable()) + f" --home {shared_demo.home} export --all | head -1"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert json.loads(result.stdout)["type"]  # the first line arrived
    assert result.stderr == ""  # no "this is a bug", no traceback


# --- user-facing words ------------------------------------------------------------------------------


def test_illegal_moves_are_said_with_command_words(shared_demo: Demo) -> None:
    result = cli("--home", shared_demo.home, "approve", shared_demo.session_id, "edit_001", "--by", "x")
    assert result.exit_code == 4
    assert "cannot approve" in result.stderr and "possible now: approve, reject, rollback" in result.stderr
    assert not any(name in result.stderr for name in INTERNAL_COMMANDS)


def test_progress_lines_use_words_not_step_classes(tmp_path: Path) -> None:
    result = cli("--verbose", "demo", "--home", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert "asking the teacher diagnose" in result.stderr and "gating edit edit_002" in result.stderr
    assert not any(name in result.stderr for name in STEP_CLASSES)


def test_quiet_shows_no_progress(tmp_path: Path) -> None:
    result = cli("--quiet", "demo", "--home", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "awaiting_review" in result.stdout


def test_show_labels_student_calls_once(shared_demo: Demo) -> None:
    shown = cli("--home", shared_demo.home, "show", shared_demo.session_id)
    (line,) = [line for line in shown.stdout.splitlines() if "student calls" in line]
    assert line.count("student calls") == 1 and " made, " in line


def test_a_cancel_that_succeeded_is_not_an_error(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert cli("init", home).exit_code == 0
    engine = Engine.open(home)
    try:
        sid = engine.start(OnDemandTrigger())
    finally:
        engine.close()
    result = cli("--home", home, "cancel", sid, "--by", "ann", "--reason", "traces are broken")
    assert result.exit_code == 0, result.output
    assert "cancelled by ann: traces are broken" in result.stdout
    assert "error" not in result.stdout + result.stderr
