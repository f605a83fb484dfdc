from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import anthropic
import pytest

from distill_es.adapters.teacher import (
    default_teacher,
    request_digest,
    response_to_dict,
    usage_of,
)
from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.phases.prompt_cache import with_prompt_cache
from distill_es.testing.servers import ScriptedAnthropicServer, text_reply
from tests.teacher_request import PARAMS


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
