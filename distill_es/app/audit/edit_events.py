"""The events of one session that concern one edit, found in one pass over the log (for `explain`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from distill_es.domain import teacher_reply
from distill_es.domain.session import events as ev
from distill_es.domain.session.records import RefusedEdit


@dataclass
class Found:
    """The events of one session that concern one edit, each with its version."""

    started: Any = None
    diagnosis: Any = None
    plan_call: Any = None  # the last plan teacher call before the plan froze
    plan: Any = None
    routed: Any = None
    queued: Any = None
    validated: list[Any] = field(default_factory=list)
    apply_started: Any = None
    applied: Any = None
    tasks_chosen: Any = None
    gate: Any = None
    reverted: Any = None
    approved: Any = None
    rejected: Any = None
    rollback_requested: Any = None
    rolled_back: Any = None
    trace_texts: dict[str, tuple[str, int]] = field(default_factory=dict)  # trace id → (text, version)
    last_version: int = 0


def scan(events: Iterable[Any], edit_id: str) -> Found:
    found = Found()
    trace_asks: dict[tuple[str, str], str] = {}  # (call key, tool_use_id) → trace id: ids are the teacher's
    for event in events:
        version = int(event.originator_version)
        found.last_version = version
        match event:
            case ev.SessionStarted():
                found.started = event
            case ev.TeacherCallCompleted():
                if event.purpose == "plan" and found.plan is None:
                    found.plan_call = event
                for use in teacher_reply.tool_uses(event.response, "get_trace"):
                    asked = use.get("input")
                    trace_id = asked.get("trace_id") if isinstance(asked, dict) else None
                    if isinstance(trace_id, str) and isinstance(use.get("id"), str):
                        trace_asks[(event.call_key, use["id"])] = trace_id
            case ev.ToolCallCompleted():
                trace_id = trace_asks.get((event.call_key, event.tool_use_id))
                if event.tool == "get_trace" and trace_id and not event.is_error:
                    found.trace_texts.setdefault(trace_id, (event.content, version))
            case ev.DiagnosisRecorded():
                found.diagnosis = event
            case ev.PlanFrozen():
                found.plan = event
            case ev.GateTasksChosen():
                found.tasks_chosen = event
            case ev.RollbackRequested():
                found.rollback_requested = event
            case _ if getattr(event, "edit_id", None) == edit_id:
                _edit_event(found, event)
    return found


def _edit_event(found: Found, event: Any) -> None:
    match event:
        case ev.EditRouted():
            found.routed = event
        case ev.EditQueuedForReview():
            found.queued = event
        case ev.EditValidated():
            found.validated.append(event)
        case ev.EditApplyStarted():
            found.apply_started = event
        case ev.EditApplied():
            found.applied = event
        case ev.GateEvaluated():
            found.gate = event
        case ev.EditReverted():
            found.reverted = event
        case ev.EditApprovedByReviewer():
            found.approved = event
        case ev.EditRejectedByReviewer():
            found.rejected = event
        case ev.EditRolledBack():
            found.rolled_back = event


def planned_edit(found: Found, edit_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the frozen edit, the plan's refusal of it): at most one is not None."""
    if found.plan is None:
        return None, None
    for edit in found.plan.plan.get("edits", []):
        if isinstance(edit, dict) and edit.get("id") == edit_id:
            return edit, None
    for refusal in found.plan.rejected:  # named as `show` names them ("edits[3]" without a usable id)
        if isinstance(refusal, dict) and RefusedEdit.recorded(refusal).edit_id == edit_id:
            return None, refusal
    return None, None
