"""A teacher reply's token counts are hostile numbers: validated at the boundary, never a crash.

The replies come from the real ScriptedAnthropicServer through the real anthropic SDK.
"""

from __future__ import annotations

from typing import Any

import pytest

from distill_es.adapters.pricing import cost_of
from distill_es.adapters.teacher import MAX_TOKENS_PER_CALL, usage_of
from distill_es.demo import world
from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, with_usage

from .conftest import World

GOOD = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
HOSTILE = [
    pytest.param({**GOOD, "input_tokens": -1_000_000_000}, "input_tokens", id="negative"),
    pytest.param({**GOOD, "output_tokens": "12"}, "output_tokens", id="string"),
    pytest.param({**GOOD, "input_tokens": 1.5}, "input_tokens", id="float"),
    pytest.param({**GOOD, "output_tokens": True}, "output_tokens", id="bool"),
    pytest.param({**GOOD, "input_tokens": None}, "input_tokens", id="null-required"),
    pytest.param({**GOOD, "cache_read_input_tokens": 10**30}, "cache_read_input_tokens", id="huge"),
    pytest.param({**GOOD, "cache_creation_input_tokens": -1}, "cache_creation_input_tokens", id="neg-cache"),
    pytest.param(None, "usage", id="usage-null"),
    pytest.param([1, 2], "usage", id="usage-list"),
]


def first_diagnose_reply_with(usage: Any):
    served = {"done": False}

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        answer = world.teacher_reply(request)
        if request.get("tools") and not served["done"]:
            served["done"] = True
            return with_usage(answer, usage)
        return answer

    return reply


@pytest.mark.parametrize(("usage", "field"), HOSTILE)
def test_a_hostile_usage_block_fails_the_session_as_invalid_teacher_output(
    scripted_world: World, usage: Any, field: str
):
    scripted_world.teacher_server.script = first_diagnose_reply_with(usage)
    engine = scripted_world.engine()

    session = engine.run_session(OnDemandTrigger())

    assert session.status == "failed"
    failed = engine.store.domain_events(session.id)[-1]
    assert isinstance(failed, ev.SessionFailed) and failed.reason_code == "teacher_invalid_output"
    assert field in session.error and "diagnose" in session.error
    events = engine.store.domain_events(session.id)
    assert not any(isinstance(e, ev.TeacherCallCompleted) for e in events)  # never priced
    assert session.teacher_cost_usd == 0.0
    # Every read still works, and the log is intact.
    assert engine.get(session.id).status == "failed"
    assert [v.id for v in engine.sessions()] == [session.id]
    assert all(report.ok for report in engine.verify())
    # A new session on the same workspace runs normally.
    scripted_world.teacher_server.script = world.teacher_reply
    assert engine.run_session(OnDemandTrigger()).status == "awaiting_review"


def test_a_hostile_usage_on_a_self_run_goes_back_to_the_teacher_as_a_tool_error(scripted_world: World):
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        answer = world.teacher_reply(request)
        if not request.get("tools"):  # run_self_on_task: a plain request without tools
            return with_usage(answer, {**GOOD, "output_tokens": -5})
        return answer

    scripted_world.teacher_server.script = reply
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())

    assert session.status == "awaiting_review"  # the diagnosis went on without the self run
    results = [e for e in engine.store.domain_events(session.id) if isinstance(e, ev.ToolCallCompleted)]
    self_runs = [r for r in results if r.tool == "run_self_on_task"]
    assert self_runs and all(r.is_error and "usage.output_tokens" in r.content for r in self_runs)
    assert all(call["purpose"] != "self_run" for call in engine.cost_ledger(session.id))


def test_the_sdk_hands_hostile_numbers_through_unchecked():
    """Why the boundary check is ours: the SDK builds its Message without validating usage."""
    import anthropic

    with ScriptedAnthropicServer([with_usage("hi", {**GOOD, "input_tokens": -7})]) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        message = client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert message.usage.input_tokens == -7
    with pytest.raises(InvalidTeacherOutput, match=r"usage\.input_tokens is -7"):
        usage_of(message)


@pytest.mark.parametrize("value", [-1, MAX_TOKENS_PER_CALL + 1, "3", 2.0, False, [1]])
def test_cost_of_refuses_counts_that_are_not_token_counts(value: Any):
    with pytest.raises(InvalidTeacherOutput, match="input_tokens"):
        cost_of("claude-opus-4-6", {"input_tokens": value})


def test_valid_usage_is_read_exactly():
    assert usage_of({"usage": {**GOOD, "cache_read_input_tokens": None}}) == {**GOOD}
    assert cost_of("claude-opus-4-6", {"input_tokens": MAX_TOKENS_PER_CALL}) == pytest.approx(50.0)
