"""Cassettes replay through the CLI: recorded against real (scripted) HTTP servers, replayed on a fresh
identical world whose student answers with other latencies, and refused with a named JSON path when the
workspace changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill_es.adapters.cassette_match import VOLATILE_KEYS, normalised
from distill_es.demo import world
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from distill_es.workspace.scaffold import create_workspace
from tests.cli.conftest import cli, cli_json

RECORDING_LATENCY = 0.05  # the recording student is slow; the replaying one answers at once


def _world(home: Path, student_url: str, config_toml: str = world.CONFIG_TOML) -> Path:
    return create_workspace(
        home,
        agent=world.AGENT,
        model=world.MODEL,
        config_toml=config_toml,
        system_prompt=world.SYSTEM_PROMPT,
        traces=world.traces(),
        benchmark=world.BENCHMARK,
        settings_toml=world.settings_toml(student_url).replace("# distill_es demo", "# my"),
    )


def _requests(cassette: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["request"] for line in cassette.read_text(encoding="utf-8").splitlines()]


def _latencies(requests: list[dict[str, Any]]) -> list[float]:
    found: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            found.extend(v for k, v in value.items() if k in VOLATILE_KEYS)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk([_decoded_results(r) for r in requests])
    return found


def _decoded_results(request: dict[str, Any]) -> Any:
    # The tool results as the teacher got them (JSON text), decoded to find the measured latencies.
    blocks = [b for m in request["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return [
        json.loads(b["content"]) for b in blocks if b.get("type") == "tool_result" and b["content"][:1] == "{"
    ]


def _outcome(home: Path) -> dict[str, Any]:
    view = cli_json("--home", home, "sessions")[0]
    return {
        "status": view["status"],
        "edits": [(o["edit_id"], o["status"], o.get("score_delta")) for o in view["edit_outcomes"]],
    }


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One live session against the scripted teacher and student over HTTP, recorded to a cassette."""
    tmp = tmp_path_factory.mktemp("recorded")
    cassette = tmp / "session.jsonl"
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer, latency=RECORDING_LATENCY) as student,
    ):
        home = _world(tmp / "ws", student.base_url)
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher.base_url}
        result = cli("--home", home, "run", "--record-cassette", cassette, env=env)
        assert result.exit_code == 0, result.output
        assert teacher.served == len(_requests(cassette)) > 0
        return cassette, _outcome(home)


def test_a_recording_replays_on_a_fresh_world_whose_student_has_other_latencies(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    cassette, live_outcome = recorded
    again = tmp_path / "again.jsonl"
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,  # reachable, and must not be called
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        home = _world(tmp_path / "ws", student.base_url)
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher.base_url}
        result = cli("--home", home, "run", "--teacher", f"cassette:{cassette}", "--record-cassette", again,
                     env=env)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert teacher.requests == [] and teacher.served == 0
        assert student.requests  # the student really answered, over HTTP
    assert _outcome(home) == live_outcome

    live, replayed = _requests(cassette), _requests(again)
    live_latencies, replayed_latencies = _latencies(live), _latencies(replayed)
    assert live_latencies and min(live_latencies) >= RECORDING_LATENCY
    assert live_latencies != replayed_latencies  # the teacher was told other latencies...
    assert live != replayed
    assert [normalised(r) for r in live] == [normalised(r) for r in replayed]  # ...and nothing else


def test_a_changed_workspace_diverges_naming_the_json_path_and_both_values(
    recorded: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    cassette, _ = recorded
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        changed = world.CONFIG_TOML.replace("temperature = 0.7", "temperature = 0.9")
        home = _world(tmp_path / "ws", student.base_url, config_toml=changed)
        env = {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": teacher.base_url}
        result = cli("--home", home, "run", "--teacher", f"cassette:{cassette}", env=env)
        assert teacher.served == 0
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())  # the terminal wraps long lines
    # get_current_config's result, the third tool result of the first turn, is the first difference;
    # config.toml is longer than the shown window, which is cut around the difference, not before it.
    assert "first differs at messages[2].content[2].content (the values differ from character" in message
    assert "temperature = 0.7" in message and "temperature = 0.9" in message
    assert "…" in message
    assert cli_json("--home", home, "sessions")[0]["status"] == "failed"
