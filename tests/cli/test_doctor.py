"""`distill-es doctor` and `run`'s preflight, black-box through the CLI, against real servers on
127.0.0.1: a live scripted teacher and student, a dead port, a missing key, broken files."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill_es.app.doctor import CHECK_NAMES
from distill_es.demo import world
from distill_es.demo.dev_servers import create_dev_workspace
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.cli.conftest import cli, cli_json


def dead_url() -> str:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def teacher() -> Iterator[ScriptedAnthropicServer]:
    with ScriptedAnthropicServer(world.teacher_reply) as server:
        yield server


@pytest.fixture(scope="module")
def student() -> Iterator[ScriptedStudentServer]:
    with ScriptedStudentServer(world.toy_answer) as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, student: ScriptedStudentServer) -> Path:
    return create_dev_workspace(tmp_path / "ws", student.base_url)


def live_env(teacher: ScriptedAnthropicServer) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher.base_url}


def doctor_json(home: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, dict], str]:
    result = cli("--home", home, *args, "doctor", "--json", env=env)
    checks = json.loads(result.stdout)
    assert [c["name"] for c in checks] == list(CHECK_NAMES)
    assert all(set(c) == {"name", "ok", "detail", "hint"} for c in checks)
    return result.exit_code, {c["name"]: c for c in checks}, result.stderr


def test_everything_answers_exit_0(home: Path, teacher, student) -> None:
    before = len(teacher.requests), student.completed
    code, checks, stderr = doctor_json(home, live_env(teacher))
    assert code == 0 and stderr == ""
    assert all(c["ok"] for c in checks.values()), checks
    assert "30 traces" in checks["traces"]["detail"] and "8 tasks" in checks["benchmark"]["detail"]
    assert repr(world.MODEL) in checks["student"]["detail"]
    assert student.completed == before[1] + 1  # one probe, one token
    probe = student.requests[-1]
    assert probe["model"] == world.MODEL and probe["max_tokens"] == 1
    assert len(teacher.requests) == before[0]  # the models list is a GET: no paid completion
    assert not (home / ".distill_es").exists()  # a check creates nothing


def test_human_output_names_every_check(home: Path, teacher) -> None:
    result = cli("--home", home, "doctor", env=live_env(teacher))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in CHECK_NAMES:
        assert any(line.startswith("ok") and f" {name} " in line for line in lines), name
    assert lines[-1] == f"all {len(CHECK_NAMES)} checks passed"


def test_a_dead_student_port_fails_with_exit_1(home: Path, teacher) -> None:
    url = dead_url() + "/v1"
    code, checks, stderr = doctor_json(home, {**live_env(teacher), "DISTILL_ES_STUDENT_URL": url})
    assert code == 1
    assert not checks["student"]["ok"] and url in checks["student"]["detail"]
    assert "start the model server" in checks["student"]["hint"]
    assert [n for n, c in checks.items() if not c["ok"]] == ["student"]
    assert json.loads(stderr) == {"error": "1 of 10 checks failed: student", "exit_code": 1}


def test_a_missing_key_fails_and_the_endpoint_is_not_tried(home: Path, teacher) -> None:
    code, checks, _ = doctor_json(home, {"ANTHROPIC_BASE_URL": teacher.base_url})
    assert code == 1
    assert not checks["teacher key"]["ok"] and "ANTHROPIC_API_KEY" in checks["teacher key"]["detail"]
    assert not checks["teacher endpoint"]["ok"] and "not tried" in checks["teacher endpoint"]["detail"]
    assert checks["student"]["ok"]


def test_a_dead_teacher_endpoint_fails(home: Path) -> None:
    code, checks, _ = doctor_json(home, {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": dead_url()})
    assert code == 1
    assert checks["teacher key"]["ok"] and not checks["teacher endpoint"]["ok"]
    assert "teacher endpoint" in checks["teacher endpoint"]["detail"]


def test_file_and_count_problems_are_named(home: Path, teacher) -> None:
    (home / "benchmark.jsonl").write_text(
        '{"task_id": "m1", "query": "q", "reference_answer": "a"}\nnot json\n'
    )
    (home / "distill_es.toml").write_text("[session]\nmin_traces = 100\n")
    (home / "config.toml").write_text("[agent\n")
    code, checks, _ = doctor_json(home, live_env(teacher))
    assert code == 1
    assert "benchmark.jsonl:2: not valid JSON" in checks["benchmark"]["detail"]
    assert "30 traces, a session needs at least 100" in checks["traces"]["detail"]
    assert "config.toml" in checks["config"]["detail"] and not checks["config"]["ok"]
    assert "min_traces" in checks["traces"]["hint"]


def test_unparseable_settings_fail_the_settings_check(home: Path, teacher) -> None:
    (home / "distill_es.toml").write_text("[session]\nmin_traces = 'many'\n")
    code, checks, _ = doctor_json(home, live_env(teacher))
    assert code == 1 and not checks["settings"]["ok"] and "min_traces" in checks["settings"]["detail"]


def test_a_store_that_is_not_one_fails(home: Path, teacher, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-store.sqlite"
    bogus.write_text("this is not a database, just text " * 100)
    code, checks, _ = doctor_json(home, live_env(teacher), "--store", f"sqlite:///{bogus}")
    assert code == 1 and not checks["store"]["ok"] and "cannot be read" in checks["store"]["detail"]


def test_the_demo_workspace_is_offline_and_ready(tmp_path: Path) -> None:
    home = world.create_demo_workspace(tmp_path / "demo")
    checks = {c["name"]: c for c in cli_json("--home", home, "doctor")}  # no key, no servers
    assert all(c["ok"] for c in checks.values()), checks
    assert "cassette" in checks["teacher endpoint"]["detail"]


# --- run's preflight: the cheap checks, before anything is recorded ------------------------------------


def test_run_refuses_a_broken_benchmark_before_recording(home: Path, teacher) -> None:
    (home / "benchmark.jsonl").write_text("not json\n")
    result = cli("--home", home, "run", env=live_env(teacher))
    assert result.exit_code == 2  # a file the user must fix: a usage error, as for enqueue
    assert "not starting a session: benchmark:" in result.stderr and "benchmark.jsonl:1" in result.stderr
    assert "distill-es doctor" in result.stderr
    assert cli_json("--home", home, "sessions") == []


def test_run_refuses_a_store_that_is_not_one(home: Path, teacher, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-store.sqlite"
    bogus.write_text("this is not a database, just text " * 100)
    result = cli("--home", home, "--store", f"sqlite:///{bogus}", "run", env=live_env(teacher))
    assert result.exit_code == 1 and "not starting a session: store:" in result.stderr
    assert bogus.read_text().startswith("this is not a database")


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.pg import fresh_database

    yield from fresh_database()


def test_a_postgresql_store_before_and_after_its_tables(home: Path, teacher, pg_url: str) -> None:
    code, checks, _ = doctor_json(home, live_env(teacher), "--store", pg_url)
    assert code == 0 and "no tables yet" in checks["store"]["detail"]
    from distill_es.app.worker import migrate

    migrate(pg_url)
    code, checks, _ = doctor_json(home, live_env(teacher), "--store", pg_url)
    assert code == 0 and "its tables are current" in checks["store"]["detail"]


def test_a_postgresql_server_that_does_not_answer_fails_the_store(home: Path, teacher) -> None:
    port = dead_url().rsplit(":", 1)[1]
    code, checks, _ = doctor_json(
        home, live_env(teacher), "--store", f"postgresql://postgres@127.0.0.1:{port}/x"
    )
    assert code == 1 and not checks["store"]["ok"] and port in checks["store"]["detail"]


def test_the_traces_checked_are_the_ones_run_reads(home: Path, teacher, tmp_path: Path) -> None:
    """`[traces] source` wins over the workspace's own traces.jsonl, for doctor as for run."""
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes((home / "traces.jsonl").read_bytes())
    (home / "traces.jsonl").write_text("")
    (home / "distill_es.toml").write_text(f'[traces]\nsource = "{elsewhere}"\n')
    code, checks, _ = doctor_json(home, live_env(teacher))
    assert checks["traces"]["ok"] and "30 traces" in checks["traces"]["detail"], checks["traces"]

    (home / "distill_es.toml").write_text('[traces]\nsource = "/nonexistent/traces.jsonl"\n')
    (home / "traces.jsonl").write_bytes(elsewhere.read_bytes())  # the workspace's own would pass
    code, checks, _ = doctor_json(home, live_env(teacher))
    assert code == 1 and not checks["traces"]["ok"]
    assert "/nonexistent/traces.jsonl" in checks["traces"]["detail"]
    refused = cli("--home", home, "run", env=live_env(teacher))
    assert refused.exit_code == 3 and "traces source not found" in refused.stderr  # named, missing: 3
    assert "given by [traces] source" in refused.stderr
    assert (
        not (home / ".distill_es" / "events.sqlite").exists()
        or "no sessions" in cli("--home", home, "sessions", env=live_env(teacher)).stdout
    )


def test_settings_that_are_not_utf8_fail_the_settings_check_not_the_program(home: Path, teacher) -> None:
    (home / "distill_es.toml").write_bytes(b"[session]\nmin_traces = 1 # \xff\n")
    code, checks, stderr = doctor_json(home, live_env(teacher))
    assert code == 1 and not checks["settings"]["ok"] and "not UTF-8" in checks["settings"]["detail"]
    assert "bug" not in stderr


def test_the_same_broken_config_is_the_same_usage_error_for_every_command(
    home: Path, teacher, tmp_path: Path
) -> None:
    (home / "config.toml").write_bytes(b"\xff\xfe[agent]\n")  # not UTF-8
    store = f"sqlite:///{tmp_path / 'queue.sqlite'}"
    codes = {
        "run": cli("--home", home, "run", "--json", env=live_env(teacher)),
        "enqueue": cli("--home", home, "--store", store, "enqueue", "--json", env=live_env(teacher)),
        "benchmark run": cli("--home", home, "benchmark", "run", "--json", env=live_env(teacher)),
    }
    for name, result in codes.items():
        assert result.exit_code == 2, (name, result.output)
        assert "config.toml" in json.loads(result.stderr)["error"]
    assert cli_json("--home", home, "sessions") == []


def test_a_few_shot_file_that_is_not_json_fails_doctor_and_run(home: Path, teacher) -> None:
    [few_shot] = home.glob("agents/*/few_shot.json")
    few_shot.write_text("{not json")
    code, checks, _ = doctor_json(home, live_env(teacher))
    assert code == 1 and not checks["config"]["ok"]
    assert "few_shot.json is not valid JSON" in checks["config"]["detail"]
    result = cli("--home", home, "run", env=live_env(teacher))
    assert result.exit_code == 2 and "few_shot.json" in result.stderr
    assert cli_json("--home", home, "sessions") == []


def test_benchmark_show_on_a_broken_benchmark_is_a_usage_error_naming_file_and_line(home: Path) -> None:
    with (home / "benchmark.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("not json\n")
    lines = (home / "benchmark.jsonl").read_text(encoding="utf-8").splitlines()
    result = cli("--home", home, "benchmark", "show", "--json")
    assert result.exit_code == 2, result.output
    assert f"benchmark.jsonl:{len(lines)}: not valid JSON" in json.loads(result.stderr)["error"]
