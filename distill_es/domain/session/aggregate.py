"""The session aggregate: commands ask the lifecycles, then record; `evolve` only assigns.

A command never performs a side effect. It is handed the *result* of one (a teacher response, a
commit sha, a score), checks with `lifecycle.decide` that recording it is legal now — and, for a
command on one edit, with `edit_lifecycle.decide` that it is legal for that edit — and records it as
an event. The folded state and `evolve` (all that replay runs) live in `state.py`; the view in
`views.py`; the store's JSON snapshots of it in `distill_es/store/snapshots.py`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain import chain
from distill_es.domain.errors import DistillError, EditNotFound
from distill_es.domain.session import edit_lifecycle, lifecycle, views
from distill_es.domain.session import events as ev
from distill_es.domain.session.records import EditProgress
from distill_es.domain.session.state import SessionState
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    FailureCluster,
    LearningPlan,
    LearningSession,
    SessionStatus,
    Trigger,
)


class Session(SessionState, chain.ChainedRecording, Aggregate):
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

    def view(self) -> LearningSession:
        return views.learning_session(self)

    # ----------------------------------------------------------------------------------------
    # facts the lifecycle guards read
    @property
    def session_id(self) -> str:
        return str(self.id)

    @property
    def has_clusters(self) -> bool:
        return bool(self.clusters)

    def pending_edit_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.state == edit_lifecycle.EditState.QUEUED_FOR_REVIEW]

    def approved_unapplied_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.approved_by and p.outcome is None]

    def applied_unreverted_ids(self) -> list[str]:
        return [eid for eid, p in self.edits.items() if p.outcome == "applied"]

    def unsettled_edit_ids(self) -> list[str]:
        """Edits whose effect on the workspace is not final (see `edit_lifecycle.UNSETTLED`)."""
        return [eid for eid, p in self.edits.items() if p.state in edit_lifecycle.UNSETTLED]

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
        progress = self._decide_edit("route_edit", edit_id, {"route": route})
        self._record(ev.EditRouted, edit_id=edit_id, risk_tier=progress.risk_tier.value, route=route)
        if route == "review":
            self._record(ev.EditQueuedForReview, edit_id=edit_id, preview=preview)

    def validate_edit(self, *, edit_id: str, ok: bool, reason: str) -> None:
        self._decide("validate_edit")
        self._decide_edit("validate_edit", edit_id, {"ok": ok})
        self._record(ev.EditValidated, edit_id=edit_id, ok=ok, reason=reason)

    def start_apply(self, *, edit_id: str, pre_sha: str, pre_tree: str) -> None:
        self._decide("start_apply")
        self._decide_edit("start_apply", edit_id)
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
        self._decide_edit("record_apply", edit_id)
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
        self._decide_edit("skip_edit", edit_id)
        self._record(ev.EditSkipped, edit_id=edit_id, reason=reason)

    def record_training(
        self, *, edit_id: str, run_id: str, state: str, deployable: bool | None, summary: str
    ) -> None:
        self._decide("record_training")
        self._decide_edit("record_training", edit_id, {"state": state, "deployable": deployable})
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
        self._decide_edit("record_gate", edit_id, {"accepted": accepted})
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
        self._decide_edit("revert_edit", edit_id)  # never one that was not applied
        self._record(ev.EditReverted, edit_id=edit_id, revert_sha=revert_sha, tree_sha=tree_sha)

    def approve_edit(self, *, edit_id: str, reviewer: str, note: str = "") -> None:
        self._decide("approve_edit", {"edit_id": edit_id})  # first: on a completed session it is illegal
        self._require_reviewer(reviewer)
        self._decide_edit("approve_edit", edit_id)
        self._record(ev.EditApprovedByReviewer, edit_id=edit_id, reviewer=reviewer, note=note)
        self._record_phase(SessionStatus.EXECUTING)

    def reject_edit(self, *, edit_id: str, reviewer: str, reason: str) -> None:
        _, dest = self._decide("reject_edit", {"edit_id": edit_id})
        self._require_reviewer(reviewer)
        if not reason.strip():
            raise DistillError("a rejection needs a reason")
        self._decide_edit("reject_edit", edit_id)
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
        self._decide_edit("roll_back_edit", edit_id)
        self._record(ev.EditRolledBack, edit_id=edit_id, revert_sha=revert_sha)

    def roll_back(self, *, git_post: str | None) -> None:
        self._decide("roll_back")
        reverted = [eid for eid, p in self.edits.items() if p.state == edit_lifecycle.EditState.ROLLED_BACK]
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
            raise EditNotFound(f"session {self.id} has no edit {edit_id!r} (edits: {known})") from None

    def _decide_edit(self, command: str, edit_id: str, data: dict[str, Any] | None = None) -> EditProgress:
        """The edit `command` names, once its lifecycle allows the command for it; refused otherwise."""
        progress = self._edit(edit_id)
        edit_lifecycle.decide(progress, command, data, edit_id=edit_id, session_id=str(self.id))
        return progress

    @staticmethod
    def _require_reviewer(reviewer: str) -> None:
        if not reviewer or not reviewer.strip():
            raise DistillError("a review decision needs the reviewer's name")


Session.TOPIC = "distill_es.Session"  # set after class creation: see store/app.py's note on topics
register_topic(Session.TOPIC, Session)
