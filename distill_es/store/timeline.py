"""Per-session read models folded from that session's events on demand: the audit `timeline` and the
`cost_ledger` (the current-state view is the aggregate's own `view()`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distill_es.adapters.pricing import overrides_from, price_for
from distill_es.domain.session import events as ev
from distill_es.domain.session.records import RefusedEdit
from distill_es.domain.step_words import step_words


def _short(sha: str | None) -> str:
    return (sha or "")[:10]


def describe(event: Any) -> tuple[str, str]:
    """(who, one-line what) for an event: the audit timeline's words."""
    match event:
        case ev.SessionStarted():
            kind = event.trigger.get("kind")
            return "engine", f"session started by {kind} trigger, autonomy {event.autonomy_mode}"
        case ev.ReadinessChecked():
            verdict = "ready" if event.ready else "not ready"
            return "engine", f"{event.trace_count} traces (need {event.min_traces}): {verdict}"
        case ev.PhaseEntered():
            return "engine", f"{event.from_phase} → {event.phase}"
        case ev.TeacherCallCompleted():
            usage = event.usage
            return "teacher", (
                f"{event.purpose} call {event.call_key} ({event.model}): "
                f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens, "
                f"${event.cost_usd:.4f}"
            )
        case ev.ToolCallCompleted():
            status = "error" if event.is_error else "ok"
            return "engine", f"tool {event.tool} for {event.call_key}: {status}, {len(event.content)} chars"
        case ev.DiagnosisRecorded():
            ids = ", ".join(c.get("id", "?") for c in event.clusters)
            return "teacher", f"diagnosis recorded: {len(event.clusters)} clusters ({ids})"
        case ev.PlanFrozen():
            return "engine", plan_frozen_line(event)
        case ev.EditRouted():
            return "engine", f"edit {event.edit_id} ({event.risk_tier} tier) routed to {event.route}"
        case ev.EditQueuedForReview():
            return "engine", f"edit {event.edit_id} queued for review"
        case ev.EditValidated():
            verdict = "valid" if event.ok else f"invalid: {event.reason}"
            return "engine", f"edit {event.edit_id} {verdict}"
        case ev.EditApplyStarted():
            return "engine", f"applying edit {event.edit_id} on {_short(event.pre_sha)}"
        case ev.EditApplied():
            how = " (reconciled after a crash)" if event.reconciled else ""
            return "engine", f"edit {event.edit_id} committed as {_short(event.commit_sha)}{how}"
        case ev.EditSkipped():
            return "engine", f"edit {event.edit_id} skipped: {event.reason}"
        case ev.GateTasksChosen():
            return "engine", f"gate subsample: {len(event.task_ids)} tasks, seed {event.seed}"
        case ev.TasksScored():
            return "student", f"{len(event.scores)} tasks scored on tree {_short(event.tree_sha)}"
        case ev.BenchmarkCaptured():
            overall = event.snapshot.get("overall_score", 0.0)
            tasks = event.snapshot.get("task_count", 0)
            return "engine", f"benchmark {event.label}: overall {overall:.3f} over {tasks} tasks"
        case ev.GateEvaluated():
            verdict = "accepted" if event.accepted else f"rejected: {event.reason}"
            return "engine", f"gate for {event.edit_id}: delta {event.delta:+.3f}, {verdict}"
        case ev.EditReverted():
            return "engine", f"edit {event.edit_id} reverted by {_short(event.revert_sha)}"
        case ev.EditApprovedByReviewer():
            note = f": {event.note}" if event.note else ""
            return event.reviewer, f"approved edit {event.edit_id}{note}"
        case ev.EditRejectedByReviewer():
            return event.reviewer, f"rejected edit {event.edit_id}: {event.reason}"
        case ev.SessionAwaitingReview():
            return "engine", f"awaiting review of {', '.join(event.pending_edit_ids)}"
        case ev.SessionCompleted():
            return "engine", f"completed at {_short(event.git_post)}"
        case ev.SessionFailed():
            return "engine", f"failed ({event.reason_code}): {event.error}"
        case ev.StepInterrupted():
            who = event.role or "engine"
            tries = "1 attempt" if event.attempts == 1 else f"{event.attempts} attempts"
            return who, (
                f"interrupted while {step_words(event.step)}: the {event.role or 'outside'} endpoint "
                f"{event.endpoint} failed after {tries} ({event.error_class}: {event.error}); resumable"
            )
        case ev.SessionCancelled():
            return event.cancelled_by, f"cancelled: {event.reason}"
        case ev.RollbackRequested():
            return event.requested_by, "rollback requested"
        case ev.EditRolledBack():
            return "engine", f"edit {event.edit_id} rolled back by {_short(event.revert_sha)}"
        case ev.SessionRolledBack():
            return "engine", f"rolled back {len(event.reverted_edit_ids)} edits"
    return "engine", type(event).__name__


def timeline(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The audit history: one entry per event — when, what, who, details."""
    entries = []
    for event in events:
        who, what = describe(event)
        entries.append(
            {
                "version": event.originator_version,
                "at": event.timestamp.isoformat(),
                "type": type(event).__name__,
                "who": who,
                "what": what,
                "digest": event.digest,
            }
        )
    return entries


def cost_ledger(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Every priced teacher call, in order. Built from the log, so resume never counts twice.
    `known` is false for a model neither the price table nor the session's recorded `[pricing]`
    names: its cost was counted at the dearest known rate (an upper bound, never an under-count)."""
    events = list(events)
    pricing = next((e.settings.get("pricing") for e in events if isinstance(e, ev.SessionStarted)), None)
    overrides = overrides_from(pricing)
    return [
        {
            "version": event.originator_version,
            "at": event.timestamp.isoformat(),
            "call_key": event.call_key,
            "purpose": event.purpose,
            "model": event.model,
            "usage": dict(event.usage),
            "cost_usd": event.cost_usd,
            "known": price_for(event.model, overrides).known,
        }
        for event in events
        if isinstance(event, ev.TeacherCallCompleted)
    ]


def plan_frozen_line(event: ev.PlanFrozen) -> str:
    """How many edits the plan kept, and each one it refused with the reason."""
    n = len(event.plan.get("edits", []))
    line = f"plan frozen: {n} edit{'' if n == 1 else 's'} accepted, {len(event.rejected)} refused"
    refused = [RefusedEdit.recorded(r) for r in event.rejected if isinstance(r, dict)]
    if refused:
        line += ": " + "; ".join(f"{r.edit_id} ({r.reason})" for r in refused)
    return line
