"""Whatever the teacher writes, the engine records a clear outcome and the log stays intact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing import ScriptedTeacher
from distill_es.testing.servers import text_reply, tool_uses_reply


def teacher_with_plan(plan_reply: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if (request.get("tool_choice") or {}).get("name") == "submit_plan":
            return plan_reply
        return world.teacher_reply(request)

    return reply


def run(tmp_path: Path, script: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[Engine, Any]:
    home = world.create_demo_workspace(tmp_path / "ws")
    engine = Engine.open(home, teacher=ScriptedTeacher(script), student=world.DemoStudent(home))
    session = engine.run_session(OnDemandTrigger())
    assert all(report.ok for report in engine.verify(session.id)), "the log must stay intact"
    return engine, session


@pytest.mark.parametrize(
    ("plan_reply", "expected"),
    [
        (text_reply("Here is my plan: make it better."), "did not call submit_plan"),
        (tool_uses_reply([("submit_plan", {"edits": "lots of them"})]), "edits"),
        (tool_uses_reply([("submit_plan", {"changes": []})]), "edits"),
    ],
)
def test_unusable_plans_fail_the_session_with_the_reason(tmp_path: Path, plan_reply: dict, expected: str):
    engine, session = run(tmp_path, teacher_with_plan(plan_reply))
    assert session.status == "failed"
    assert "plan could not be used" in session.error and expected in session.error
    failed = engine.store.domain_events(session.id)[-1]
    assert isinstance(failed, ev.SessionFailed) and failed.reason_code == "plan_invalid"


def test_bad_edits_are_refused_one_by_one_and_the_good_one_still_applies(tmp_path: Path):
    good = world.EDITS[0]
    items = [
        ["set_model_param", "temperature", 0.1],  # an array instead of an object
        "route arithmetic to a bigger model",  # prose
        {**good, "id": "e_unknown", "op": "teleport_student"},  # unknown op
        {**good, "id": "e_types", "payload": {"query_class": 7, "model": ["x"]}},  # wrong types
        {**good, "id": "e_pillar", "pillar": "tools"},  # pillar does not match op
        {**good, "id": "e_huge", "rationale": "x" * 200_000},  # huge
        good,
    ]
    engine, session = run(tmp_path, teacher_with_plan(tool_uses_reply([("submit_plan", {"edits": items})])))
    assert session.status == "completed"
    # Every bad edit has a visible fate: refused at plan time, with the plan's reason.
    refused = ["edits[0]", "edits[1]", "e_unknown", "e_types", "e_pillar", "e_huge"]
    assert [(o.edit_id, o.status) for o in session.edit_outcomes] == [
        ("edit_001", "applied"),
        *((edit_id, "refused") for edit_id in refused),
    ]
    assert all(o.error for o in session.edit_outcomes if o.status == "refused")
    assert "teleport_student" in (session.edit_outcomes[3].error or "")
    [frozen] = [e for e in engine.store.domain_events(session.id) if isinstance(e, ev.PlanFrozen)]
    assert [r["index"] for r in frozen.rejected] == [0, 1, 2, 3, 4, 5]
    assert all(r["reason"] for r in frozen.rejected)
    assert "teleport_student" in frozen.rejected[2]["reason"]


def test_an_invalid_diagnosis_goes_back_to_the_teacher_as_a_tool_error(tmp_path: Path):
    bad = [{**world.CLUSTERS[0], "student_failure_rate": 5}]  # a rate must be a fraction, not 5%

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        turns = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")
        if request.get("tools") and turns == 2:
            return tool_uses_reply([("submit_diagnosis", {"diagnosis_markdown": "d", "clusters": bad})])
        if request.get("tools") and turns == 3:
            wrong_types = {"diagnosis_markdown": 42, "clusters": {"not": "a list"}}
            return tool_uses_reply([("submit_diagnosis", wrong_types)])
        if request.get("tools") and turns == 4:  # the first two answers went back as tool errors
            return world.teacher_reply({**request, "messages": request["messages"][:5]})
        return world.teacher_reply(request)

    engine, session = run(tmp_path, reply)
    assert session.status == "awaiting_review", session.error
    errors = [
        e
        for e in engine.store.domain_events(session.id)
        if isinstance(e, ev.ToolCallCompleted) and e.tool == "submit_diagnosis"
    ]
    assert [e.is_error for e in errors] == [True, True]
    assert "student_failure_rate" in errors[0].content
    assert "clusters" in errors[1].content and "diagnosis_markdown" in errors[1].content
