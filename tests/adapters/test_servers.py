from __future__ import annotations

import time

import anthropic
import openai
import pytest

from distill_es.phases.prompt_cache import with_prompt_cache
from distill_es.testing.servers import (
    ScriptedAnthropicServer,
    ScriptedStudentServer,
    text_reply,
    tool_use_reply,
    tool_uses_reply,
)

PARAMS = {
    "model": "claude-opus-4-6",
    "max_tokens": 512,
    "system": "You study a local agent. " * 40,
    "tools": [{"name": "list_traces", "description": "List traces", "input_schema": {"type": "object"}}],
    "messages": [{"role": "user", "content": "Begin."}],
}


def _client(server: ScriptedAnthropicServer, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", **kw)


def _conversation(script):
    with ScriptedAnthropicServer(script) as server:
        client = _client(server)
        params = {**PARAMS, "messages": list(PARAMS["messages"])}
        transcript = []
        while True:
            message = client.messages.create(**with_prompt_cache(params))
            transcript.append(message)
            if message.stop_reason != "tool_use":
                return transcript
            params["messages"] += [
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": b.id, "content": "[]"}
                        for b in message.content
                        if b.type == "tool_use"
                    ],
                },
            ]


SCRIPT = [
    tool_use_reply("list_traces", {"limit": 5}),
    tool_uses_reply([("list_traces", {"limit": 1}), ("list_traces", {"limit": 2})], text="Two at once."),
    text_reply("Done."),
]


def test_compact_replies_become_full_messages_with_deterministic_ids():
    first, second = _conversation(SCRIPT), _conversation(SCRIPT)
    assert [m.model_dump() for m in first] == [m.model_dump() for m in second]
    assert first[0].stop_reason == "tool_use" and first[-1].stop_reason == "end_turn"
    assert first[0].model == "claude-opus-4-6"
    ids = [b.id for m in first for b in m.content if b.type == "tool_use"]
    assert len(ids) == 3 and len(set(ids)) == 3 and all(i.startswith("toolu_") for i in ids)


def test_cache_writes_then_reads_as_the_conversation_grows():
    transcript = _conversation(SCRIPT)
    first, second, third = (m.usage for m in transcript)
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    # Turn 2 re-reads everything turn 1 wrote, and writes only the new turn.
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert 0 < second.cache_creation_input_tokens < first.cache_creation_input_tokens
    assert third.cache_read_input_tokens > second.cache_read_input_tokens


def test_no_cache_markers_means_plain_input_only():
    with ScriptedAnthropicServer(["a", "b"]) as server:
        client = _client(server)
        one = client.messages.create(**PARAMS).usage
        two = client.messages.create(**PARAMS).usage
    assert one.cache_read_input_tokens == two.cache_read_input_tokens == 0
    assert one.cache_creation_input_tokens == 0
    assert one.input_tokens == two.input_tokens > 100


def test_min_cacheable_tokens_disables_small_prefixes():
    with ScriptedAnthropicServer(["a"], min_cacheable_tokens=10**6) as server:
        usage = _client(server).messages.create(**with_prompt_cache(PARAMS)).usage
    assert usage.cache_creation_input_tokens == 0


def test_injected_overload_is_retried_by_the_sdk():
    with ScriptedAnthropicServer(["ok"]) as server:
        server.fail_next(529, count=2)
        message = _client(server, max_retries=2).messages.create(**PARAMS)
        assert message.content[0].text == "ok"
        assert server.failures_injected == 2 and len(server.requests) == 3


def test_failures_beyond_retries_surface_as_sdk_errors():
    with ScriptedAnthropicServer(["ok"]) as server:
        server.fail_next(500, count=5)
        with pytest.raises(anthropic.InternalServerError):
            _client(server, max_retries=1).messages.create(**PARAMS)


def test_callable_script_and_exhaustion_and_too_many_breakpoints():
    def script(request):
        return text_reply(f"{len(request['messages'])} messages")

    with ScriptedAnthropicServer(script) as server:
        assert _client(server).messages.create(**PARAMS).content[0].text == "1 messages"
    with ScriptedAnthropicServer([]) as server:
        with pytest.raises(anthropic.BadRequestError, match="script exhausted"):
            _client(server).messages.create(**PARAMS)
        assert len(server.requests) == 1  # not retried
        marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
        with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
            _client(server).messages.create(
                **{**PARAMS, "messages": [{"role": "user", "content": [marked] * 5}]}
            )


def test_student_server_overlaps_requests_and_reports_peak():
    with ScriptedStudentServer(lambda r: r["messages"][-1]["content"].upper(), latency=0.2) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        import concurrent.futures as cf

        started = time.monotonic()
        with cf.ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda q: (
                        client.chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
                        .choices[0]
                        .message.content
                    ),
                    ["a", "b", "c", "d"],
                )
            )
        assert answers == ["A", "B", "C", "D"]
        assert time.monotonic() - started < 0.6
        assert server.peak_concurrency > 1
        assert [m.id for m in client.models.list()] == ["test-model"]


def test_student_server_close_releases_hanging_requests():
    server = ScriptedStudentServer({"q": "a"}, hang_seconds=30)
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
