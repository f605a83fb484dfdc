"""Every command through typer's runner, on the offline demo and on fresh workspaces."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from distill_es.config.settings import DEFAULT_SETTINGS_TOML
from distill_es.demo import world
from distill_es.demo.run import CASSETTE
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from distill_es.workspace.scaffold import create_workspace
from tests.cli.conftest import Demo, cli, cli_json


def git_log(home: Path) -> str:
    return subprocess.run(["git", "-C", str(home), "log", "--oneline"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


# --- demo -------------------------------------------------------------------------------------------


def test_demo_shows_edits_git_log_and_next_steps(shared_demo: Demo) -> None:
    out, home, sid = shared_demo.result.stdout, shared_demo.home, shared_demo.session_id
    assert world.DEMO_STUDENT_LABEL in out
    assert "awaiting_review" in out
    for edit_id, outcome in (("edit_001", "applied"), ("edit_002", "rejected_by_gate"),
                             ("edit_003", "pending_review")):  # fmt: skip
        line = next(line for line in out.splitlines() if edit_id in line and "│" in line)
        assert outcome in line
    assert "set_model_for_query_class" in out and "gate passed" in out
    assert "Revert edit edit_002" in out  # the workspace's git log
    for command in (f"--home {home} review", f"approve {sid} edit_003 --by you", f"history {sid}",
                    f"--home {home} verify"):  # fmt: skip
        assert command in out


def test_demo_without_home_uses_a_new_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = cli("demo")
    assert result.exit_code == 0, result.output
    created = [p for p in tmp_path.iterdir() if p.name.startswith("distill-es-demo-")]
    assert len(created) == 1
    assert f"demo workspace: {created[0]}" in result.stdout


def test_demo_refuses_an_existing_workspace(shared_demo: Demo) -> None:
    result = cli("demo", "--home", shared_demo.home)
    assert result.exit_code == 4
    assert "refusing to overwrite" in result.stderr
    assert "Traceback" not in result.output


# --- read commands ----------------------------------------------------------------------------------


def test_sessions(shared_demo: Demo) -> None:
    rows = cli_json("--home", shared_demo.home, "sessions")
    assert [r["id"] for r in rows] == [shared_demo.session_id]
    assert rows[0]["status"] == "awaiting_review"
    assert cli_json("--home", shared_demo.home, "sessions", "--status", "completed") == []
    assert len(cli_json("sessions", "--home", shared_demo.home, "--limit", "1")) == 1
    table = cli("--home", shared_demo.home, "sessions")
    assert table.exit_code == 0
    assert shared_demo.session_id[:8] in table.stdout and "awaiting_review" in table.stdout


def test_show_by_prefix_and_at_a_version(shared_demo: Demo) -> None:
    home, sid = shared_demo.home, shared_demo.session_id
    view = cli_json("--home", home, "show", sid[:6])
    assert view["id"] == sid and view["status"] == "awaiting_review"
    assert [o["status"] for o in view["edit_outcomes"]] == ["applied", "rejected_by_gate", "pending_review"]
    early = cli_json("--home", home, "show", sid, "--at", "3")
    assert early["version"] == 3 and early["status"] == "diagnosing"
    assert cli_json("--home", home, "show", sid, "--at", "2999-01-01T00:00:00")["version"] == view["version"]
    text = cli("--home", home, "show", sid)
    assert text.exit_code == 0 and "diagnosis" in text.stdout and "edit_003" in text.stdout


def test_an_overlong_session_ref_is_refused_without_echoing_all_of_it(shared_demo: Demo) -> None:
    for ref in ("a" * 100_000, shared_demo.session_id + "0"):
        for command in ("show", "history", "verify"):
            result = cli("--home", shared_demo.home, command, ref)
            assert result.exit_code == 2, result.output
            assert "is not a session id or prefix" in result.output and len(result.output) < 400


def test_history_one_line_per_event(shared_demo: Demo) -> None:
    entries = cli_json("--home", shared_demo.home, "history", shared_demo.session_id)
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0]["type"] == "SessionStarted"
    text = cli("--home", shared_demo.home, "history", shared_demo.session_id)
    lines = text.stdout.splitlines()
    assert len(lines) == len(entries)
    assert "teacher" in lines[3] and "diagnose/1" in lines[3]


def test_review_shows_the_diff(shared_demo: Demo) -> None:
    items = cli_json("--home", shared_demo.home, "review")
    assert [(i["session_id"], i["edit_id"]) for i in items] == [(shared_demo.session_id, "edit_003")]
    assert "+When a question involves units" in items[0]["preview"]
    text = cli("--home", shared_demo.home, "review")
    assert "+When a question involves units" in text.stdout
    assert f"approve {shared_demo.session_id} edit_003 --by NAME" in text.stdout


def test_verify_ok(shared_demo: Demo) -> None:
    reports = cli_json("--home", shared_demo.home, "verify")
    assert [(r["session_id"], r["ok"]) for r in reports] == [(shared_demo.session_id, True)]
    assert cli_json("--home", shared_demo.home, "verify", shared_demo.session_id[:8])[0]["ok"]
    assert cli("--home", shared_demo.home, "verify").exit_code == 0


def test_benchmark_show(shared_demo: Demo) -> None:
    data = cli_json("--home", shared_demo.home, "benchmark", "show")
    assert [t["task_id"] for t in data["tasks"]] == [t["task_id"] for t in world.BENCHMARK]
    assert data["task_clusters"]["m1"] == ["arithmetic"]
    latest = data["latest"]
    assert latest["session_id"] == shared_demo.session_id
    assert latest["before"]["cluster_scores"]["arithmetic"] == 0.0
    assert latest["after"]["cluster_scores"]["arithmetic"] == 1.0
    text = cli("--home", shared_demo.home, "benchmark", "show")
    assert "latest cluster scores" in text.stdout and "arithmetic" in text.stdout


def test_benchmark_show_before_any_session(tmp_path: Path) -> None:
    create_workspace(tmp_path, benchmark=world.BENCHMARK)
    data = cli_json("--home", tmp_path, "benchmark", "show")
    assert len(data["tasks"]) == 8 and data["latest"] is None
    assert "no session has scored" in cli("--home", tmp_path, "benchmark", "show").stdout


def test_diagram() -> None:
    result = cli("diagram")
    assert result.exit_code == 0
    assert result.stdout.startswith("stateDiagram-v2")
    assert "awaiting_review --> completed: reject_edit" in result.stdout


def test_home_from_env_and_from_the_current_directory(
    shared_demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("sessions", env={"DISTILL_ES_HOME": str(shared_demo.home)}).exit_code == 0
    monkeypatch.chdir(shared_demo.home)
    assert cli_json("sessions")[0]["id"] == shared_demo.session_id


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("distill-es ")


# --- decisions --------------------------------------------------------------------------------------


def test_approve_completes_then_rollback_reverts_in_git(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    approved = cli("--home", home, "approve", sid[:8], "edit_003", "--by", "ann", "--note", "fine")
    assert approved.exit_code == 0, approved.output
    assert "completed" in approved.stdout
    view = cli_json("--home", home, "show", sid)
    assert view["status"] == "completed"
    assert {o["edit_id"]: o["status"] for o in view["edit_outcomes"]}["edit_003"] == "applied"
    assert cli_json("--home", home, "review") == []
    assert any(e["who"] == "ann" and "approved edit edit_003: fine" in e["what"]
               for e in cli_json("--home", home, "history", sid))  # fmt: skip

    again = cli("--home", home, "approve", sid, "edit_003", "--by", "ann")
    assert again.exit_code == 4
    assert "completed" in again.stderr and "Traceback" not in again.output
    assert cli("--home", home, "reject", sid, "edit_003", "--by", "ann", "--reason", "no").exit_code == 4

    rolled = cli("--home", home, "rollback", sid, "--by", "ann")
    assert rolled.exit_code == 0, rolled.output
    assert "rolled_back" in rolled.stdout
    log = git_log(home)
    assert "Revert edit edit_003" in log and "Revert edit edit_001" in log
    assert "Revert edit edit_001" in rolled.stdout  # the command shows the log too
    assert cli_json("--home", home, "show", sid)["status"] == "rolled_back"
    assert all(r["ok"] for r in cli_json("--home", home, "verify"))
    assert cli("--home", home, "rollback", sid).exit_code == 4  # rolled_back is terminal


def test_reject_completes_the_session(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    result = cli("--home", home, "reject", sid, "edit_003", "--by", "bob", "--reason", "too vague")
    assert result.exit_code == 0, result.output
    view = cli_json("--home", home, "show", sid)
    assert view["status"] == "completed"
    outcome = {o["edit_id"]: o for o in view["edit_outcomes"]}["edit_003"]
    assert outcome["status"] == "rejected_by_user" and "too vague" in outcome["error"]
    assert "patch_system_prompt" not in git_log(home)  # it was never applied


def test_resume_a_resting_session_just_shows_it(shared_demo: Demo) -> None:
    result = cli("--home", shared_demo.home, "resume", shared_demo.session_id[:8])
    assert result.exit_code == 0, result.output
    assert "awaiting_review" in result.stdout and "edit_003" in result.stdout


# --- run ----------------------------------------------------------------------------------------------


def test_run_on_a_demo_workspace_records_and_replays_a_cassette(tmp_path: Path) -> None:
    first = world.create_demo_workspace(tmp_path / "first")
    recorded = tmp_path / "recorded.jsonl"
    result = cli("--home", first, "run", "--teacher", f"cassette:{CASSETTE}", "--record-cassette", recorded,
                 "--trigger", "user_flag", "--trace-id", "t003")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "awaiting_review" in result.stdout and "edit_003" in result.stdout
    assert "▸ diagnosing" in result.stderr and "asking the teacher diagnose" in result.stderr  # progress
    # Per tree, once its tasks are scored (a log gets the last count; a terminal sees every one).
    assert re.search(r"scoring tree [0-9a-f]{10} · 8/8 tasks scored\n", result.stderr)
    assert len(recorded.read_text().splitlines()) == 5
    assert cli_json("--home", first, "sessions")[0]["trigger"] == "user_flag"

    second = world.create_demo_workspace(tmp_path / "second")
    replay = cli("--home", second, "run", "--teacher", f"cassette:{recorded}", "--autonomy", "manual")
    assert replay.exit_code == 0, replay.output
    view = cli_json("--home", second, "sessions")[0]
    assert view["autonomy_mode"] == "manual"
    assert [o["status"] for o in view["edit_outcomes"]] == ["pending_review"] * 3


def test_run_with_a_real_teacher_and_student_over_http(tmp_path: Path) -> None:
    """The non-demo path: the anthropic SDK and the OpenAI-compatible student, against local servers."""
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = create_workspace(
            tmp_path / "ws",
            agent=world.AGENT,
            model=world.MODEL,
            config_toml=world.CONFIG_TOML,
            system_prompt=world.SYSTEM_PROMPT,
            traces=world.traces(),
            benchmark=world.BENCHMARK,
            settings_toml=world.settings_toml(student_server.base_url).replace("# distill_es demo", "# my"),
        )
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher_server.base_url}
        result = cli("--home", home, "run", env=env)
    assert result.exit_code == 0, result.output
    assert "awaiting_review" in result.stdout and "rejected_by_gate" in result.stdout
    assert world.DEMO_STUDENT_LABEL not in result.stdout  # the real student answered
    assert student_server.requests


def test_a_failed_session_exits_1(tmp_path: Path) -> None:
    assert cli("init", tmp_path / "ws").exit_code == 0
    result = cli("--home", tmp_path / "ws", "run", "--teacher", f"cassette:{CASSETTE}")
    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert "not enough traces" in result.stderr
    assert cli_json("--home", tmp_path / "ws", "sessions")[0]["status"] == "failed"


def test_a_second_demo_run_diverges_from_the_cassette_and_says_so(fresh_demo: Demo) -> None:
    result = cli("--home", fresh_demo.home, "run")
    assert result.exit_code == 1
    assert "no recorded response" in result.stderr
    assert "distill-es demo" in result.stderr  # the hint


# --- init -----------------------------------------------------------------------------------------------


def test_init_creates_a_workspace_and_refuses_to_overwrite(tmp_path: Path) -> None:
    home = tmp_path / "new"
    result = cli("init", home)
    assert result.exit_code == 0, result.output
    for name in ("config.toml", "agents/assistant/system_prompt.md", "agents/assistant/few_shot.json",
                 "tools/descriptions.toml", "traces.jsonl", "benchmark.jsonl", ".gitignore"):  # fmt: skip
        assert (home / name).exists(), name
    assert (home / "distill_es.toml").read_text() == DEFAULT_SETTINGS_TOML
    assert (home / "traces.jsonl").read_text() == "" and (home / "benchmark.jsonl").read_text() == ""
    assert "baseline" in git_log(home)
    assert f"distill-es --home {home} run" in result.stdout

    again = cli("init", home)
    assert again.exit_code == 4
    assert "refusing to overwrite" in again.stderr and "choose another directory" in again.stderr


def test_init_defaults_to_the_global_home(tmp_path: Path) -> None:
    assert cli("--home", tmp_path / "g", "init").exit_code == 0
    assert (tmp_path / "g" / "config.toml").exists()


def test_run_without_an_api_key_records_nothing(tmp_path: Path) -> None:
    cli("init", tmp_path)
    result = cli("--home", tmp_path, "run")
    assert result.exit_code == 2
    assert "ANTHROPIC_API_KEY" in result.stderr
    assert cli_json("--home", tmp_path, "sessions") == []


def test_export_and_import_are_mounted(shared_demo: Demo, tmp_path: Path) -> None:
    target = tmp_path / "session.jsonl"
    result = cli("--home", shared_demo.home, "export", shared_demo.session_id[:8], "--out", target)
    assert result.exit_code == 0, result.output
    assert shared_demo.session_id in target.read_text()
    again = cli("--home", shared_demo.home, "import", target)
    assert again.exit_code == 4  # the store holds that session already
