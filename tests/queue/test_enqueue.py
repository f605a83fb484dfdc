"""`distill-es enqueue` records a session for the workers; a worker runs it; the queue shows its age."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_es.demo import world
from distill_es.store.urls import default_store_url
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.cli.conftest import _clean_env, cli, cli_json  # noqa: F401 - the autouse fixture too


def test_enqueue_records_an_initiated_session_a_worker_then_runs(tmp_path: Path) -> None:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student.base_url)

        queued = cli("--home", home, "enqueue", "--autonomy", "auto")
        assert queued.exit_code == 0, queued.output
        sid = queued.stdout.strip()
        assert len(sid) == 36 and teacher.requests == []  # recorded, nothing run

        queue = cli_json("--home", home, "sessions", "--status", "initiated")
        assert [item["id"] for item in queue] == [sid]
        assert queue[0]["autonomy_mode"] == "auto" and queue[0]["age_seconds"] >= 0
        table = cli("--home", home, "sessions", "--status", "initiated").stdout
        assert "waiting" in table and sid[:8] in table
        assert "age_seconds" not in cli("--home", home, "sessions", "--json").stdout  # the queue view only

        env = {**os.environ, "ANTHROPIC_BASE_URL": teacher.base_url, "ANTHROPIC_API_KEY": "test"}
        env.pop("DISTILL_ES_STORE", None)
        worker = subprocess.run(
            [sys.executable, "-m", "distill_es.cli", "--store", default_store_url(home), "worker",
             "--state-dir", str(tmp_path / "w"), "--poll", "0.1", "--exit-when-idle", "2"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-2000:]

    shown = cli_json("--home", home, "show", sid)
    assert shown["status"] in {"completed", "awaiting_review"}
    assert teacher.requests  # the worker paid the teacher, not enqueue
    assert cli_json("--home", home, "sessions", "--status", "initiated") == []


def test_enqueue_under_json_prints_the_session_view(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    typo = cli("--home", home, "enqueue", "--trigger", "user_flag", "--trace-id", "t-7", "--json")
    assert typo.exit_code == 3 and "no trace 't-7'" in json.loads(typo.stderr)["error"]  # nothing queued
    assert cli_json("--home", home, "sessions") == []
    result = cli("--home", home, "enqueue", "--trigger", "user_flag", "--trace-id", "t007", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["status"] == "initiated" and view["trigger"] == "user_flag"
    assert cli_json("--home", home, "show", view["id"])["status"] == "initiated"


@pytest.mark.parametrize(("broken", "code"), [("config.toml", 2), ("benchmark.jsonl", 2)])
def test_enqueue_on_a_broken_workspace_records_nothing(tmp_path: Path, broken: str, code: int) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    (home / broken).write_text("[agent\n" if broken.endswith(".toml") else "{not json\n")
    result = cli("--home", home, "enqueue", "--json")
    assert result.exit_code == code, result.output
    error = json.loads(result.stderr)
    assert error["exit_code"] == code and "not queueing" in error["error"]
    assert cli_json("--home", home, "sessions") == []


def test_a_user_flag_without_one_trace_is_a_usage_error(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    assert cli("--home", home, "enqueue", "--trigger", "user_flag").exit_code == 2
    assert cli_json("--home", home, "sessions") == []


@pytest.mark.parametrize("wait", ["inf", "nan", "-1", "1_0", "1e309"])
def test_a_bad_wait_is_a_usage_error_before_anything_is_recorded(tmp_path: Path, wait: str) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    result = cli("--home", home, "enqueue", "--wait", wait, "--json")
    assert result.exit_code == 2, result.output
    assert "--wait" in json.loads(result.stderr)["error"]
    assert cli_json("--home", home, "sessions") == []


@pytest.mark.parametrize(
    "options",
    [
        ("--trigger", "on_demand", "--cluster-description", "x"),  # a description no trigger would keep
        ("--trigger", "cluster", "--cluster-description", " "),
        ("--trigger", "scheduled", "--trace-id", "t001"),
    ],
    ids=["description-without-cluster", "empty-description", "scheduled-with-trace"],
)
def test_trigger_options_that_would_be_dropped_are_usage_errors(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    for command in ("enqueue", "run"):
        result = cli("--home", home, command, *options, "--json")
        assert result.exit_code == 2, (command, result.output)
        assert json.loads(result.stderr)["exit_code"] == 2
    assert cli_json("--home", home, "sessions") == []


def test_a_cluster_trigger_keeps_its_description_and_traces(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "ws")
    options = ("--trigger", "cluster", "--cluster-description", "unit slips", "--trace-id", "t002")
    view = cli_json("--home", home, "enqueue", *options)
    assert view["trigger_metadata"]["cluster_description"] == "unit slips"
    assert view["trigger_metadata"]["trace_ids"] == ["t002"]
