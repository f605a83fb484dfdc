"""What users pay for: student calls (scored once per tree, concurrently) and teacher tokens (cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.adapters.judge import TeacherJudge
from distill_es.adapters.pricing import cost_of
from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer, tool_uses_reply

from .conftest import World


def scored_events(engine: Engine, sid: str) -> list[ev.TasksScored]:
    return [e for e in engine.store.domain_events(sid) if isinstance(e, ev.TasksScored)]


def test_cache_tokens_are_recorded_and_priced_at_their_own_rates(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    ledger = {entry["call_key"]: entry for entry in engine.cost_ledger(session.id)}
    first, second = ledger["diagnose/1"], ledger["diagnose/2"]
    assert first["usage"]["cache_creation_input_tokens"] > 0  # the stable prefix is written once
    assert second["usage"]["cache_read_input_tokens"] > 0  # and read back on the next turn
    as_uncached = dict(second["usage"])
    as_uncached["input_tokens"] += as_uncached.pop("cache_read_input_tokens")
    as_uncached["input_tokens"] += as_uncached.pop("cache_creation_input_tokens")
    assert second["cost_usd"] == pytest.approx(cost_of(second["model"], second["usage"]))
    assert second["cost_usd"] < cost_of(second["model"], as_uncached)
    assert session.teacher_cost_usd == pytest.approx(sum(e["cost_usd"] for e in ledger.values()))


def test_prompt_caching_can_be_turned_off(scripted_world: World):
    engine = scripted_world.engine(settings={"teacher": {"prompt_caching": False}})
    session = engine.run_session(OnDemandTrigger())
    usages = [entry["usage"] for entry in engine.cost_ledger(session.id)]
    assert all(u.get("cache_read_input_tokens", 0) == 0 for u in usages)
    assert all("cache_control" not in str(r) for r in scripted_world.teacher_server.requests)


def judged_teacher(request: dict[str, Any]) -> dict[str, Any]:
    """The demo teacher, which also answers LLM-judge requests."""
    if (request.get("tool_choice") or {}).get("name") == "submit_verdict":
        text = request["messages"][-1]["content"]
        reference = text.split("<reference_answer>\n")[1].split("\n</reference_answer>")[0]
        candidate = text.split("<candidate_answer>\n")[1].split("\n</candidate_answer>")[0]
        score = 1.0 if reference.lower() in candidate.lower() else 0.0
        return tool_uses_reply(
            [("submit_verdict", {"score": score, "reasoning": "compared to the reference"})]
        )
    return world.teacher_reply(request)


def test_llm_judge_calls_are_in_the_cost_ledger(tmp_path: Path):
    with (
        ScriptedAnthropicServer(judged_teacher) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
        engine = Engine.open(home, teacher=client, judge=TeacherJudge(client, "claude-haiku-4-5"))
        session = engine.run_session(OnDemandTrigger())
        assert session.status == "awaiting_review"
        judge_calls = [e for e in engine.cost_ledger(session.id) if e["purpose"] == "judge"]
        # While diagnosing: 3 student runs and 1 teacher self-run judged; then 24 gate scores.
        assert len(judge_calls) == 4 + session.student_calls_made
        assert all(call["model"] == "claude-haiku-4-5" and call["cost_usd"] > 0 for call in judge_calls)
        assert len({call["call_key"] for call in judge_calls}) == len(judge_calls)


def comparable(events: list[ev.TasksScored]) -> list[tuple[Any, ...]]:
    return [
        (e.tree_sha, [{k: v for k, v in s.items() if k != "latency_seconds"} for s in e.scores])
        for e in events
    ]


def test_concurrent_and_serial_scoring_record_the_same_results(tmp_path: Path):
    recorded = []
    for concurrency in (1, 8):
        with (
            ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
            ScriptedStudentServer(world.toy_answer, latency=0.02) as student_server,
        ):
            home = world.create_demo_workspace(
                tmp_path / f"c{concurrency}", student_url=student_server.base_url
            )
            client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
            engine = Engine.open(home, teacher=client, settings={"student": {"concurrency": concurrency}})
            session = engine.run_session(OnDemandTrigger())
            recorded.append(comparable(scored_events(engine, session.id)))
            if concurrency > 1:
                assert student_server.peak_concurrency > 1
    serial, concurrent = recorded
    assert serial == concurrent and len(serial) == 3


def test_requests_the_student_refuses_become_recorded_per_task_errors(tmp_path: Path):
    def refuses_m3(request: dict[str, Any]) -> str:
        if request["messages"][-1]["content"] == "What is 23 + 58?":
            raise ValueError("context length exceeded")  # the server answers 400 for this one task
        return world.toy_answer(request)

    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(refuses_m3, fail_first=2, fail_status=503) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
        settings = {
            "student": {"max_retries": 2, "concurrency": 4},
            "network": {"backoff_seconds": 0.01},
        }
        engine = Engine.open(home, teacher=client, settings=settings)
        session = engine.run_session(OnDemandTrigger())
        assert session.status == "awaiting_review"  # a refused task never crashes the gate
        assert student_server.failures_injected == 2  # retried past the two 503s
        for event in scored_events(engine, session.id):
            m3 = next(s for s in event.scores if s["task_id"] == "m3")
            assert m3["score"] == 0.0 and "refused the request (400)" in m3["error"]
            assert "context length exceeded" in m3["error"]
            others = [s for s in event.scores if s["task_id"] != "m3"]
            assert all(s["error"] is None for s in others)
