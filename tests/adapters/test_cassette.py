from __future__ import annotations

import json

import anthropic
import pytest
from anthropic.types import Message

from distill_es.adapters.cassette import CassetteError, CassetteTeacher, RecordingTeacher
from distill_es.adapters.teacher import request_digest
from distill_es.domain.errors import CassetteMiss
from distill_es.phases.prompt_cache import with_prompt_cache
from distill_es.testing.servers import ScriptedAnthropicServer, text_reply, tool_use_reply


def _params(question: str) -> dict:
    return {
        "model": "claude-opus-4-6",
        "max_tokens": 256,
        "system": "You are the teacher.",
        "tools": [
            {
                "name": "get_trace",
                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            }
        ],
        "messages": [{"role": "user", "content": question}],
    }


@pytest.fixture
def recorded(tmp_path):
    """Two real calls through the anthropic client, recorded; the server is gone afterwards."""
    path = tmp_path / "cassettes" / "session.jsonl"
    script = [tool_use_reply("get_trace", {"id": "t1"}), text_reply("The student guesses dates.")]
    with ScriptedAnthropicServer(script) as server:
        recorder = RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path)
        live = [
            recorder.messages.create(**with_prompt_cache(_params("What fails?"))),
            recorder.messages.create(**_params("Summarise.")),
        ]
    return path, live


def test_record_then_replay_round_trip(recorded):
    path, live = recorded
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [set(line) for line in lines] == [{"digest", "request", "response"}] * 2
    assert lines[0]["digest"] == request_digest(with_prompt_cache(_params("What fails?")))
    assert lines[1]["request"] == _params("Summarise.")

    replay = CassetteTeacher(path)
    assert len(replay) == 2
    again = [
        replay.messages.create(**with_prompt_cache(_params("What fails?"))),
        replay.messages.create(**_params("Summarise.")),
    ]
    assert all(isinstance(m, Message) for m in again)
    assert [m.model_dump() for m in again] == [m.model_dump() for m in live]
    assert again[0].content[0].input == {"id": "t1"}


def test_digest_is_over_params_exactly_as_passed(recorded):
    path, _ = recorded
    replay = CassetteTeacher(path)
    with pytest.raises(CassetteMiss):
        replay.messages.create(**_params("What fails?"))  # recorded with cache markers; this is not


def test_miss_names_digest_cassette_and_first_difference(recorded):
    path, _ = recorded
    replay = CassetteTeacher(path)
    params = _params("Summarise, briefly.")
    with pytest.raises(CassetteMiss) as caught:
        replay.messages.create(**params)
    error = caught.value
    assert error.digest == request_digest(params)
    assert error.path == path
    text = str(error)
    assert str(path) in text and error.digest[:16] in text
    assert "claude-opus-4-6" in text
    assert "messages[0].content" in text
    assert '"Summarise."' in text and '"Summarise, briefly."' in text


def test_repeated_request_is_served_in_recorded_order(tmp_path):
    path = tmp_path / "c.jsonl"
    with ScriptedAnthropicServer(["first", "second"]) as server:
        recorder = RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path)
        recorder.messages.create(**_params("Same"))
        recorder.messages.create(**_params("Same"))
    replay = CassetteTeacher(path)
    texts = [replay.messages.create(**_params("Same")).content[0].text for _ in range(3)]
    assert texts == ["first", "second", "second"]


def test_missing_cassette_is_a_clear_error(tmp_path):
    with pytest.raises(CassetteError, match=r"nope\.jsonl: cassette not found"):
        CassetteTeacher(tmp_path / "nope.jsonl")


def test_corrupt_cassette_names_file_and_line(recorded):
    path, _ = recorded
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text(lines[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(CassetteError, match=r"session\.jsonl:2: not valid JSON"):
        CassetteTeacher(path)
    path.write_text(lines[0] + "\n" + json.dumps({"digest": "x", "request": {}}) + "\n", encoding="utf-8")
    with pytest.raises(CassetteError, match=r"session\.jsonl:2: cassette line lacks response"):
        CassetteTeacher(path)
    path.write_text(
        json.dumps({"digest": "x", "request": {}, "response": {"nope": 1}}) + "\n", encoding="utf-8"
    )
    with pytest.raises(CassetteError, match=r"session\.jsonl:1: response is not a Message"):
        CassetteTeacher(path)


def test_recording_appends_across_instances(recorded):
    path, _ = recorded
    with ScriptedAnthropicServer(["third"]) as server:
        RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path).messages.create(
            **_params("More.")
        )
    assert len(CassetteTeacher(path)) == 3


def test_a_torn_last_line_is_ignored_and_cut_before_appending(recorded):
    path, _ = recorded
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"digest": "abc", "requ')  # a crash mid-write
    assert len(CassetteTeacher(path)) == 2
    with ScriptedAnthropicServer(["third"]) as server:
        RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path).messages.create(
            **_params("More.")
        )
    assert len(CassetteTeacher(path)) == 3
