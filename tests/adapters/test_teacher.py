from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill_es.adapters.teacher import (
    default_teacher,
    request_digest,
    response_to_dict,
    usage_of,
    with_prompt_cache,
)
from distill_es.demo.servers import ScriptedAnthropicServer, text_reply
from distill_es.domain.errors import InvalidTeacherOutput

PARAMS = {
    "model": "claude-opus-4-6",
    "max_tokens": 1024,
    "system": "You are the teacher. Ünïcödé ✓",
    "tools": [
        {"name": "list_traces", "description": "List traces", "input_schema": {"type": "object"}},
        {"name": "get_trace", "description": "One trace", "input_schema": {"type": "object"}},
    ],
    "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": "Study the student."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "list_traces", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "[]"}]},
    ],
}


def _markers(value) -> list:
    found = []
    if isinstance(value, dict):
        if "cache_control" in value:
            found.append(value)
        for v in value.values():
            found += _markers(v)
    elif isinstance(value, list):
        for v in value:
            found += _markers(v)
    return found


def test_digest_is_stable_across_processes():
    code = (
        "import json, sys; from distill_es.adapters.teacher import request_digest; "
        "print(request_digest(json.loads(sys.stdin.read())))"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(PARAMS),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert digests == {request_digest(PARAMS)}


def test_digest_ignores_key_order_but_not_content():
    reordered = dict(reversed(list(PARAMS.items())))
    assert request_digest(reordered) == request_digest(PARAMS)
    changed = copy.deepcopy(PARAMS)
    changed["messages"][0]["content"] = "Study the student!"
    assert request_digest(changed) != request_digest(PARAMS)
    assert len(request_digest(PARAMS)) == 64


def test_digest_drops_not_given_sentinels():
    assert request_digest({**PARAMS, "temperature": anthropic.NOT_GIVEN}) == request_digest(PARAMS)


def test_prompt_cache_marks_last_tool_system_and_last_user_block():
    original = copy.deepcopy(PARAMS)
    cached = with_prompt_cache(PARAMS)
    assert original == PARAMS  # input untouched
    assert len(_markers(cached)) == 3
    assert cached["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in cached["tools"][0]
    assert cached["system"] == [
        {"type": "text", "text": PARAMS["system"], "cache_control": {"type": "ephemeral"}}
    ]
    assert cached["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in json.dumps(cached["messages"][:2])


def test_prompt_cache_converts_a_string_user_message():
    cached = with_prompt_cache(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert cached["messages"][0]["content"] == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]
    assert "system" not in cached and "tools" not in cached


def test_prompt_cache_counts_existing_breakpoints():
    params = copy.deepcopy(PARAMS)
    params["messages"][0]["content"] = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(3)
    ]
    cached = with_prompt_cache(params)
    assert len(_markers(cached)) == 4
    assert cached["tools"][-1]["cache_control"] == {"type": "ephemeral"}  # first in prefix order wins

    params["messages"][1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert with_prompt_cache(params) == params  # already at the limit: nothing added


blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.text(max_size=5)},
        optional={"cache_control": st.just({"type": "ephemeral"})},
    ),
    min_size=1,
    max_size=4,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": st.one_of(st.text(max_size=5), blocks)}
    ),
    max_size=5,
)


@given(
    messages=messages,
    system=st.one_of(st.none(), st.text(max_size=5), blocks),
    n_tools=st.integers(0, 3),
)
def test_prompt_cache_never_exceeds_four_breakpoints_and_never_mutates(messages, system, n_tools):
    params = {"model": "m", "max_tokens": 1, "messages": messages}
    if system is not None:
        params["system"] = system
    if n_tools:
        params["tools"] = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(n_tools)]
    before = copy.deepcopy(params)
    cached = with_prompt_cache(params)
    assert params == before
    assert len(_markers(cached)) <= max(4, len(_markers(params)))
    if len(_markers(params)) <= 4:
        assert len(_markers(cached)) <= 4


def test_response_and_usage_helpers_through_the_real_client():
    with ScriptedAnthropicServer([text_reply("hello")]) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test")
        message = client.messages.create(**with_prompt_cache(PARAMS))
    data = response_to_dict(message)
    json.dumps(data)  # JSON-safe
    assert data["content"] == [{"type": "text", "text": "hello"}]
    usage = usage_of(message)
    assert set(usage) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert all(isinstance(v, int) for v in usage.values())
    assert usage["cache_creation_input_tokens"] > 0
    # The cache counts are nullable in the API; the input and output counts never are (issue 13).
    assert usage_of({"usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": None}}) == {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    with pytest.raises(InvalidTeacherOutput, match="output_tokens"):
        usage_of({"usage": {"input_tokens": 3, "output_tokens": None}})


def test_default_teacher_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    client = default_teacher(max_retries=5)
    assert isinstance(client, anthropic.Anthropic)
    assert client.max_retries == 5
    assert str(client.base_url).startswith("http://127.0.0.1:9")


def test_default_teacher_is_built_once_per_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-one")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    first = default_teacher()
    assert default_teacher() is first  # a worker's next session reuses the client
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-two")
    other = default_teacher()
    assert other is not first and other.api_key == "sk-two"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:10")
    assert str(default_teacher().base_url).startswith("http://127.0.0.1:10")
