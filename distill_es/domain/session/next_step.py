"""State → the one thing to do next. Pure: reads the folded session, performs nothing.

For the edits it reads each edit's lifecycle state (`edit_lifecycle`): one case per state.

The engine loops: load the session, ask `next_step`, perform exactly that step, record its result,
repeat until `Rest`. Most steps make one outside call; `RunTool` and `ScoreTree` make several and say
so below (their results are recorded together, in one save, or not at all). A process that crashed
anywhere resumes by doing the same thing, so what the log says is done is never done again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill_es.domain.policy import route
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.session.records import EditProgress
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS
from distill_es.domain.vocabulary import EditOp, SessionStatus


@dataclass(frozen=True)
class Step:
    """Base of every step; `kind` names it in logs and progress displays."""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Rest(Step):
    pass


@dataclass(frozen=True)
class CheckReadiness(Step):
    pass


@dataclass(frozen=True)
class BeginDiagnosis(Step):
    pass


@dataclass(frozen=True)
class Fail(Step):
    error: str
    reason_code: str


@dataclass(frozen=True)
class CallTeacher(Step):
    call_key: str
    purpose: str  # diagnose | plan


@dataclass(frozen=True)
class RunTool(Step):
    """Run one diagnose tool the teacher called. May make several outside calls: a student run, a
    self-run teacher call and judge calls (`run_self_on_task`, `compare_outputs`)."""

    call_key: str
    tool_use_id: str
    name: str
    tool_input: Any


@dataclass(frozen=True)
class SubmitDiagnosis(Step):
    call_key: str
    tool_use_id: str
    tool_input: Any


@dataclass(frozen=True)
class FreezePlan(Step):
    pass


@dataclass(frozen=True)
class RouteEdit(Step):
    edit_id: str
    route: str


@dataclass(frozen=True)
class ValidateEdit(Step):
    edit_id: str


@dataclass(frozen=True)
class SkipEdit(Step):
    edit_id: str
    reason: str


@dataclass(frozen=True)
class TrainEdit(Step):
    edit_id: str


@dataclass(frozen=True)
class ChooseGateTasks(Step):
    pass


@dataclass(frozen=True)
class StartApply(Step):
    edit_id: str


@dataclass(frozen=True)
class ScoreTree(Step):
    """Score one workspace tree on the gate tasks: one student run and score per task not yet scored
    on this tree (`missing` of `total`), recorded as one `TasksScored` or not at all."""

    tree_sha: str
    edit_id: str | None  # the edit whose gate needs it, if any
    total: int = 0  # gate tasks
    missing: int = 0  # of those, not yet scored on this tree (the student calls this step makes)


@dataclass(frozen=True)
class CaptureBenchmark(Step):
    label: str  # before | after
    tree_sha: str


@dataclass(frozen=True)
class ApplyEdit(Step):
    edit_id: str


@dataclass(frozen=True)
class EvaluateGate(Step):
    edit_id: str


@dataclass(frozen=True)
class RevertEdit(Step):
    edit_id: str


@dataclass(frozen=True)
class AwaitReview(Step):
    pass


@dataclass(frozen=True)
class Complete(Step):
    pass


@dataclass(frozen=True)
class RollBackEdit(Step):
    edit_id: str


@dataclass(frozen=True)
class FinishRollback(Step):
    pass


def next_step(session: Session) -> Step:
    status = session.status
    if session.rollback_requested and status != SessionStatus.ROLLED_BACK:
        return _rollback_step(session)
    if status == SessionStatus.INITIATED:
        return _initiated_step(session)
    if status == SessionStatus.DIAGNOSING:
        return _diagnose_step(session)
    if status == SessionStatus.PLANNING:
        return _plan_step(session)
    if status == SessionStatus.EXECUTING:
        return _execute_step(session)
    return Rest()


def _initiated_step(s: Session) -> Step:
    if s.ready is None:
        return CheckReadiness()
    if not s.ready:
        return Fail(
            f"not enough traces to learn from: have {s.trace_count}, need at least "
            f"{s.settings['session']['min_traces']}",
            "cold_start",
        )
    return BeginDiagnosis()


def _budget_left(s: Session) -> float:
    return float(s.settings["session"]["max_cost_usd"]) - s.teacher_cost_usd


def _diagnose_step(s: Session) -> Step:
    last = s.last_turn
    if last is not None:
        for use in last.tool_uses():
            if use.get("id") in last.results:
                continue
            if use.get("name") == SUBMIT_DIAGNOSIS:
                return SubmitDiagnosis(last.call_key, use["id"], use.get("input"))
            return RunTool(last.call_key, use["id"], str(use.get("name")), use.get("input"))
    max_turns = int(s.settings["session"]["max_turns"])
    turns = s.turn_count
    if turns >= max_turns:
        return Fail(
            f"the teacher used all {max_turns} turns without submitting a diagnosis", "turns_exhausted"
        )
    if _budget_left(s) <= 0:
        return Fail(
            f"the teacher budget of ${s.settings['session']['max_cost_usd']:.2f} is spent "
            f"(${s.teacher_cost_usd:.4f}) and no diagnosis was submitted",
            "budget_exhausted",
        )
    return CallTeacher(f"diagnose/{turns + 1}", "diagnose")


def _plan_step(s: Session) -> Step:
    if not any(c.has_evidence for c in s.clusters):
        return Fail(
            "diagnosis produced no actionable clusters (none has any measured evidence)", "no_clusters"
        )
    if not s.has_teacher_call("plan"):
        if _budget_left(s) <= 0:
            return Fail(
                f"the teacher budget of ${s.settings['session']['max_cost_usd']:.2f} is spent "
                f"(${s.teacher_cost_usd:.4f}) before planning",
                "budget_exhausted",
            )
        return CallTeacher("plan", "plan")
    return FreezePlan()


def _execute_step(s: Session) -> Step:
    for edit_id, p in s.edits.items():
        step = _edit_step(s, edit_id, p)
        if step is not None:
            return step
    after = s.benchmark_after
    if (
        s.benchmark_before is not None
        and s.current_tree
        and (after is None or after.tree_sha != s.current_tree)
    ):
        return CaptureBenchmark("after", s.current_tree)
    if s.pending_edit_ids():
        return AwaitReview()
    return Complete()


def _edit_step(s: Session, edit_id: str, p: EditProgress) -> Step | None:
    """What an edit needs next, from where it is in its lifecycle; None when nothing (settled, or
    waiting for a reviewer)."""
    match p.state:
        case E.PLANNED:
            return RouteEdit(edit_id, route(s.autonomy_mode, p.risk_tier).value)
        case E.ROUTED | E.APPROVED:
            return ValidateEdit(edit_id)
        case E.VALIDATED if p.op == EditOp.LORA_FINETUNE:
            return TrainEdit(edit_id)  # weights, not files: a training run instead of a commit
        case E.VALIDATED:
            return ChooseGateTasks() if s.gate_task_ids is None else StartApply(edit_id)
        case E.APPLY_STARTED | E.APPLIED:
            # The tree before the edit is scored and the benchmark captured before anything lands.
            if not s.scored(p.pre_tree):
                return _score_tree(s, str(p.pre_tree), edit_id)
            if s.benchmark_before is None:
                return CaptureBenchmark("before", str(p.pre_tree))
            if p.state == E.APPLY_STARTED:
                return ApplyEdit(edit_id)
            if not s.scored(p.tree_sha):
                return _score_tree(s, str(p.tree_sha), edit_id)
            return EvaluateGate(edit_id)
        case E.GATE_REJECTED:
            return RevertEdit(edit_id)
        case E.WITHDRAWN:  # reverted before its gate: only a cancel does that, and skips it at once
            return SkipEdit(edit_id, "its commit was reverted before its gate")
    return None


def _score_tree(s: Session, tree_sha: str, edit_id: str) -> ScoreTree:
    tasks = s.gate_task_ids or []
    missing = sum(1 for t in tasks if s.score_key(tree_sha, t) not in s.scores)
    return ScoreTree(tree_sha, edit_id, total=len(tasks), missing=missing)


def _rollback_step(s: Session) -> Step:
    applied = [(p.applied_at, eid) for eid, p in s.edits.items() if p.outcome == "applied"]  # landed
    if applied:
        return RollBackEdit(max(applied)[1])  # newest first
    return FinishRollback()
