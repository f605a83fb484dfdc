"""The session aggregate: commands ask the lifecycle, then record; `evolve` only assigns.

A command never performs a side effect. It is handed the *result* of one (a teacher response, a
commit sha, a score), checks with `lifecycle.decide` that recording it is legal now, and records
it as an event. `evolve` folds one event into state and is all that replay runs.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatchmethod
from typing import Any, NamedTuple, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.utils import register_topic

from distill_es.domain import chain, teacher_reply
from distill_es.domain.errors import DistillError
from distill_es.domain.session import events as ev
from distill_es.domain.session import lifecycle
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    Edit,
    EditOp,
    EditOutcome,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    LearningSession,
    SessionStatus,
    Trigger,
)


@dataclass
class TeacherCall:
    call_key: str
    purpose: str
    model: str
    request_digest: str
    response: dict[str, Any]
    usage: dict[str, int]
    cost_usd: float
    at: datetime


class ToolResult(NamedTuple):  # a tuple: cheap to rebuild by the thousand from a snapshot
    tool: str
    content: str
    is_error: bool


@dataclass
class DiagnoseTurn:
    """One diagnose turn: the teacher's response and the tool results that answer it."""

    call_key: str
    response: dict[str, Any]
    results: dict[str, ToolResult] = field(default_factory=dict)

    def tool_uses(self) -> list[dict[str, Any]]:
        return teacher_reply.tool_uses(self.response)


@dataclass
class GateRecord:
    delta: float
    cluster_deltas: dict[str, float]
    accepted: bool
    reason: str


@dataclass
class EditProgress:
    """Everything recorded about one planned edit, in the order it can happen."""

    edit: Edit
    risk_tier: EditRiskTier
    route: str | None = None
    preview: str = ""
    check_ok: bool | None = None
    check_reason: str = ""
    pre_sha: str | None = None
    pre_tree: str | None = None
    commit_sha: str | None = None
    tree_sha: str | None = None
    changed_files: list[str] = field(default_factory=list)
    applied_at: datetime | None = None
    gate: GateRecord | None = None
    revert_sha: str | None = None
    skipped_reason: str | None = None
    approved_by: str | None = None
    approval_note: str = ""
    rejected_by: str | None = None
    rejection_reason: str = ""
    rolled_back_sha: str | None = None
    training: dict[str, Any] | None = None  # lora_finetune: its training run's result

    @property
    def outcome(self) -> str | None:
        """The contract's outcome status, or None while the edit is still on its way."""
        if self.rolled_back_sha:
            return "rolled_back"
        if self.rejected_by:
            return "rejected_by_user"
        if self.skipped_reason is not None:
            return "skipped"
        if self.training is not None:
            if self.training["deployable"]:
                return "applied"
            return "rejected_by_gate" if self.training["state"] == "completed" else "skipped"
        if self.check_ok is False:
            return "rejected_by_gate"
        if self.gate is not None:
            return "applied" if self.gate.accepted else "rejected_by_gate"
        if self.route == "review" and not self.approved_by:
            return "pending_review"
        return None

    def to_outcome(self) -> EditOutcome | None:
        status = self.outcome
        if status is None:
            return None
        error = None
        if status == "rejected_by_gate":
            error = self.check_reason if self.check_ok is False else (self.gate.reason if self.gate else None)
        elif self.training is not None and status != "applied":
            error = self.training["summary"]
        elif status == "skipped":
            error = self.skipped_reason
        elif status == "rejected_by_user":
            error = f"rejected by {self.rejected_by}: {self.rejection_reason}"
        return EditOutcome(
            edit_id=self.edit.id,
            status=status,  # type: ignore[arg-type]
            benchmark_delta=self.gate.delta if self.gate else None,
            cluster_deltas=dict(self.gate.cluster_deltas) if self.gate else {},
            error=error,
            applied_at=self.applied_at if status in ("applied", "rolled_back") else None,
            risk_tier=self.risk_tier,
            commit_sha=self.commit_sha,
        )


class Session(chain.ChainedRecording, Aggregate):
    """One learning session. Build with `Session.start(...)`; load from the store."""

    # ----------------------------------------------------------------------------------------
    # creation
    @classmethod
    def start(
        cls,
        *,
        trigger: Trigger,
        autonomy_mode: AutonomyMode,
        settings: dict[str, Any],
        workspace: str,
        parent_session_id: str | None = None,
        session_id: UUID | None = None,
    ) -> Session:
        return cls._create_chained(
            ev.SessionStarted,
            session_id or uuid4(),
            trigger=trigger.model_dump(mode="json"),
            autonomy_mode=AutonomyMode(autonomy_mode).value,
            settings=settings,
            workspace=workspace,
            parent_session_id=parent_session_id,
        )

    def __init__(self) -> None:
        # Real initial state is assigned by evolve(SessionStarted), like every other event.
        pass

    # ----------------------------------------------------------------------------------------
    # facts the lifecycle guards read
    @property
    def session_id(self) -> str:
        return str(self.id)

    @property
    def has_clusters(self) -> bool:
        return bool(self.clusters)

    def pending_edit_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.outcome == "pending_review"]

    def approved_unapplied_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.approved_by and p.outcome is None]

    def applied_unreverted_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.outcome == "applied"]

    def legal_commands(self) -> list[str]:
        return lifecycle.legal_commands(self.status)

    # ----------------------------------------------------------------------------------------
    # commands
    def check_readiness(
        self, *, trace_count: int, min_traces: int, git_head: str | None, git_tree: str | None
    ) -> None:
        self._decide("check_readiness")
        self._record(
            ev.ReadinessChecked,
            trace_count=trace_count,
            min_traces=min_traces,
            ready=trace_count >= min_traces,
            git_head=git_head,
            git_tree=git_tree,
        )

    def begin_diagnosis(self) -> None:
        self._move("begin_diagnosis", SessionStatus.DIAGNOSING)

    def record_teacher_call(
        self,
        *,
        call_key: str,
        purpose: str,
        model: str,
        request_digest: str,
        response: dict[str, Any],
        usage: dict[str, int],
        cost_usd: float,
    ) -> None:
        self._decide("record_teacher_call")
        if self.has_teacher_call(call_key):
            raise DistillError(f"teacher call {call_key!r} is already recorded for session {self.id}")
        self._record(
            ev.TeacherCallCompleted,
            call_key=call_key,
            purpose=purpose,
            model=model,
            request_digest=request_digest,
            response=response,
            usage=usage,
            cost_usd=cost_usd,
        )

    def record_tool_result(
        self,
        *,
        call_key: str,
        tool_use_id: str,
        tool: str,
        content: str,
        is_error: bool,
        student_result: dict[str, Any] | None = None,
    ) -> None:
        self._decide("record_tool_result")
        turn = self._turn(call_key)
        if tool_use_id in turn.results:
            raise DistillError(f"tool call {tool_use_id!r} of {call_key!r} is already recorded")
        self._record(
            ev.ToolCallCompleted,
            call_key=call_key,
            tool_use_id=tool_use_id,
            tool=tool,
            content=content,
            is_error=is_error,
            student_result=student_result,
        )

    def submit_diagnosis(self, *, markdown: str, clusters: list[FailureCluster]) -> None:
        cluster_data = [c.model_dump(mode="json") for c in clusters]
        self._decide("submit_diagnosis", {"clusters": cluster_data})
        self._record(ev.DiagnosisRecorded, markdown=markdown, clusters=cluster_data)
        self._record_phase(SessionStatus.PLANNING)

    def freeze_plan(
        self,
        *,
        plan: LearningPlan,
        rejected: list[dict[str, Any]],
        tier_changes: list[dict[str, Any]],
        downgrades: list[str],
    ) -> None:
        self._decide("freeze_plan")
        self._record(
            ev.PlanFrozen,
            plan=plan.model_dump(mode="json"),
            rejected=rejected,
            tier_changes=tier_changes,
            downgrades=downgrades,
        )
        self._record_phase(SessionStatus.EXECUTING)

    def route_edit(self, *, edit_id: str, route: str, preview: str = "") -> None:
        self._decide("route_edit")
        progress = self._edit(edit_id)
        if progress.route is not None:
            raise DistillError(f"edit {edit_id!r} is already routed ({progress.route})")
        self._record(ev.EditRouted, edit_id=edit_id, risk_tier=progress.risk_tier.value, route=route)
        if route == "review":
            self._record(ev.EditQueuedForReview, edit_id=edit_id, preview=preview)

    def validate_edit(self, *, edit_id: str, ok: bool, reason: str) -> None:
        self._decide("validate_edit")
        self._decided_edit(edit_id)
        self._record(ev.EditValidated, edit_id=edit_id, ok=ok, reason=reason)

    def start_apply(self, *, edit_id: str, pre_sha: str, pre_tree: str) -> None:
        self._decide("start_apply")
        self._decided_edit(edit_id)
        self._record(ev.EditApplyStarted, edit_id=edit_id, pre_sha=pre_sha, pre_tree=pre_tree)

    def record_apply(
        self,
        *,
        edit_id: str,
        commit_sha: str,
        tree_sha: str,
        changed_files: list[str],
        reconciled: bool = False,
    ) -> None:
        self._decide("record_apply")
        if self._edit(edit_id).pre_sha is None:
            raise DistillError(f"edit {edit_id!r} was applied without a recorded intent")
        self._record(
            ev.EditApplied,
            edit_id=edit_id,
            commit_sha=commit_sha,
            tree_sha=tree_sha,
            changed_files=changed_files,
            reconciled=reconciled,
        )

    def skip_edit(self, *, edit_id: str, reason: str) -> None:
        self._decide("skip_edit")
        self._decided_edit(edit_id)
        self._record(ev.EditSkipped, edit_id=edit_id, reason=reason)

    def record_training(
        self, *, edit_id: str, run_id: str, state: str, deployable: bool | None, summary: str
    ) -> None:
        self._decide("record_training")
        self._decided_edit(edit_id)  # like a commit: never for an edit a reviewer still has to decide
        self._record(
            ev.EditTrained,
            edit_id=edit_id,
            run_id=run_id,
            state=state,
            deployable=deployable,
            summary=summary,
        )

    def choose_gate_tasks(self, *, seed: int, task_ids: list[str]) -> None:
        self._decide("choose_gate_tasks")
        self._record(ev.GateTasksChosen, seed=seed, task_ids=task_ids)

    def record_scores(
        self, *, tree_sha: str, seed: int, student_model: str, scores: list[dict[str, Any]]
    ) -> None:
        self._decide("record_scores")
        self._record(ev.TasksScored, tree_sha=tree_sha, seed=seed, student_model=student_model, scores=scores)

    def capture_benchmark(self, *, label: str, snapshot: BenchmarkSnapshot) -> None:
        self._decide("capture_benchmark")
        self._record(ev.BenchmarkCaptured, label=label, snapshot=snapshot.model_dump(mode="json"))

    def record_gate(
        self,
        *,
        edit_id: str,
        before: BenchmarkSnapshot,
        after: BenchmarkSnapshot,
        delta: float,
        cluster_deltas: dict[str, float],
        accepted: bool,
        reason: str,
    ) -> None:
        self._decide("record_gate")
        if self._edit(edit_id).commit_sha is None:
            raise DistillError(f"edit {edit_id!r} cannot be gated before it is applied")
        self._record(
            ev.GateEvaluated,
            edit_id=edit_id,
            before=before.model_dump(mode="json"),
            after=after.model_dump(mode="json"),
            delta=delta,
            cluster_deltas=cluster_deltas,
            accepted=accepted,
            reason=reason,
        )

    def revert_edit(self, *, edit_id: str, revert_sha: str, tree_sha: str) -> None:
        self._decide("revert_edit")
        self._edit(edit_id)
        self._record(ev.EditReverted, edit_id=edit_id, revert_sha=revert_sha, tree_sha=tree_sha)

    def approve_edit(self, *, edit_id: str, reviewer: str, note: str = "") -> None:
        self._decide("approve_edit", {"edit_id": edit_id})  # first: on a completed session it is illegal
        self._require_reviewer(reviewer)
        self._record(ev.EditApprovedByReviewer, edit_id=edit_id, reviewer=reviewer, note=note)
        self._record_phase(SessionStatus.EXECUTING)

    def reject_edit(self, *, edit_id: str, reviewer: str, reason: str) -> None:
        _, dest = self._decide("reject_edit", {"edit_id": edit_id})
        self._require_reviewer(reviewer)
        if not reason.strip():
            raise DistillError("a rejection needs a reason")
        self._record(ev.EditRejectedByReviewer, edit_id=edit_id, reviewer=reviewer, reason=reason)
        if dest == SessionStatus.COMPLETED:
            self._record(ev.SessionCompleted, git_post=self.git_post)
        else:
            self._record_phase(SessionStatus.EXECUTING)

    def await_review(self, *, git_post: str | None) -> None:
        self._decide("await_review")
        self._record(ev.SessionAwaitingReview, pending_edit_ids=self.pending_edit_ids(), git_post=git_post)

    def complete(self, *, git_post: str | None) -> None:
        self._decide("complete")
        self._record(ev.SessionCompleted, git_post=git_post)

    def fail(self, *, error: str, reason_code: str) -> None:
        self._decide("fail")
        self._record(ev.SessionFailed, error=error, reason_code=reason_code)

    def record_interruption(
        self,
        *,
        step: str,
        role: str,
        endpoint: str,
        error_class: str,
        error: str,
        attempts: int,
    ) -> None:
        """An outside failure stopped `step`: recorded for the operator and for workers' backoff; the
        state does not move."""
        self._decide("record_interruption")
        self._record(
            ev.StepInterrupted,
            step=step,
            role=role,
            endpoint=endpoint,
            error_class=error_class,
            error=error,
            attempts=attempts,
        )

    def cancel(self, *, cancelled_by: str, reason: str) -> None:
        """A person ends the session (it rests failed, reason_code `cancelled`); who and why are recorded."""
        self._decide("cancel")  # first: cancelling a resting session is an illegal transition
        if not cancelled_by.strip():
            raise DistillError("a cancellation needs the name of the person cancelling (--by)")
        if not reason.strip():
            raise DistillError("a cancellation needs a reason (--reason)")
        self._record(ev.SessionCancelled, cancelled_by=cancelled_by, reason=reason)

    def request_rollback(self, *, requested_by: str) -> None:
        self._decide("request_rollback")
        self._record(ev.RollbackRequested, requested_by=requested_by)

    def roll_back_edit(self, *, edit_id: str, revert_sha: str) -> None:
        self._decide("roll_back_edit")
        if self._edit(edit_id).outcome != "applied":
            raise DistillError(f"edit {edit_id!r} is not an applied edit")
        self._record(ev.EditRolledBack, edit_id=edit_id, revert_sha=revert_sha)

    def roll_back(self, *, git_post: str | None) -> None:
        self._decide("roll_back")
        reverted = [eid for eid, p in self.edits.items() if p.rolled_back_sha]
        self._record(ev.SessionRolledBack, reverted_edit_ids=reverted, git_post=git_post)

    # ----------------------------------------------------------------------------------------
    # recording
    def _decide(self, command: str, data: dict[str, Any] | None = None) -> tuple[str, str]:
        return lifecycle.decide(self, command, data, session_id=str(self.id))

    def _move(self, command: str, phase: SessionStatus) -> None:
        self._decide(command)
        self._record_phase(phase)

    def _record_phase(self, phase: SessionStatus) -> None:
        self._record(ev.PhaseEntered, phase=phase.value, from_phase=self.status)

    def _edit(self, edit_id: str) -> EditProgress:
        try:
            return self.edits[edit_id]
        except KeyError:
            known = ", ".join(self.edits) or "none"
            raise DistillError(f"session {self.id} has no edit {edit_id!r} (edits: {known})") from None

    def _decided_edit(self, edit_id: str) -> EditProgress:
        """An edit the engine may work on: routed, and not waiting for a reviewer's decision."""
        progress = self._edit(edit_id)
        if progress.route is None:
            raise DistillError(f"edit {edit_id!r} of session {self.id} has not been routed yet")
        if progress.route == "review" and not progress.approved_by:
            why = (
                f"was rejected by {progress.rejected_by}"
                if progress.rejected_by
                else "is waiting for a reviewer's decision"
            )
            raise DistillError(
                f"edit {edit_id!r} of session {self.id} {why}; only an approved edit is worked on"
            )
        return progress

    # ----------------------------------------------------------------------------------------
    # teacher calls and diagnose turns
    @property
    def teacher_calls(self) -> dict[str, TeacherCall]:
        """Every recorded teacher call by call key, in the order they were recorded."""
        if self._archive is not None:
            self._unarchive()
        return self._calls

    @property
    def diagnose_turns(self) -> list[DiagnoseTurn]:
        if self._archive is not None:
            self._unarchive()
        return self._turns

    @property
    def turn_count(self) -> int:
        return len(self._turns) + (len(self._archive.keys) if self._archive is not None else 0)

    @property
    def last_turn(self) -> DiagnoseTurn | None:
        if self._turns:  # a snapshot keeps its last turn decoded: it may still get tool results
            return self._turns[-1]
        return self.diagnose_turns[-1] if self.turn_count else None

    def has_teacher_call(self, call_key: str) -> bool:
        return call_key in self._calls or (self._archive is not None and call_key in self._archive.keys)

    def _unarchive(self) -> None:
        archive, self._archive = self._archive, None
        assert archive is not None
        calls, turns = archive.decode()
        merged = {key: calls[key] if key in calls else self._calls[key] for key in archive.order}
        merged.update((key, call) for key, call in self._calls.items() if key not in merged)
        self._calls, self._turns = merged, turns + self._turns

    def _turn(self, call_key: str) -> DiagnoseTurn:
        # Tool results answer the latest turn: check it first, so long sessions replay in linear time
        # (and a snapshot's archived turns stay undecoded).
        if self._turns and self._turns[-1].call_key == call_key:
            return self._turns[-1]
        for turn in self.diagnose_turns:
            if turn.call_key == call_key:
                return turn
        raise DistillError(f"session {self.id} has no diagnose turn {call_key!r}")

    @staticmethod
    def _require_reviewer(reviewer: str) -> None:
        if not reviewer or not reviewer.strip():
            raise DistillError("a review decision needs the reviewer's name")

    # ----------------------------------------------------------------------------------------
    # evolve: assignments only
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__}")

    @evolve.register
    def _(self, e: ev.SessionStarted) -> None:
        self.status = SessionStatus.INITIATED.value
        self.trigger = Trigger.model_validate(e.trigger)
        self.autonomy_mode = AutonomyMode(e.autonomy_mode)
        self.settings = e.settings
        self.workspace = e.workspace
        self.parent_session_id = e.parent_session_id
        self.started_at = e.timestamp
        self.ended_at: datetime | None = None
        self.last_digest = e.digest
        self.error: str | None = None
        self.reason_code: str | None = None
        self.ready: bool | None = None
        self.trace_count: int | None = None
        self.git_pre: str | None = None
        self.git_post: str | None = None
        self.current_head: str | None = None
        self.current_tree: str | None = None
        # Teacher calls and diagnose turns: read through `teacher_calls` / `diagnose_turns`. A session
        # loaded from a snapshot keeps its finished turns undecoded in `_archive` until they are read.
        self._calls: dict[str, TeacherCall] = {}
        self._turns: list[DiagnoseTurn] = []
        self._archive: _TurnArchive | None = None
        self.teacher_cost_usd = 0.0
        self.diagnosis_markdown: str | None = None
        self.clusters: list[FailureCluster] = []
        self.plan: LearningPlan | None = None
        self.plan_rejections: list[dict[str, Any]] = []
        self.edits: dict[str, EditProgress] = {}
        self.gate_seed: int | None = None
        self.gate_task_ids: list[str] | None = None
        self.scores: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        self.benchmark_before: BenchmarkSnapshot | None = None
        self.benchmark_after: BenchmarkSnapshot | None = None
        self.student_calls_made = 0
        self.snapshots_needed = 0
        self.rollback_requested = False
        self.interruptions_in_a_row = 0  # StepInterrupted events since the last other event
        self.last_interruption: dict[str, Any] | None = None

    def _after(self, e: ev.SessionEvent) -> None:
        self.last_digest = e.digest
        self.interruptions_in_a_row = 0  # any other fact is progress

    @evolve.register
    def _(self, e: ev.StepInterrupted) -> None:
        count = self.interruptions_in_a_row
        self._after(e)
        self.interruptions_in_a_row = count + 1
        self.last_interruption = {
            "step": e.step,
            "role": e.role,
            "endpoint": e.endpoint,
            "error_class": e.error_class,
            "error": e.error,
            "attempts": e.attempts,
            "at": e.timestamp.isoformat(),
        }

    @evolve.register
    def _(self, e: ev.ReadinessChecked) -> None:
        self.ready, self.trace_count = e.ready, e.trace_count
        self.git_pre = self.current_head = e.git_head
        self.current_tree = e.git_tree
        self._after(e)

    @evolve.register
    def _(self, e: ev.PhaseEntered) -> None:
        self.status = e.phase
        self._after(e)

    @evolve.register
    def _(self, e: ev.TeacherCallCompleted) -> None:
        self._calls[e.call_key] = TeacherCall(
            e.call_key, e.purpose, e.model, e.request_digest, e.response, e.usage, e.cost_usd, e.timestamp
        )
        self.teacher_cost_usd += e.cost_usd
        if e.purpose == "diagnose":
            self._turns.append(DiagnoseTurn(e.call_key, e.response))
        self._after(e)

    @evolve.register
    def _(self, e: ev.ToolCallCompleted) -> None:
        self._turn(e.call_key).results[e.tool_use_id] = ToolResult(e.tool, e.content, e.is_error)
        self._after(e)

    @evolve.register
    def _(self, e: ev.DiagnosisRecorded) -> None:
        self.diagnosis_markdown = e.markdown
        self.clusters = [FailureCluster.model_validate(c) for c in e.clusters]
        self._after(e)

    @evolve.register
    def _(self, e: ev.PlanFrozen) -> None:
        self.plan = LearningPlan.model_validate(e.plan)
        self.plan_rejections = e.rejected
        self.edits = {edit.id: EditProgress(edit=edit, risk_tier=edit.risk_tier) for edit in self.plan.edits}
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditRouted) -> None:
        self.edits[e.edit_id].route = e.route
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditQueuedForReview) -> None:
        self.edits[e.edit_id].preview = e.preview
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditValidated) -> None:
        progress = self.edits[e.edit_id]
        progress.check_ok, progress.check_reason = e.ok, e.reason
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApplyStarted) -> None:
        self.edits[e.edit_id].pre_sha = e.pre_sha
        self.edits[e.edit_id].pre_tree = e.pre_tree
        self.current_head, self.current_tree = e.pre_sha, e.pre_tree
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApplied) -> None:
        progress = self.edits[e.edit_id]
        progress.commit_sha, progress.tree_sha = e.commit_sha, e.tree_sha
        progress.changed_files, progress.applied_at = list(e.changed_files), e.timestamp
        self.current_head, self.current_tree = e.commit_sha, e.tree_sha
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditSkipped) -> None:
        self.edits[e.edit_id].skipped_reason = e.reason
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditTrained) -> None:
        progress = self.edits[e.edit_id]
        progress.training = {
            "run_id": e.run_id,
            "state": e.state,
            "deployable": e.deployable,
            "summary": e.summary,
        }
        if e.deployable:
            progress.applied_at = e.timestamp
        self._after(e)

    @evolve.register
    def _(self, e: ev.GateTasksChosen) -> None:
        self.gate_seed, self.gate_task_ids = e.seed, list(e.task_ids)
        self._after(e)

    @evolve.register
    def _(self, e: ev.TasksScored) -> None:
        for score in e.scores:
            self.scores[(e.tree_sha, e.seed, e.student_model, score["task_id"])] = score
        self.student_calls_made += len(e.scores)
        self._after(e)

    @evolve.register
    def _(self, e: ev.BenchmarkCaptured) -> None:
        snapshot = BenchmarkSnapshot.model_validate(e.snapshot)
        if e.label == "before":
            self.benchmark_before = snapshot
        elif e.label == "after":
            self.benchmark_after = snapshot
        self.snapshots_needed += 1
        self._after(e)

    @evolve.register
    def _(self, e: ev.GateEvaluated) -> None:
        self.edits[e.edit_id].gate = GateRecord(e.delta, dict(e.cluster_deltas), e.accepted, e.reason)
        self.snapshots_needed += 1  # the naive engine re-scores the whole subsample for every gate
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditReverted) -> None:
        self.edits[e.edit_id].revert_sha = e.revert_sha
        self.current_head, self.current_tree = e.revert_sha, e.tree_sha
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApprovedByReviewer) -> None:
        progress = self.edits[e.edit_id]
        progress.approved_by, progress.approval_note = e.reviewer, e.note
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditRejectedByReviewer) -> None:
        progress = self.edits[e.edit_id]
        progress.rejected_by, progress.rejection_reason = e.reviewer, e.reason
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionAwaitingReview) -> None:
        self.status = SessionStatus.AWAITING_REVIEW.value
        self.git_post = e.git_post
        self.ended_at = e.timestamp
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionCompleted) -> None:
        self.status = SessionStatus.COMPLETED.value
        self.git_post = e.git_post
        self.ended_at = e.timestamp
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionFailed) -> None:
        self.status = SessionStatus.FAILED.value
        self.error, self.reason_code = e.error, e.reason_code
        self.ended_at = e.timestamp
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionCancelled) -> None:
        self.status = SessionStatus.FAILED.value
        self.error, self.reason_code = f"cancelled by {e.cancelled_by}: {e.reason}", "cancelled"
        self.ended_at = e.timestamp
        self._after(e)

    @evolve.register
    def _(self, e: ev.RollbackRequested) -> None:
        self.rollback_requested = True
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditRolledBack) -> None:
        self.edits[e.edit_id].rolled_back_sha = e.revert_sha
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionRolledBack) -> None:
        self.status = SessionStatus.ROLLED_BACK.value
        self.git_post = e.git_post
        self.ended_at = e.timestamp
        self._after(e)

    # ----------------------------------------------------------------------------------------
    # views
    @property
    def student_calls_reused(self) -> int:
        """Student runs a score-everything-every-time engine would have made, and we did not."""
        naive = self.snapshots_needed * len(self.gate_task_ids or [])
        return max(0, naive - self.student_calls_made)

    def scored(self, tree_sha: str | None) -> bool:
        if tree_sha is None or self.gate_task_ids is None:
            return False
        return all(self.score_key(tree_sha, t) in self.scores for t in self.gate_task_ids)

    def score_key(self, tree_sha: str, task_id: str) -> tuple[str, int, str, str]:
        return (tree_sha, self.gate_seed or 0, self.student_model, task_id)

    @property
    def student_model(self) -> str:
        return str(self.settings.get("student", {}).get("model", ""))

    def is_lora(self, edit_id: str) -> bool:
        return self.edits[edit_id].edit.op == EditOp.LORA_FINETUNE

    def view(self) -> LearningSession:
        outcomes = [o for p in self.edits.values() if (o := p.to_outcome()) is not None]
        return LearningSession(
            id=str(self.id),
            parent_session_id=self.parent_session_id,
            trigger=self.trigger.kind,
            trigger_metadata=self.trigger.metadata,
            status=SessionStatus(self.status),
            autonomy_mode=self.autonomy_mode,
            started_at=self.started_at,
            ended_at=self.ended_at if self.status in lifecycle.RESTING else None,
            version=self.version,
            diagnosis_markdown=self.diagnosis_markdown,
            plan=self.plan,
            benchmark_before=self.benchmark_before,
            benchmark_after=self.benchmark_after,
            edit_outcomes=outcomes,
            git_checkpoint_pre=self.git_pre,
            git_checkpoint_post=self.git_post,
            teacher_cost_usd=round(self.teacher_cost_usd, 10),
            student_calls_made=self.student_calls_made,
            student_calls_reused=self.student_calls_reused,
            error=self.error,
            interruption=self._interruption_line(),
        )

    def _interruption_line(self) -> str | None:
        last = self.last_interruption
        if not self.interruptions_in_a_row or last is None:
            return None
        times = "" if self.interruptions_in_a_row == 1 else f" ({self.interruptions_in_a_row} times in a row)"
        return (
            f"{last['step']} interrupted{times}: the {last['role'] or 'outside'} endpoint {last['endpoint']} "
            f"failed ({last['error_class']}: {last['error']})"
        )

    # ----------------------------------------------------------------------------------------
    # snapshots: the folded state as plain JSON values (datetimes are transcoded by the store)
    def snapshot_state(self) -> dict[str, Any]:
        def dump(model: Any) -> Any:
            return model.model_dump(mode="json") if model is not None else None

        return {
            **{name: getattr(self, name) for name in _PLAIN_STATE},
            "trigger": dump(self.trigger),
            "autonomy_mode": self.autonomy_mode.value,
            "teacher_calls": [vars(call) for call in self.teacher_calls.values()],
            "diagnose_turns": [
                # The response is the teacher call's own: stored once, under teacher_calls.
                {"call_key": t.call_key, "results": {k: list(r) for k, r in t.results.items()}}
                for t in self.diagnose_turns
            ],
            "clusters": [dump(c) for c in self.clusters],
            "plan": dump(self.plan),
            "edits": [
                {
                    **vars(p),
                    "edit": dump(p.edit),
                    "risk_tier": p.risk_tier.value,
                    "gate": vars(p.gate) if p.gate else None,
                }
                for p in self.edits.values()
            ],
            "scores": [[*key, value] for key, value in self.scores.items()],
            "benchmark_before": dump(self.benchmark_before),
            "benchmark_after": dump(self.benchmark_after),
            "interruptions_in_a_row": self.interruptions_in_a_row,
            "last_interruption": self.last_interruption,
        }

    @classmethod
    def from_snapshot_state(cls, state: dict[str, Any], archive: str | None = None) -> Session:
        """The session from `snapshot_state()`, or from a snapshot's split form: finished diagnose
        turns in `archive` (JSON text, decoded on first read), their calls named by key only."""
        session = cls.__new__(cls)
        for name in _PLAIN_STATE:
            setattr(session, name, state[name])
        session.trigger = Trigger.model_validate(state["trigger"])
        session.autonomy_mode = AutonomyMode(state["autonomy_mode"])
        session.started_at, session.ended_at = _dt(state["started_at"]), _dt(state["ended_at"])
        order, archived = [], set()
        calls = session._calls = {}
        for data in state["teacher_calls"]:  # by the thousand in a long session: no per-call copies
            if isinstance(data, str):  # a finished diagnose turn's call, kept in the archive
                order.append(data)
                archived.add(data)
                continue
            order.append(data["call_key"])
            calls[data["call_key"]] = _revive_call(data)
        session._turns = [_revive_turn(t, calls) for t in state["diagnose_turns"]]
        session._archive = _TurnArchive(archive, order, archived) if archive else None
        session.clusters = [FailureCluster.model_validate(c) for c in state["clusters"]]
        session.plan = LearningPlan.model_validate(state["plan"]) if state["plan"] else None
        session.edits = {}
        for data in state["edits"]:
            gate = GateRecord(**data["gate"]) if data["gate"] else None
            edit = Edit.model_validate(data["edit"])
            tier = EditRiskTier(data["risk_tier"])
            session.edits[edit.id] = EditProgress(
                **{
                    **data,
                    "edit": edit,
                    "risk_tier": tier,
                    "gate": gate,
                    "applied_at": _dt(data["applied_at"]),
                }
            )
        session.scores = {
            (tree, seed, model, task): score for tree, seed, model, task, score in state["scores"]
        }
        for name in ("benchmark_before", "benchmark_after"):
            value = state[name]
            setattr(session, name, BenchmarkSnapshot.model_validate(value) if value else None)
        # Snapshots taken before interruptions were recorded have neither key.
        session.interruptions_in_a_row = int(state.get("interruptions_in_a_row", 0))
        session.last_interruption = state.get("last_interruption")
        return session


_T = TypeVar("_T")


class _TurnArchive:
    """A snapshot's finished diagnose turns, as the JSON text they were stored in. Loading a long
    session (`show`, `approve`, a resume that is about to score) never needs them; the next diagnose
    request or an audit does, and decodes them then, once."""

    def __init__(self, text: str, order: list[str], keys: set[str]) -> None:
        self.text, self.order, self.keys = text, order, keys  # order: every call key, as recorded

    def decode(self) -> tuple[dict[str, TeacherCall], list[DiagnoseTurn]]:
        with _cyclic_gc_paused():
            data = json.loads(self.text)
            calls = {call["call_key"]: _revive_call(call) for call in data["calls"]}
            turns = [_revive_turn(t, calls) for t in data["turns"]]
        if set(calls) != self.keys:
            raise DistillError("a session snapshot's turn archive does not hold the turns it names")
        return calls, turns


def _split_archive(state: dict[str, Any]) -> dict[str, Any] | None:
    """Move every diagnose turn but the last (which may still get tool results) and its teacher call
    out of `state` into an archive; `state["teacher_calls"]` keeps their keys, in order, in their place."""
    finished = state["diagnose_turns"][:-1]
    if not finished:
        return None
    keys = {t["call_key"] for t in finished}
    by_key = {c["call_key"]: c for c in state["teacher_calls"] if c["call_key"] in keys}
    state["teacher_calls"] = [c["call_key"] if c["call_key"] in keys else c for c in state["teacher_calls"]]
    state["diagnose_turns"] = state["diagnose_turns"][-1:]
    return {"calls": [by_key[t["call_key"]] for t in finished], "turns": finished}


def _revive_call(data: dict[str, Any]) -> TeacherCall:
    data["at"] = _dt(data["at"])
    return _revive(TeacherCall, data)


def _revive_turn(data: dict[str, Any], calls: dict[str, TeacherCall]) -> DiagnoseTurn:
    """A turn from its snapshot form; its response is its teacher call's own (stored once)."""
    make = ToolResult._make
    results = {use_id: make(result) for use_id, result in data["results"].items()}
    fields = {"call_key": data["call_key"], "response": calls[data["call_key"]].response, "results": results}
    return _revive(DiagnoseTurn, fields)


def _revive(cls: type[_T], fields: dict[str, Any]) -> _T:
    """A plain dataclass instance from its own field values (snapshot data), without calling __init__:
    the values were validated when their events were recorded, and this runs by the thousand."""
    obj = cls.__new__(cls)
    obj.__dict__.update(fields)
    return obj


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _dt(value: Any) -> Any:
    """A datetime back from its ISO text (snapshots are one JSON document)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


# Attributes that are JSON values already and go into a snapshot as they are.
_PLAIN_STATE = (
    "status",
    "settings",
    "workspace",
    "parent_session_id",
    "started_at",
    "ended_at",
    "last_digest",
    "error",
    "reason_code",
    "ready",
    "trace_count",
    "git_pre",
    "git_post",
    "current_head",
    "current_tree",
    "teacher_cost_usd",
    "diagnosis_markdown",
    "plan_rejections",
    "gate_seed",
    "gate_task_ids",
    "student_calls_made",
    "snapshots_needed",
    "rollback_requested",
)


class SessionSnapshot(Snapshot):
    """A snapshot of the folded session state, as JSON values (never pickled objects)."""

    TOPIC = "distill_es.SessionSnapshot.v1"

    @classmethod
    def take(cls, aggregate: Any) -> SessionSnapshot:
        # One JSON document, so loading is a single C-level json.loads rather than the store's
        # per-object decoding hooks over thousands of nested dicts.
        full = aggregate.snapshot_state()
        archive = _split_archive(full)
        state = {
            "_created_on": aggregate.created_on,
            "_modified_on": aggregate.modified_on,
            "session": json.dumps(full, default=_json_default, separators=(",", ":")),
            "archive": json.dumps(archive, default=_json_default, separators=(",", ":")) if archive else None,
        }
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=cls.create_timestamp(),
            topic=Session.TOPIC,
            state=state,
        )

    def mutate(self, _: None) -> Session:
        # Rebuilding a long session creates tens of thousands of acyclic objects; pausing the cyclic
        # collector meanwhile spares the full-heap collections those allocations would trigger
        # (reference counting still frees everything as usual).
        with _cyclic_gc_paused():
            session = Session.from_snapshot_state(
                json.loads(self.state["session"]), archive=self.state.get("archive")
            )
        session._id = self.originator_id
        session._version = self.originator_version
        session._created_on = self.state["_created_on"]
        session._modified_on = self.state["_modified_on"]
        session._pending_events = []
        return session


register_topic(SessionSnapshot.TOPIC, SessionSnapshot)
Session.Snapshot = SessionSnapshot  # type: ignore[attr-defined]
Session.TOPIC = "distill_es.Session"  # set after class creation: see store/app.py's note on topics
register_topic(Session.TOPIC, Session)
