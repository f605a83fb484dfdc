"""`react`: the pure decision of what a session records about a step's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from distill_es.domain.session import next_step as steps
from distill_es.domain.session.react import Command, Done, Refused, react, skipped_by_cancel, unsettled_edits
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS

SESSION: Any = None  # react reads the session only where a rule needs it; these rules do not

CALL = {"call_key": "self_run/t1", "purpose": "self_run", "model": "m", "request_digest": "d",
        "response": {}, "usage": {}, "cost_usd": 0.1}  # fmt: skip
JUDGE = {**CALL, "call_key": "judge/7/0", "purpose": "judge"}


def names(commands: list[Command]) -> list[str]:
    return [c.name for c in commands]


def test_done_records_the_steps_own_command_with_its_arguments() -> None:
    step = steps.ValidateEdit("e1")
    assert react(SESSION, step, Done({"edit_id": "e1", "ok": True, "reason": ""})) == [
        Command("validate_edit", {"edit_id": "e1", "ok": True, "reason": ""})
    ]


@pytest.mark.parametrize(
    ("step", "code"),
    [
        (steps.BeginDiagnosis(), "no_benchmark"),
        (steps.ChooseGateTasks(), "no_benchmark"),
        (steps.CallTeacher("diagnose/1", "diagnose"), "cassette_divergence"),
        (steps.CallTeacher("plan", "plan"), "teacher_error"),
        (steps.FreezePlan(), "plan_invalid"),
        (steps.ScoreTree("t" * 40, "e1"), "benchmark_changed"),
    ],
)
def test_a_refusal_fails_the_session_with_its_code(step: steps.Step, code: str) -> None:
    assert react(SESSION, step, Refused(code, "why")) == [
        Command("fail", {"error": "why", "reason_code": code})
    ]


def test_paid_calls_are_recorded_first_even_when_the_step_is_refused() -> None:
    step = steps.ScoreTree("t" * 40, "e1")
    commands = react(SESSION, step, Refused("judge_error", "down", paid=(JUDGE,)))
    assert names(commands) == ["record_teacher_call", "fail"]
    assert commands[0].args == JUDGE


def test_an_edit_the_workspace_cannot_apply_is_skipped_or_invalid_not_a_failure() -> None:
    step = steps.ApplyEdit("e1")
    assert react(SESSION, step, Refused("op_not_available", "no such op")) == [
        Command("skip_edit", {"edit_id": "e1", "reason": "no such op"})
    ]
    assert react(SESSION, step, Refused("invalid_edit", "bad diff")) == [
        Command("validate_edit", {"edit_id": "e1", "ok": False, "reason": "apply failed: bad diff"})
    ]
    assert react(SESSION, steps.TrainEdit("e2"), Refused("training_spec_invalid", "no data")) == [
        Command("skip_edit", {"edit_id": "e2", "reason": "no data"})
    ]


def test_a_malformed_diagnosis_goes_back_to_the_teacher_as_a_tool_error() -> None:
    step = steps.SubmitDiagnosis("diagnose/2", "tu1", {})
    assert react(SESSION, step, Refused("invalid_teacher_output", "clusters missing")) == [
        Command(
            "record_tool_result",
            {
                "call_key": "diagnose/2",
                "tool_use_id": "tu1",
                "tool": SUBMIT_DIAGNOSIS,
                "content": "clusters missing",
                "is_error": True,
            },
        )
    ]


def test_a_diagnosis_without_clusters_fails_the_session() -> None:
    step = steps.SubmitDiagnosis("diagnose/2", "tu1", {})
    assert names(react(SESSION, step, Done({"markdown": "m", "clusters": []}))) == ["fail"]
    assert (
        react(SESSION, step, Done({"markdown": "m", "clusters": []}))[0].args["reason_code"] == "no_clusters"
    )
    assert names(react(SESSION, step, Done({"markdown": "m", "clusters": ["c"]}))) == ["submit_diagnosis"]


def test_a_tool_call_records_its_self_runs_then_the_judge_then_its_result() -> None:
    step = steps.RunTool("diagnose/1", "t1", "run_self_on_task", {})
    result = {"call_key": "diagnose/1", "tool_use_id": "t1", "tool": "run_self_on_task", "content": "{}",
              "is_error": False, "student_result": None}  # fmt: skip
    commands = react(SESSION, step, Done(result, paid=(JUDGE,), self_runs=(Done(CALL),)))
    assert names(commands) == ["record_teacher_call", "record_teacher_call", "record_tool_result"]
    assert [c.args["purpose"] for c in commands[:2]] == ["self_run", "judge"]


def test_a_self_run_the_teacher_refused_ends_the_session_before_the_tool_result() -> None:
    step = steps.RunTool("diagnose/1", "t1", "run_self_on_task", {})
    outcome = Done({}, paid=(JUDGE,), self_runs=(Refused("cassette_divergence", "no match"),))
    assert react(SESSION, step, outcome) == [
        Command("fail", {"error": "no match", "reason_code": "cassette_divergence"})
    ]


class _Edit:
    def __init__(
        self, outcome: str | None, pre_sha: str | None, gate: object, revert_sha: str | None
    ) -> None:
        self.outcome, self.pre_sha, self.gate, self.revert_sha = outcome, pre_sha, gate, revert_sha


class _Session:
    def __init__(self, **edits: _Edit) -> None:
        self.edits = edits


def test_unsettled_edits_are_in_flight_or_rejected_and_not_reverted() -> None:
    session: Any = _Session(
        routed=_Edit(None, None, None, None),  # nothing written yet
        in_flight=_Edit(None, "a" * 40, None, None),
        gated_ok=_Edit("applied", "a" * 40, object(), None),
        unreverted=_Edit("rejected_by_gate", "a" * 40, object(), None),
        reverted=_Edit("rejected_by_gate", "a" * 40, object(), "b" * 40),
    )
    assert unsettled_edits(session) == ["in_flight", "unreverted"]


def test_a_cancel_skips_an_ungated_edit_saying_whether_its_commit_was_reverted() -> None:
    before = skipped_by_cancel("e1", "ann", reverted=False)
    after = skipped_by_cancel("e1", "ann", reverted=True)
    assert before.name == after.name == "skip_edit"
    assert before.args["reason"] == "the session was cancelled by ann before it was applied"
    assert after.args["reason"].endswith("before its gate; its commit was reverted")
