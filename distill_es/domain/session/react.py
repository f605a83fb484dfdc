"""What a performed step means for the session: the commands to record. Pure.

The engine's activities perform one step each and report a typed `Outcome`: `Done` with the facts the
step found (its result, as the keyword arguments of the command that records it), or `Refused` with a
reason code and a detail when the outside world would not let the step happen. `react` decides what
the session records about it: the default command for the step, a failure, a skip, a tool error for
the teacher. The decisions live here, next to `next_step`, so that handlers never pick a failure code
or a skip themselves.

`paid` on either outcome is the teacher calls (the judge's, or a self-run's) the step paid for: they
are recorded first, whatever else happens, so that the cost ledger never misses a call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from distill_es.domain.layout import BENCHMARK_FILE
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS

Args = Mapping[str, Any]


@dataclass(frozen=True)
class Done:
    """The step was performed; `args` are what it found (the recording command's keyword arguments)."""

    args: Args = field(default_factory=dict)
    paid: tuple[Args, ...] = ()  # teacher calls to record first (record_teacher_call's arguments)
    self_runs: tuple[Outcome, ...] = ()  # RunTool only: the teacher calls its tool made, in order


@dataclass(frozen=True)
class Refused:
    """The step could not be performed: `code` says why (a reason code), `detail` says it for people."""

    code: str
    detail: str
    paid: tuple[Args, ...] = ()


Outcome = Done | Refused


@dataclass(frozen=True)
class Command:
    """One command of the `Session` aggregate (the lifecycle's vocabulary) with its arguments."""

    name: str
    args: Args = field(default_factory=dict)

    def apply(self, session: Session) -> None:
        getattr(session, self.name)(**self.args)


# The command that records a step's `Done` when nothing is left to decide.
RECORDS: Mapping[type[steps.Step], str] = MappingProxyType(
    {
        steps.CheckReadiness: "check_readiness",
        steps.BeginDiagnosis: "begin_diagnosis",
        steps.Fail: "fail",
        steps.CallTeacher: "record_teacher_call",
        steps.FreezePlan: "freeze_plan",
        steps.RouteEdit: "route_edit",
        steps.ValidateEdit: "validate_edit",
        steps.SkipEdit: "skip_edit",
        steps.TrainEdit: "record_training",
        steps.ChooseGateTasks: "choose_gate_tasks",
        steps.StartApply: "start_apply",
        steps.ScoreTree: "record_scores",
        steps.CaptureBenchmark: "capture_benchmark",
        steps.ApplyEdit: "record_apply",
        steps.EvaluateGate: "record_gate",
        steps.RevertEdit: "revert_edit",
        steps.AwaitReview: "await_review",
        steps.Complete: "complete",
        steps.RollBackEdit: "roll_back_edit",
        steps.FinishRollback: "roll_back",
    }
)


def no_benchmark_error(home: str) -> str:
    """Why a session cannot measure any edit: its benchmark file has no tasks."""
    return (
        f"{home}/{BENCHMARK_FILE} has no tasks (one JSON object a line): the gate could not measure any edit"
    )


def fail(outcome: Refused) -> Command:
    return Command("fail", {"error": outcome.detail, "reason_code": outcome.code})


def paid(outcome: Outcome) -> list[Command]:
    return [Command("record_teacher_call", call) for call in outcome.paid]


def react(session: Session, step: steps.Step, outcome: Outcome) -> list[Command]:
    """The commands that record `outcome` of `step` on `session`, in order (none: nothing to record)."""
    special = _REACTIONS.get(type(step))
    if special is not None:
        return special(session, step, outcome)
    if isinstance(outcome, Refused):
        return [*paid(outcome), _refusal(step, outcome)]
    return [*paid(outcome), Command(RECORDS[type(step)], outcome.args)]


def _refusal(step: steps.Step, outcome: Refused) -> Command:
    """A refused step fails the session, except where the session can go on without it."""
    edit_id = getattr(step, "edit_id", None)
    if isinstance(step, steps.ApplyEdit) and outcome.code == "op_not_available":
        return Command("skip_edit", {"edit_id": edit_id, "reason": outcome.detail})
    if isinstance(step, steps.ApplyEdit) and outcome.code == "invalid_edit":
        return Command(
            "validate_edit", {"edit_id": edit_id, "ok": False, "reason": f"apply failed: {outcome.detail}"}
        )
    if isinstance(step, steps.TrainEdit) and outcome.code == "training_spec_invalid":
        return Command("skip_edit", {"edit_id": edit_id, "reason": outcome.detail})
    if isinstance(step, steps.SubmitDiagnosis) and outcome.code == "invalid_teacher_output":
        # Back to the teacher as a tool error: it gets another turn to fix the shape.
        return Command(
            "record_tool_result",
            {
                "call_key": step.call_key,
                "tool_use_id": step.tool_use_id,
                "tool": SUBMIT_DIAGNOSIS,
                "content": outcome.detail,
                "is_error": True,
            },
        )
    return fail(outcome)


def _submit_diagnosis(_: Session, step: steps.Step, outcome: Outcome) -> list[Command]:
    if isinstance(outcome, Refused):
        return [_refusal(step, outcome)]
    if not outcome.args["clusters"]:
        return [
            Command(
                "fail", {"error": "diagnosis produced no actionable clusters", "reason_code": "no_clusters"}
            )
        ]
    return [Command("submit_diagnosis", outcome.args)]


def _run_tool(session: Session, step: steps.Step, outcome: Outcome) -> list[Command]:
    """The tool's own teacher calls (a self-run), then the judge's calls, then the tool's result. A
    self-run the teacher could not answer ends the session there (a divergence from the cassette,
    a refused request); the tool's result is then never recorded."""
    if isinstance(outcome, Refused):
        return [*paid(outcome), fail(outcome)]
    commands: list[Command] = []
    for run in outcome.self_runs:
        if isinstance(run, Refused):
            return [*commands, fail(run)]
        commands.append(Command("record_teacher_call", run.args))
    return [*commands, *paid(outcome), Command("record_tool_result", outcome.args)]


_REACTIONS: Mapping[type[steps.Step], Callable[[Session, steps.Step, Outcome], list[Command]]] = (
    MappingProxyType(
        {
            steps.SubmitDiagnosis: _submit_diagnosis,
            steps.RunTool: _run_tool,
        }
    )
)


def unsettled_edits(session: Session) -> list[str]:
    """Edits whose effect on the workspace is not final, which a cancel must settle first: committed
    (or being applied) without a gate verdict, or rejected by the gate and not reverted yet."""
    unsettled = []
    for edit_id, p in session.edits.items():
        in_flight = p.outcome is None and p.pre_sha is not None and p.gate is None
        unreverted = p.outcome == "rejected_by_gate" and p.gate is not None and p.revert_sha is None
        if in_flight or unreverted:
            unsettled.append(edit_id)
    return unsettled


def skipped_by_cancel(edit_id: str, by: str, *, reverted: bool) -> Command:
    """How a cancel ends an unsettled edit that has no gate verdict: skipped, saying whether its
    commit had to be reverted (an edit gated as rejected keeps its verdict and is only reverted)."""
    if reverted:
        reason = f"the session was cancelled by {by} before its gate; its commit was reverted"
    else:
        reason = f"the session was cancelled by {by} before it was applied"
    return Command("skip_edit", {"edit_id": edit_id, "reason": reason})
