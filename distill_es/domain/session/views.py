"""Read side of a session: the `LearningSession` view (`Session.view()`) and what it is built from."""

from __future__ import annotations

from distill_es.domain.session import lifecycle
from distill_es.domain.session.records import EditProgress, RefusedEdit
from distill_es.domain.session.state import SessionState
from distill_es.domain.step_words import step_words
from distill_es.domain.vocabulary import EditOutcome, LearningSession, SessionStatus


def learning_session(session: SessionState) -> LearningSession:
    outcomes = [o for p in session.edits.values() if (o := edit_outcome(p)) is not None]
    outcomes += [refused_outcome(r) for r in session.refused_edits]
    return LearningSession(
        id=str(session.id),
        parent_session_id=session.parent_session_id,
        trigger=session.trigger.kind,
        trigger_metadata=session.trigger.metadata,
        status=SessionStatus(session.status),
        autonomy_mode=session.autonomy_mode,
        started_at=session.started_at,
        ended_at=session.ended_at if session.status in lifecycle.RESTING else None,
        version=session.version,
        diagnosis_markdown=session.diagnosis_markdown,
        plan=session.plan,
        benchmark_before=session.benchmark_before,
        benchmark_after=session.benchmark_after,
        edit_outcomes=outcomes,
        git_checkpoint_pre=session.git_pre,
        git_checkpoint_post=session.git_post,
        teacher_cost_usd=round(session.teacher_cost_usd, 10),
        student_calls_made=session.student_calls_made,
        student_calls_reused=session.student_calls_reused,
        error=session.error,
        interruption=interruption_line(session),
    )


def edit_outcome(p: EditProgress) -> EditOutcome | None:
    """What a user sees of one edit: its outcome (from its state) and the recorded facts behind it."""
    status = p.outcome
    if status is None:
        return None
    error = None
    if status in ("invalid", "apply_failed"):
        error = p.check_reason
    elif status == "rejected_by_gate":
        error = p.gate.reason if p.gate else None
    elif p.training is not None and status != "applied":
        error = p.training["summary"]
    elif status == "skipped":
        error = p.skipped_reason
    elif status == "rejected_by_user":
        error = f"rejected by {p.rejected_by}: {p.rejection_reason}"
    return EditOutcome(
        edit_id=p.edit.id,
        status=status,  # type: ignore[arg-type]
        benchmark_delta=p.gate.delta if p.gate else None,
        cluster_deltas=dict(p.gate.cluster_deltas) if p.gate else {},
        error=error,
        applied_at=p.applied_at if status in ("applied", "rolled_back") else None,
        risk_tier=p.risk_tier,
        commit_sha=p.commit_sha,
    )


def refused_outcome(r: RefusedEdit) -> EditOutcome:
    """An edit refused at plan time: its outcome (from its state) and the plan's reason."""
    return EditOutcome(edit_id=r.edit_id, status=r.outcome, error=r.reason)  # type: ignore[arg-type]


def interruption_line(session: SessionState) -> str | None:
    """The last outside failure, while no progress has been recorded since it."""
    last = session.last_interruption
    if not session.interruptions_in_a_row or last is None:
        return None
    times = (
        "" if session.interruptions_in_a_row == 1 else f" ({session.interruptions_in_a_row} times in a row)"
    )
    return (
        f"interrupted while {step_words(last['step'])}{times}: the {last['role'] or 'outside'} endpoint "
        f"{last['endpoint']} failed ({last['error_class']}: {last['error']})"
    )
