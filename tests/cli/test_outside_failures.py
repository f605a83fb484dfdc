"""The command line on an outside failure: exit 1, one line naming the endpoint and the error, the
resume hint; `show` and `history` say what happened; `resume` finishes once the endpoint is back."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from rich.console import Console

from distill_es.adapters.retry import Wait
from distill_es.cli.progress import StepProgress
from distill_es.demo import world
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from distill_es.workspace.scaffold import create_workspace
from tests.cli.conftest import SESSION_ID, cli, cli_json


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_student_exits_1_naming_the_endpoint_and_resume_finishes(tmp_path: Path) -> None:
    # Before: exit 0, a completed-looking session whose every edit the gate rejected on 0.0 scores.
    port = free_port()
    student_url = f"http://127.0.0.1:{port}/v1"
    settings = world.settings_toml(student_url).replace("# distill_es demo", "# my")
    home = create_workspace(
        tmp_path / "ws",
        agent=world.AGENT,
        model=world.MODEL,
        config_toml=world.CONFIG_TOML,
        system_prompt=world.SYSTEM_PROMPT,
        traces=world.traces(),
        benchmark=world.BENCHMARK,
        settings_toml=settings + "\n[network]\nbackoff_seconds = 0.01\n",
    )
    with ScriptedAnthropicServer(world.teacher_reply) as teacher_server:
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher_server.base_url}
        result = cli("--home", home, "run", env=env)
        assert result.exit_code == 1, result.output
        error_line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
        assert "interrupted" in error_line and f"{student_url}/chat/completions" in error_line
        assert "APIConnectionError" in error_line
        assert "resume" in result.stderr and "bug" not in result.stderr
        sid = SESSION_ID.search(error_line)
        assert sid is not None
        [row] = cli_json("--home", home, "sessions")
        assert row["status"] == "diagnosing" and row["interruption"]

        listed = cli("--home", home, "sessions")
        assert "diagnosing (interrupted)" in listed.stdout
        shown = cli("--home", home, "show", sid.group(1))
        assert shown.exit_code == 0 and "interrupted" in shown.stdout
        history = cli("--home", home, "history", sid.group(1))
        assert "interrupted while running a tool" in history.stdout and student_url in history.stdout

        with ScriptedStudentServer(world.toy_answer, port=port):
            resumed = cli("--home", home, "resume", sid.group(1), env=env)
        assert resumed.exit_code == 0, resumed.output
        assert "awaiting_review" in resumed.stdout


def test_the_progress_line_says_when_it_waits_for_a_rate_limit() -> None:
    endpoint = "https://api.anthropic.com/v1/messages"
    wait = Wait(role="teacher", endpoint=endpoint, seconds=30, reason="rate limited", attempt=1)
    console = Console(file=io.StringIO(), force_terminal=True)
    with StepProgress(console) as progress:
        progress.waiting(wait)
        assert progress._status is not None
        assert str(progress._status.status).endswith("waiting 30 s (rate limited)")
    out = io.StringIO()
    with StepProgress(Console(file=out, force_terminal=False, width=200)) as progress:
        progress.waiting(wait)
    assert (
        out.getvalue().strip()
        == "teacher https://api.anthropic.com/v1/messages · waiting 30 s (rate limited)"
    )
