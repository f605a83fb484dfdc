"""The retry loop's verdict for every status an endpoint can answer, through the real openai client and
a real server: retried then interrupted, refused as a request, or (a wrong key, URL or model)
interrupted at once — never a result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.adapters.retry import RetryPolicy, Wait, call_with_retries, safe_url
from distill_es.domain.errors import EndpointUnavailable, RequestRefused
from distill_es.testing.servers import ScriptedStudentServer

URL = "http://user:secret@127.0.0.1:8000/v1/chat/completions?key=abc"
POLICY = RetryPolicy(
    max_retries=2, backoff_seconds=1.0, max_backoff_seconds=1.5, max_rate_limit_wait_seconds=60.0
)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedStudentServer]:
    with ScriptedStudentServer(lambda r: "ok") as running:
        yield running


def post(server: ScriptedStudentServer) -> tuple[Callable[[], Any], dict[str, int]]:
    """One chat request through the real openai client (its own retries off), counted."""
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    calls = {"n": 0}

    def call() -> Any:
        calls["n"] += 1
        return client.post("/chat/completions", body={"model": "m", "messages": []}, cast_to=dict)

    return call, calls


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(status=st.integers(400, 599))
def test_every_status_is_classified(server: ScriptedStudentServer, status: int) -> None:
    server.clear_failures()
    server.fail_next(status, count=10, headers={"x-status": str(status)})  # no retry-after
    call, calls = post(server)
    slept: list[float] = []
    with pytest.raises((RequestRefused, EndpointUnavailable)) as caught:
        call_with_retries(call, role="student", endpoint=URL, policy=POLICY, sleep=slept.append)
    if status in (400, 413, 422):
        assert isinstance(caught.value, RequestRefused) and calls["n"] == 1
    elif status in (408, 409, 429) or status >= 500:
        assert isinstance(caught.value, EndpointUnavailable) and calls["n"] == 3
        assert slept == [1.0, 1.5]  # backoff doubles, capped
    else:  # 401, 403, 404, …: fixed outside, not by waiting
        assert isinstance(caught.value, EndpointUnavailable) and calls["n"] == 1 and slept == []
    assert f"127.0.0.1:{server.port}/v1/chat/completions" in str(caught.value)


def test_retry_after_is_honoured_within_the_bound_and_reported(server: ScriptedStudentServer) -> None:
    server.clear_failures()
    server.fail_next(429, headers={"retry-after": "20"})
    server.fail_next(503, headers={"retry-after-ms": "2500"})
    call, _ = post(server)
    waits: list[Wait] = []
    slept: list[float] = []
    reply = call_with_retries(
        call, role="teacher", endpoint=URL, policy=POLICY, on_wait=waits.append, sleep=slept.append
    )
    assert reply["choices"][0]["message"]["content"] == "ok"
    assert slept == [20.0, 2.5]
    assert [w.reason for w in waits] == ["rate limited", "retrying after InternalServerError"]


def test_retry_after_beyond_the_bound_interrupts_without_waiting(server: ScriptedStudentServer) -> None:
    server.clear_failures()
    server.fail_next(429, count=2, headers={"retry-after": "40"})
    call, calls = post(server)
    slept: list[float] = []
    with pytest.raises(EndpointUnavailable, match="asked to wait 40 s") as caught:
        call_with_retries(call, role="teacher", endpoint=URL, policy=POLICY, sleep=slept.append)
    assert slept == [40.0] and calls["n"] == 2  # 40 s fits in 60; 80 s in all does not
    assert caught.value.attempts == 2


def test_other_errors_are_not_ours_to_classify() -> None:
    def call() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        call_with_retries(call, role="student", endpoint=URL, policy=POLICY, sleep=lambda s: None)


def test_urls_never_carry_credentials_or_queries() -> None:
    assert safe_url(URL) == "http://127.0.0.1:8000/v1/chat/completions"
