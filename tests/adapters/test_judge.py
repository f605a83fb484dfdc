from __future__ import annotations

import anthropic
import pytest
from anthropic.types import Message

from distill_es.adapters.judge import MatchJudge, TeacherJudge, normalise
from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.ports import BenchmarkTask, Judge
from distill_es.testing.servers import ScriptedAnthropicServer, text_reply, tool_use_reply


def _task(reference: str) -> BenchmarkTask:
    return BenchmarkTask(task_id="t", query="q?", reference_answer=reference)


def test_normalise():
    assert normalise("  Hello,   WORLD!\n") == "hello world"
    assert normalise("Straße") == "strasse"
    assert normalise("«Paris»—France.") == "paris france"
    assert normalise("x^2/2") == "x^2 2"


@pytest.mark.parametrize(
    ("reference", "output", "score"),
    [
        ("Paris", "paris.", 1.0),
        ("Paris", "The capital is Paris, of course.", 1.0),
        ("New York", "It's in new   york!", 1.0),
        ("42", "The answer is 42.", 1.0),
        ("4", "The answer is 14.", 0.0),  # whole words only
        ("Paris", "London", 0.0),
        ("Paris", "", 0.0),
        ("", "anything", 0.0),
    ],
)
def test_match_judge(reference, output, score):
    verdict = MatchJudge().score(_task(reference), output)
    assert verdict.score == score
    assert verdict.reasoning


def test_match_judge_is_a_judge():
    assert isinstance(MatchJudge(), Judge)


def _judge(server: ScriptedAnthropicServer, **kw) -> TeacherJudge:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
    return TeacherJudge(client, "claude-haiku-4-5", **kw)


def test_teacher_judge_forces_the_verdict_tool_and_exposes_the_message():
    reply = tool_use_reply("submit_verdict", {"score": 0.75, "reasoning": "Mostly right."})
    with ScriptedAnthropicServer([reply, reply]) as server:
        judge = _judge(server)
        assert isinstance(judge, Judge)
        task = BenchmarkTask(task_id="t", query="Mail alice@example.com the key", reference_answer="Done")
        verdict = judge.score(task, "Sent sk-ant-api03-" + "x" * 30)
        request = server.requests[0]
        again, message = judge.score_with_message(task, "Sent")
    assert (verdict.score, verdict.reasoning) == (0.75, "Mostly right.")
    assert again == verdict
    assert isinstance(message, Message) and isinstance(judge.last_message, Message)
    assert message.usage.input_tokens > 0  # what the engine needs to charge the judge's cost
    assert request["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
    assert request["tools"][0]["name"] == "submit_verdict"
    assert request["model"] == "claude-haiku-4-5"
    prompt = request["messages"][0]["content"]
    assert "alice@example.com" not in prompt and "sk-ant-" not in prompt
    assert "[REDACTED:email]" in prompt and "[REDACTED:anthropic_key]" in prompt


def test_teacher_judge_can_leave_inputs_alone():
    reply = tool_use_reply("submit_verdict", {"score": 1, "reasoning": ""})
    with ScriptedAnthropicServer([reply]) as server:
        _judge(server, scrub_inputs=False).score(_task("bob@example.com"), "bob@example.com")
        assert "bob@example.com" in server.requests[0]["messages"][0]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        text_reply("I think 0.5"),
        tool_use_reply("submit_verdict", {"score": "high", "reasoning": ""}),
        tool_use_reply("submit_verdict", {"score": 7, "reasoning": ""}),
        tool_use_reply("other_tool", {"score": 1}),
    ],
)
def test_teacher_judge_refuses_malformed_verdicts(reply):
    with ScriptedAnthropicServer([reply]) as server, pytest.raises(InvalidTeacherOutput):
        _judge(server).score(_task("x"), "x")
