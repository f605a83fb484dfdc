"""The folded session state: `evolve` folds one event into it (assignments only), and the reads on it.

`evolve` is all that replay runs; it never asks a lifecycle anything. The aggregate (`aggregate.py`)
adds the commands; views are built in `views.py`.
"""

from __future__ import annotations

from datetime import datetime
from functools import singledispatchmethod
from typing import Any, Protocol

from distill_es.domain.errors import DistillError
from distill_es.domain.session import events as ev
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.session.records import (
    DiagnoseTurn,
    EditProgress,
    GateRecord,
    RefusedEdit,
    TeacherCall,
    ToolResult,
)
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    EditOp,
    FailureCluster,
    LearningPlan,
    SessionStatus,
    Trigger,
)


class TurnArchive(Protocol):
    """Finished diagnose turns kept undecoded (a snapshot's; see `store/snapshots.py`)."""

    order: list[str]  # every call key, as recorded
    keys: set[str]  # the archived ones

    def decode(self) -> tuple[dict[str, TeacherCall], list[DiagnoseTurn]]: ...


class SessionState:
    """A session's folded state. Never constructed directly: `SessionStarted` assigns it."""

    id: Any
    version: int

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
        self._archive: TurnArchive | None = None
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
        progress = self.edits[e.edit_id]
        progress.route = e.route
        progress.state = E.QUEUED_FOR_REVIEW if e.route == "review" else E.ROUTED
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditQueuedForReview) -> None:
        progress = self.edits[e.edit_id]
        progress.preview, progress.state = e.preview, E.QUEUED_FOR_REVIEW
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditValidated) -> None:
        progress = self.edits[e.edit_id]
        progress.check_ok, progress.check_reason = e.ok, e.reason
        # A failed check after the apply started is a failed apply (the table's validate_edit rows).
        failed = E.APPLY_FAILED if progress.state == E.APPLY_STARTED else E.INVALID
        progress.state = E.VALIDATED if e.ok else failed
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApplyStarted) -> None:
        progress = self.edits[e.edit_id]
        progress.pre_sha, progress.pre_tree, progress.state = e.pre_sha, e.pre_tree, E.APPLY_STARTED
        self.current_head, self.current_tree = e.pre_sha, e.pre_tree
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApplied) -> None:
        progress = self.edits[e.edit_id]
        progress.commit_sha, progress.tree_sha = e.commit_sha, e.tree_sha
        progress.changed_files, progress.applied_at = list(e.changed_files), e.timestamp
        progress.state = E.APPLIED
        self.current_head, self.current_tree = e.commit_sha, e.tree_sha
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditSkipped) -> None:
        progress = self.edits[e.edit_id]
        progress.skipped_reason, progress.state = e.reason, E.SKIPPED
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
        completed = E.TRAINING_REJECTED if e.state == "completed" else E.TRAINING_FAILED
        progress.state = E.TRAINED if e.deployable else completed
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
        progress = self.edits[e.edit_id]
        progress.gate = GateRecord(e.delta, dict(e.cluster_deltas), e.accepted, e.reason)
        progress.state = E.GATED if e.accepted else E.GATE_REJECTED
        self.snapshots_needed += 1  # the naive engine re-scores the whole subsample for every gate
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditReverted) -> None:
        progress = self.edits[e.edit_id]
        progress.revert_sha = e.revert_sha
        progress.state = E.WITHDRAWN if progress.gate is None else E.REVERTED
        self.current_head, self.current_tree = e.revert_sha, e.tree_sha
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditApprovedByReviewer) -> None:
        progress = self.edits[e.edit_id]
        progress.approved_by, progress.approval_note, progress.state = e.reviewer, e.note, E.APPROVED
        self._after(e)

    @evolve.register
    def _(self, e: ev.EditRejectedByReviewer) -> None:
        progress = self.edits[e.edit_id]
        progress.rejected_by, progress.rejection_reason, progress.state = e.reviewer, e.reason, E.REJECTED
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
        progress = self.edits[e.edit_id]
        progress.rolled_back_sha, progress.state = e.revert_sha, E.ROLLED_BACK
        self._after(e)

    @evolve.register
    def _(self, e: ev.SessionRolledBack) -> None:
        self.status = SessionStatus.ROLLED_BACK.value
        self.git_post = e.git_post
        self.ended_at = e.timestamp
        self._after(e)

    @property
    def refused_edits(self) -> list[RefusedEdit]:
        """The edits the plan refused when it was frozen, in the teacher's order."""
        return [RefusedEdit.recorded(r) for r in self.plan_rejections if isinstance(r, dict)]

    # ----------------------------------------------------------------------------------------
    # reads on the scores
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
