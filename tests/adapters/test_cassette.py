from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest
from anthropic.types import Message
from hypothesis import given
from hypothesis import strategies as st

from distill_es.adapters.cassette import CassetteError, CassetteTeacher, RecordingTeacher
from distill_es.adapters.cassette_match import (
    VOLATILE,
    VOLATILE_KEYS,
    Divergence,
    divergence,
    first_difference,
    match_digest,
    normalised,
)
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
    response = json.loads(lines[0])["response"]
    path.write_text(json.dumps({"digest": "x", "request": {"t": float("nan")}, "response": response}) + "\n")
    with pytest.raises(CassetteError, match=r"session\.jsonl:1: request is not plain JSON data"):
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


# --- the matching rule (cassette_match) ----------------------------------------------------------------


def _with_tool_result(body: object, *, as_blocks: bool = False) -> dict:
    """A diagnose turn: the teacher asked for run_student_on_task, here is the (JSON) result."""
    text = json.dumps(body)
    content: object = [{"type": "text", "text": text}] if as_blocks else text
    params = _params("What fails?")
    params["messages"] += [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "run_student_on_task", "input": {"task_id": "m1"}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": content}]},
    ]  # fmt: skip
    return params


def _student_run(output: str = "41", latency: float = 0.0123) -> dict:
    return {"task_id": "m1", "output": output, "model": "qwen", "latency_seconds": latency, "tokens_used": 3}


@pytest.mark.parametrize("as_blocks", [False, True])
def test_a_request_differing_only_in_the_students_latency_replays(tmp_path, as_blocks):
    path = tmp_path / "c.jsonl"
    recorded = _with_tool_result(_student_run(latency=0.0123), as_blocks=as_blocks)
    with ScriptedAnthropicServer(["the answer"]) as server:
        RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path).messages.create(
            **recorded
        )
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["digest"] == request_digest(recorded)  # the file keeps the exact digest
    live = _with_tool_result(_student_run(latency=7.5), as_blocks=as_blocks)
    assert request_digest(live) != request_digest(recorded)
    assert CassetteTeacher(path).messages.create(**live).content[0].text == "the answer"


def test_normalised_masks_volatile_keys_at_any_depth_and_nothing_else():
    request = _with_tool_result({"runs": [_student_run(latency=1.5)], "note": "plain"})
    request["metadata"] = {"latency_seconds": 2.0}
    request["messages"].append({"role": "user", "content": "{not json"})
    result = normalised(request)
    assert {"latency_seconds"} == VOLATILE_KEYS
    tool_result = result["messages"][2]["content"][0]
    assert tool_result["content"] == {"runs": [_student_run(latency=VOLATILE)], "note": "plain"}  # type: ignore[arg-type]
    assert tool_result["tool_use_id"] == "toolu_1"  # ids come from the recorded replies: kept
    assert result["metadata"] == {"latency_seconds": VOLATILE}
    assert result["messages"][3]["content"] == "{not json"  # text that is not JSON stays text
    assert result["system"] == request["system"] and result["tools"] == request["tools"]
    assert normalised(result) == result  # applying the rule twice changes nothing
    assert match_digest(request) == match_digest(json.loads(json.dumps(request)))


def test_a_miss_inside_a_tool_result_names_the_field_and_both_values(tmp_path):
    path = tmp_path / "c.jsonl"
    with ScriptedAnthropicServer(["the answer"]) as server:
        RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path).messages.create(
            **_with_tool_result(_student_run(output="41"))
        )
    with pytest.raises(CassetteMiss) as caught:
        CassetteTeacher(path).messages.create(**_with_tool_result(_student_run(output="51", latency=9.0)))
    assert 'messages[2].content[0].content.output: recorded "41" vs now "51"' in str(caught.value)


def test_long_values_are_windowed_around_the_difference_not_cut_before_it(tmp_path):
    path = tmp_path / "c.jsonl"
    head, tail = "x" * 500, "y" * 500
    with ScriptedAnthropicServer(["the answer"]) as server:
        RecordingTeacher(anthropic.Anthropic(base_url=server.base_url, api_key="test"), path).messages.create(
            **_params(f"{head} model qwen2.5-math:7b {tail}")
        )
    with pytest.raises(CassetteMiss) as caught:
        CassetteTeacher(path).messages.create(**_params(f"{head} model qwen2.5:7b {tail}"))
    text = str(caught.value)
    assert "messages[0].content (the values differ from character 515)" in text
    assert "model qwen2.5-math:7b" in text and "model qwen2.5:7b" in text
    recorded, now = text.split(": recorded ", 1)[1].split(" vs now ")
    assert recorded.startswith("…x") and recorded.endswith("y…") and len(recorded) < 200
    assert now.startswith("…x") and now.endswith("y…") and len(now) < 200


def test_a_missing_key_or_extra_element_shows_as_absent():
    assert divergence({"a": 1}, {"a": 1, "b": [2]}) == Divergence("b", "<absent>", [2])
    assert divergence([1], [1, {"c": 3}]) == Divergence("[1]", "<absent>", {"c": 3})
    assert divergence({"a": 1}, {"a": 1.0}) == Divergence("a", 1, 1.0)  # canonical JSON tells them apart
    assert Divergence("b", "<absent>", [2]).describe() == "b: recorded <absent> vs now [2]"
    assert first_difference({"a": [1, 2]}, {"a": [1, 3]}) == "a[1]"


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5), _containers, max_leaves=10
)


@given(_json, _json)
def test_divergence_is_none_exactly_for_equal_json(a, b):
    found = divergence(a, b)
    # JSON equality, not Python's: `true` is not `1`.
    assert (found is None) == (json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))
    assert divergence(a, a) is None


def test_a_cassette_that_is_not_text_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b"\x00\xff\xfe")
    with pytest.raises(CassetteError, match=r"binary\.jsonl: not a cassette: not UTF-8"):
        CassetteTeacher(path)
