"""`distill-es regate` and `distill-es explain` on real stores: a session run against the scripted teacher
and student over HTTP (with hostile text in a rationale and a trace), the demo, and the golden corpus.
regate runs with the teacher and student down and makes no connection; neither command records a thing."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from distill_es import Engine
from distill_es.demo import world
from distill_es.demo.dev_servers import create_dev_workspace
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer, tool_uses_reply
from tests.cli.conftest import Demo, cli, cli_json

HOSTILE = (
    "<script>alert(1)</script><img src=x onerror=alert(2)>"
    "\x1b[2J\x1b]0;owned\x07[green]APPROVED BY SECURITY[/]\u202e"
)
SECRET = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8" * 4
WIDE = {"COLUMNS": "250"}


def hostile_teacher(request: dict[str, Any]) -> dict[str, Any]:
    """The demo teacher, whose first edit's rationale is hostile."""
    if (request.get("tool_choice") or {}).get("name") == "submit_plan":
        first, *rest = world.EDITS
        return tool_uses_reply([("submit_plan", {"edits": [{**first, "rationale": HOSTILE}, *rest]})])
    return world.teacher_reply(request)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens on it once closed


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(home, session id) of a real `run` against the scripted servers; the servers are down afterwards."""
    with (
        ScriptedAnthropicServer(hostile_teacher) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = create_dev_workspace(tmp_path_factory.mktemp("audit") / "ws", student_server.base_url)
        traces = (home / "traces.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in traces]
        for row in rows:  # a cited trace holding a secret and terminal escapes
            if row["trace_id"] == "t001":
                row["result"] = f"api_key = {SECRET} {HOSTILE}"
        (home / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher_server.base_url, **WIDE}
        result = cli("--home", home, "run", env=env)
    assert result.exit_code == 0, result.output
    [view] = cli_json("--home", home, "sessions")
    return home, view["id"]


def _history(home: Path, sid: str) -> dict[int, str]:
    return {e["version"]: e["type"] for e in cli_json("--home", home, "history", sid)}


def _state(home: Path) -> tuple[str, str, int]:
    """What must not change: git HEAD, the working tree's status, and the store's row count."""
    head = subprocess.run(
        ["git", "-C", str(home), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    status = subprocess.run(
        ["git", "-C", str(home), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    with sqlite3.connect(home / ".distill_es" / "events.sqlite") as db:
        rows = db.execute("select count(*) from stored_events").fetchone()[0]
    return head, status, rows


# --- regate ------------------------------------------------------------------------------------------


def test_regate_with_servers_down_makes_no_connection_and_records_nothing(
    scripted: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, sid = scripted
    port = _closed_port()
    monkeypatch.setenv("DISTILL_ES_STUDENT_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    attempts: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise ConnectionRefusedError(f"regate must not connect to {address}")
        return real_connect(self, address)

    def guard_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            return 111
        return real_connect_ex(self, address)

    before = _state(home)
    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard_ex)
    with pytest.raises(ConnectionRefusedError):  # the guard sees a connection attempt
        socket.create_connection(("127.0.0.1", port), timeout=1)
    attempts.clear()
    engine = Engine.open(home, create_tables=False)
    try:
        recorded = engine.regate()
        strict = engine.regate(sid, min_improvement=2.0)
    finally:
        engine.close()
    result = cli("--home", home, "regate", "--all", "--max-regression", "0.5", "--json")
    monkeypatch.undo()
    assert attempts == []
    assert result.exit_code == 0, result.output
    assert _state(home) == before
    assert recorded.flips == 0 and recorded.gates == recorded.redecided == 2
    # A bar no edit can clear flips the one acceptance (edit_001: arithmetic 0 → 1).
    [flip] = strict.flipped
    assert (flip.edit_id, flip.recorded_accepted, flip.whatif_accepted) == ("edit_001", True, False)
    assert strict.sessions[0].gates[1].after_a_flip


def test_regate_json_matches_the_recorded_gates(scripted: tuple[Path, str]) -> None:
    home, sid = scripted
    report = cli_json("--home", home, "regate", sid[:8])
    view = cli_json("--home", home, "show", sid)
    history = _history(home, sid)
    [session] = report["sessions"]
    assert session["recorded_policy"] == {"max_regression": 0.01, "min_improvement": 0.0}
    outcomes = {o["edit_id"]: o for o in view["edit_outcomes"]}
    for gate in session["gates"]:
        assert history[gate["version"]] == "GateEvaluated"
        outcome = outcomes[gate["edit_id"]]
        assert gate["recorded_accepted"] == (outcome["status"] == "applied")
        deltas = {c["cluster_id"]: c["delta"] for c in gate["clusters"]}
        assert deltas == pytest.approx(outcome["cluster_deltas"])
        assert gate["scores_from"] == "tasks_scored" and not gate["flipped"]
    assert report["limits"] and report["flips"] == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--all", "--max-regression", "nan"], 2),
        (["--all", "--max-regression", "-0.1"], 2),
        (["--all", "--min-improvement", "inf"], 2),
        (["--all", "--min-improvement", "x"], 2),
        (["--all", "--max-regression", "1_0"], 2),  # not 10: digit separators are refused
        (["--all", "--min-improvement", "0_5"], 2),
        ([], 2),  # neither SESSION nor --all
        (["--all", "SESSION"], 2),  # both
        (["00000000-0000-0000-0000-000000000000"], 3),
        (["ffff"], 3),
    ],
)
def test_regate_bad_input_is_one_json_error(scripted: tuple[Path, str], args: list[str], code: int) -> None:
    home, sid = scripted
    args = [sid if a == "SESSION" else a for a in args]
    result = cli("--home", home, "regate", *args, "--json")
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error["exit_code"] == code and error["error"]


def test_regate_echoes_minus_zero_as_zero(scripted: tuple[Path, str]) -> None:
    home, _ = scripted
    minus_zero = ("--max-regression", "-0", "--min-improvement", "-0.0")
    report = cli_json("--home", home, "regate", "--all", *minus_zero)
    assert json.dumps([report["max_regression"], report["min_improvement"]]) == "[0.0, 0.0]"


def test_regate_text_names_the_flip(scripted: tuple[Path, str]) -> None:
    home, _ = scripted
    result = cli("--home", home, "regate", "--all", "--min-improvement", "2", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "1 would flip" in result.stdout and "FLIPS" in result.stdout
    assert "still applied" in result.stdout


# --- explain -----------------------------------------------------------------------------------------


def test_explain_chain_of_an_applied_edit(scripted: tuple[Path, str]) -> None:
    home, sid = scripted
    lineage = cli_json("--home", home, "explain", sid, "edit_001")
    history = _history(home, sid)
    assert lineage["status"] == "applied" and lineage["session_version"] == max(history)
    expected_types = {
        "cluster": {"DiagnosisRecorded"},
        "teacher_call": {"TeacherCallCompleted"},
        "edit": {"PlanFrozen"},
        "routing": {"PlanFrozen", "EditRouted"},
        "validation": {"EditValidated"},
        "commit": {"EditApplyStarted", "EditApplied"},
        "gate": {"GateTasksChosen", "GateEvaluated"},
    }
    for name, types in expected_types.items():
        link = lineage[name]
        assert link["applies"], name
        assert {history[v] for v in link["versions"]} == types, name
    assert lineage["teacher_call"]["call_key"] == "plan" and lineage["teacher_call"]["input_tokens"] > 0
    assert lineage["edit"]["rationale"] == HOSTILE  # data as recorded: the renderer escapes it
    assert lineage["edit"]["diff_source"] == "git" and "arithmetic" in lineage["edit"]["diff"]
    trailers = lineage["commit"]["trailers"]
    assert trailers["Edit-ID"] == ["edit_001"] and trailers["Session-ID"] == [sid]
    assert lineage["gate"]["policy"] == {"max_regression": 0.01, "min_improvement": 0.0}
    assert lineage["gate"]["clusters"][0] == {
        "cluster_id": "arithmetic",
        "before": 0.0,
        "after": 1.0,
        "delta": 1.0,
        "target": True,
    }
    assert not lineage["review"]["applies"] and "no reviewer" in lineage["review"]["note"]
    assert not lineage["undo"]["applies"]
    traces = {t["trace_id"]: t for t in lineage["traces"]["traces"]}
    assert traces["t001"]["found"] and "edit" in traces["t001"]["cited_by"]
    assert SECRET not in json.dumps(lineage) and "[REDACTED" in traces["t001"]["excerpt"]


def test_explain_chain_of_a_reverted_and_of_a_pending_edit(scripted: tuple[Path, str]) -> None:
    home, sid = scripted
    history = _history(home, sid)
    reverted = cli_json("--home", home, "explain", sid, "edit_002")
    assert reverted["status"] == "rejected_by_gate" and reverted["gate"]["accepted"] is False
    assert reverted["undo"]["kind"] == "reverted"
    assert [history[v] for v in reverted["undo"]["versions"]] == ["EditReverted"]
    pending = cli_json("--home", home, "explain", sid, "edit_003")
    assert pending["review"]["decision"] == "pending" and pending["edit"]["diff_source"] == "review_preview"
    for name in ("validation", "commit", "gate", "undo"):
        assert not pending[name]["applies"] and pending[name]["note"], name


def test_explain_text_output_is_inert(scripted: tuple[Path, str]) -> None:
    home, sid = scripted
    result = cli("--home", home, "explain", sid, "edit_001", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2J" in result.stdout and "[green]APPROVED BY SECURITY[/]" in result.stdout
    assert SECRET not in result.stdout
    for number in range(1, 11):
        assert f"{number}. " in result.stdout


def test_explain_json_is_escaped(scripted: tuple[Path, str]) -> None:
    home, sid = scripted
    result = cli("--home", home, "explain", sid, "edit_001", "--json")
    assert "\u202e" not in result.stdout and "\x1b" not in result.stdout
    assert json.loads(result.stdout)["edit"]["rationale"] == HOSTILE


@pytest.mark.parametrize(("edit", "code"), [("nope", 3), ("", 3)])
def test_explain_unknown_edit_is_not_found(scripted: tuple[Path, str], edit: str, code: int) -> None:
    home, sid = scripted
    result = cli("--home", home, "explain", sid, edit, "--json")
    assert result.exit_code == code, result.output
    assert json.loads(result.stderr)["exit_code"] == code


def test_explain_unknown_session_is_not_found(scripted: tuple[Path, str]) -> None:
    home, _ = scripted
    result = cli("--home", home, "explain", "00000000-0000-0000-0000-000000000000", "edit_001", "--json")
    assert result.exit_code == 3 and json.loads(result.stderr)["exit_code"] == 3


# --- the demo ----------------------------------------------------------------------------------------


def test_on_the_demo(shared_demo: Demo) -> None:
    home, sid = shared_demo.home, shared_demo.session_id
    report = cli_json("--home", home, "regate", "--all")
    assert report["gates"] == 2 and report["flips"] == 0
    view = cli_json("--home", home, "show", sid)
    for outcome in view["edit_outcomes"]:
        lineage = cli_json("--home", home, "explain", sid, outcome["edit_id"])
        assert lineage["status"] == outcome["status"]
        assert lineage["commit"]["commit_sha"] == outcome["commit_sha"]


def test_a_damaged_session_is_refused_alone_and_listed_by_all(fresh_demo: Demo) -> None:
    home, sid = fresh_demo.home, fresh_demo.session_id
    with sqlite3.connect(home / ".distill_es" / "events.sqlite") as db:
        key = sid.replace("-", "")
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 28", (key,)
        ).fetchone()
        tampered = zlib.decompress(state).replace(b'"accepted":true', b'"accepted":false')
        assert tampered != zlib.decompress(state)  # version 28: edit_001's GateEvaluated
        db.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 28",
            (zlib.compress(tampered), key),
        )
    one = cli("--home", home, "regate", sid, "--json")
    assert one.exit_code == 4 and json.loads(one.stderr)["exit_code"] == 4
    report = cli_json("--home", home, "regate", "--all")
    assert report["sessions"] == [] and [s.split(":")[0] for s in report["skipped_sessions"]] == [sid]
    explained = cli("--home", home, "explain", sid, "edit_001", "--json")
    assert explained.exit_code == 4
