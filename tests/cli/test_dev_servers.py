"""`distill-es dev-servers` and `python -m distill_es.testing.servers`, as real processes: the export
lines, the tour of docs/getting-started.md against them, a clean exit 0 on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill_es.demo.dev_servers import DEV_API_KEY
from tests.cli.conftest import ENV_VARS, cli, cli_json

FREE_PORTS = ["--teacher-port", "0", "--student-port", "0"]
MODULE = [sys.executable, "-m", "distill_es.testing.servers"]
COMMAND = [sys.executable, "-m", "distill_es.cli", "dev-servers"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS}


@contextmanager
def serving(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The servers' process and the lines it printed up to its last export (or its JSON object)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env()
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(("export DISTILL_ES_STUDENT_URL=", "}")) and "--init" not in argv:
                break
            if line.startswith(("export DISTILL_ES_HOME=", "}")):
                break
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def exports(lines: list[str]) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


def test_the_tour_runs_a_session_against_the_dev_servers(tmp_path: Path) -> None:
    with serving([*COMMAND, *FREE_PORTS, "--init", str(tmp_path / "live-tour")]) as (process, lines):
        env = exports(lines)
        assert lines[0].startswith("# distill_es dev servers on 127.0.0.1")
        assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
        assert env["DISTILL_ES_STUDENT_URL"].startswith("http://127.0.0.1:") and env[
            "DISTILL_ES_STUDENT_URL"
        ].endswith("/v1")
        assert env["ANTHROPIC_API_KEY"] == DEV_API_KEY
        assert env["DISTILL_ES_HOME"] == str((tmp_path / "live-tour").resolve())
        doctor = cli("doctor", env=env)
        assert doctor.exit_code == 0, doctor.output
        run = cli("run", env=env)
        assert run.exit_code == 0, run.output
        assert "awaiting_review" in run.stdout and "rejected_by_gate" in run.stdout
        assert "demo student" not in run.stdout  # the student answered over HTTP
        code, stderr = stop(process, signal.SIGINT)
    assert code == 0, stderr
    assert "stopped by SIGINT: served 5 teacher and" in stderr
    assert cli_json("--home", tmp_path / "live-tour", "sessions")[0]["status"] == "awaiting_review"


def test_python_m_testing_servers_stops_cleanly_on_sigterm() -> None:
    with serving([*MODULE, *FREE_PORTS]) as (process, lines):
        env = exports(lines)
        assert set(env) == {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "DISTILL_ES_STUDENT_URL"}
        import openai

        client = openai.OpenAI(base_url=env["DISTILL_ES_STUDENT_URL"], api_key="x", max_retries=0)
        answer = client.chat.completions.create(
            model="qwen2.5-math:7b", messages=[{"role": "user", "content": "What is 17 * 3?"}]
        )
        assert answer.choices[0].message.content == "51"  # the demo world's student, by its rules
        code, stderr = stop(process, signal.SIGTERM)
    assert code == 0, stderr
    assert "stopped by SIGTERM: served 0 teacher and 1 student requests" in stderr


def test_json_prints_one_object() -> None:
    with serving([*COMMAND, *FREE_PORTS, "--json"]) as (process, lines):
        data = json.loads("\n".join(lines))
        assert data["env"]["ANTHROPIC_BASE_URL"] == data["teacher_url"]
        assert data["env"]["DISTILL_ES_STUDENT_URL"] == data["student_url"] and data["home"] is None
        code, _ = stop(process, signal.SIGINT)
    assert code == 0


def test_a_taken_port_is_exit_1_with_a_hint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = [*COMMAND, "--teacher-port", port, "--student-port", "0"]
        result = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert result.returncode == 1
    assert f"port {port} or 0 on 127.0.0.1 is taken" in result.stderr
    assert "--teacher-port" in result.stderr and result.stdout == ""
