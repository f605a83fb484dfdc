"""The event catalogue: one immutable event per fact, named in the past tense.

Rules every event follows:
- an explicit, stable `TOPIC` (`distill_es.<Name>.v1`-style names survive class renames and moves);
- payload fields are JSON values only (str, int, float, bool, None, lists, dicts), so a stored
  event, an exported line and a digest all see the same bytes;
- a `digest` that chains the event to the previous one of its session (see `chain_digest`);
- `class_version` plus an `upcast_vN_vN+1` static method when a shape changes, so old logs stay
  readable (see `SessionFailed`);
- `apply` only hands the event to the aggregate's `evolve`: replay runs no side effects.
"""

from __future__ import annotations

from typing import Any, ClassVar

from distill_es.domain.chain import ChainedCreated, ChainedEvent


class SessionEvent(ChainedEvent):
    """Base of every non-initial session event."""


class SessionStarted(ChainedCreated):
    """A session exists: what started it, under which settings, on which workspace."""

    TOPIC: ClassVar[str] = "distill_es.SessionStarted.v1"
    trigger: dict[str, Any]  # {"kind": TriggerKind, "metadata": {...}}
    autonomy_mode: str
    settings: dict[str, Any]  # the full Settings the session runs under, frozen at start
    workspace: str
    parent_session_id: str | None = None


# --- initiated -------------------------------------------------------------------------------
class ReadinessChecked(SessionEvent):
    TOPIC = "distill_es.ReadinessChecked.v1"
    trace_count: int
    min_traces: int
    ready: bool
    git_head: str | None = None  # the workspace checkpoint the session starts from
    git_tree: str | None = None


class PhaseEntered(SessionEvent):
    """The lifecycle moved into a working phase (diagnosing, planning, executing)."""

    TOPIC = "distill_es.PhaseEntered.v1"
    phase: str
    from_phase: str


# --- teacher -----------------------------------------------------------------------------------
class TeacherCallCompleted(SessionEvent):
    """A teacher request and its response; once here it is never sent again for this session."""

    TOPIC = "distill_es.TeacherCallCompleted.v1"
    call_key: str  # e.g. "diagnose/3", "plan", "self_run/<tool_use_id>"
    purpose: str  # diagnose | plan | self_run | judge
    model: str
    request_digest: str
    response: dict[str, Any]
    usage: dict[str, int]
    cost_usd: float


class ToolCallCompleted(SessionEvent):
    """A diagnose tool the teacher asked for, and the result that went back to it."""

    TOPIC = "distill_es.ToolCallCompleted.v1"
    call_key: str  # the teacher turn that asked
    tool_use_id: str
    tool: str
    content: str
    is_error: bool
    student_result: dict[str, Any] | None = None


class DiagnosisRecorded(SessionEvent):
    TOPIC = "distill_es.DiagnosisRecorded.v1"
    markdown: str
    clusters: list[dict[str, Any]]


class PlanFrozen(SessionEvent):
    """The plan as the engine accepted it: edits with engine-assigned tiers, and what it refused (each
    `{index, edit_id, reason, raw}`; a session shows it as an edit outcome `refused` with the reason)."""

    TOPIC = "distill_es.PlanFrozen.v1"
    plan: dict[str, Any]
    rejected: list[dict[str, Any]]
    tier_changes: list[dict[str, Any]]
    downgrades: list[str]


# --- executing -------------------------------------------------------------------------------
class EditRouted(SessionEvent):
    TOPIC = "distill_es.EditRouted.v1"
    edit_id: str
    risk_tier: str
    route: str  # apply | review


class EditQueuedForReview(SessionEvent):
    TOPIC = "distill_es.EditQueuedForReview.v1"
    edit_id: str
    preview: str  # the diff a reviewer will read


class EditValidated(SessionEvent):
    TOPIC = "distill_es.EditValidated.v1"
    edit_id: str
    ok: bool
    reason: str


class EditApplyStarted(SessionEvent):
    """Intent: the edit is about to be written and committed on top of `pre_sha`."""

    TOPIC = "distill_es.EditApplyStarted.v1"
    edit_id: str
    pre_sha: str
    pre_tree: str


class EditApplied(SessionEvent):
    TOPIC = "distill_es.EditApplied.v1"
    edit_id: str
    commit_sha: str
    tree_sha: str
    changed_files: list[str]
    reconciled: bool = False  # found in git after a crash rather than applied by this process


class EditSkipped(SessionEvent):
    TOPIC = "distill_es.EditSkipped.v1"
    edit_id: str
    reason: str


class EditTrained(SessionEvent):
    """An approved `lora_finetune` edit went through its training run (see distill_es.training)."""

    TOPIC = "distill_es.EditTrained.v1"
    edit_id: str
    run_id: str
    state: str  # completed | failed | dry_run
    deployable: bool | None
    summary: str


class GateTasksChosen(SessionEvent):
    """The seeded benchmark subsample every snapshot of this session scores."""

    TOPIC = "distill_es.GateTasksChosen.v1"
    seed: int
    task_ids: list[str]


class TasksScored(SessionEvent):
    """Student runs scored on one workspace tree, in task order."""

    TOPIC = "distill_es.TasksScored.v1"
    tree_sha: str
    seed: int
    student_model: str
    scores: list[dict[str, Any]]  # TaskScore values


class BenchmarkCaptured(SessionEvent):
    TOPIC = "distill_es.BenchmarkCaptured.v1"
    label: str  # before | after
    snapshot: dict[str, Any]


class GateEvaluated(SessionEvent):
    TOPIC = "distill_es.GateEvaluated.v1"
    edit_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    delta: float
    cluster_deltas: dict[str, float]
    accepted: bool
    reason: str


class EditReverted(SessionEvent):
    """A gate-rejected edit undone by reverting exactly its commit."""

    TOPIC = "distill_es.EditReverted.v1"
    edit_id: str
    revert_sha: str
    tree_sha: str


# --- review ------------------------------------------------------------------------------------
class EditApprovedByReviewer(SessionEvent):
    TOPIC = "distill_es.EditApprovedByReviewer.v1"
    edit_id: str
    reviewer: str
    note: str


class EditRejectedByReviewer(SessionEvent):
    TOPIC = "distill_es.EditRejectedByReviewer.v1"
    edit_id: str
    reviewer: str
    reason: str


# --- resting states --------------------------------------------------------------------------
class SessionAwaitingReview(SessionEvent):
    TOPIC = "distill_es.SessionAwaitingReview.v1"
    pending_edit_ids: list[str]
    git_post: str | None


class SessionCompleted(SessionEvent):
    TOPIC = "distill_es.SessionCompleted.v1"
    git_post: str | None


class SessionFailed(SessionEvent):
    """v2 added `reason_code`, so tools can tell a cold start from a budget stop without parsing text."""

    TOPIC = "distill_es.SessionFailed.v1"  # the topic names the fact, not the shape: it never changes
    class_version: ClassVar[int] = 2
    error: str
    reason_code: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["reason_code"] = "error"


class SessionCancelled(SessionEvent):
    """A person ended a session that could not go on; it rests `failed` with reason_code `cancelled`."""

    TOPIC = "distill_es.SessionCancelled.v1"
    cancelled_by: str
    reason: str


# --- interruptions ------------------------------------------------------------------------------
class StepInterrupted(SessionEvent):
    """A step could not finish because an outside endpoint failed (connection refused, timeout, 5xx,
    a rate limit beyond the bounded wait, a malformed body) after its retries. Nothing of the step was
    recorded; the lifecycle state is unchanged and `run` resumes the session. Not a result: workers
    back off a session by its recent interruptions."""

    TOPIC = "distill_es.StepInterrupted.v1"
    step: str  # the step kind that was interrupted, e.g. ScoreTree
    role: str  # student | judge | teacher ("" when the failure did not say)
    endpoint: str  # scheme://host:port/path, never credentials
    error_class: str
    error: str
    attempts: int


# --- rollback ----------------------------------------------------------------------------------
class RollbackRequested(SessionEvent):
    TOPIC = "distill_es.RollbackRequested.v1"
    requested_by: str


class EditRolledBack(SessionEvent):
    TOPIC = "distill_es.EditRolledBack.v1"
    edit_id: str
    revert_sha: str


class SessionRolledBack(SessionEvent):
    TOPIC = "distill_es.SessionRolledBack.v1"
    reverted_edit_ids: list[str]
    git_post: str | None


EVENT_TYPES: list[type] = [SessionStarted, *SessionEvent.__subclasses__()]
