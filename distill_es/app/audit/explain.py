"""The lineage of one edit: its causal chain read from the session's recorded events, each link with the
event versions it comes from.

A pure function over the events. The facts the log does not hold are asked of two optional read-only
callables the caller passes: `commit_facts(sha)` (the commit's trailers and diff, from git) and
`trace_lookup(trace_id)` (a trace the diagnosis never fetched, from the workspace's trace source).
Trace excerpts are scrubbed of secrets (`domain.scrub`) and cut short; every other string is kept as
recorded for the renderer to escape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distill_es.app.audit.edit_events import Found, planned_edit, scan
from distill_es.app.audit.links import (
    CommitFacts,
    CommitFactsLookup,
    TraceLookup,
    cluster_link,
    commit_link,
    edit_link,
    gate_link,
    review_link,
    routing_link,
    teacher_link,
    traces_link,
    undo_link,
    validation_link,
    versions_of,
)
from distill_es.app.audit.models import (
    CommitLink,
    EditLineage,
    GateLink,
    ReviewLink,
    RoutingLink,
    UndoLink,
    ValidationLink,
)
from distill_es.app.audit.regate import recorded_policy
from distill_es.domain.errors import EditNotFound

__all__ = ["CommitFacts", "explain_events"]


def explain_events(
    events: Iterable[Any],
    edit_id: str,
    *,
    status: str | None = None,
    commit_facts: CommitFactsLookup | None = None,
    trace_lookup: TraceLookup | None = None,
) -> EditLineage:
    """The lineage of `edit_id` in the session whose `events` are given, in order. `status` is the edit's
    outcome as the session view shows it. `EditNotFound` when the plan has no such edit."""
    events = list(events)
    found = scan(events, edit_id)
    status = status if status is not None else _status(events, edit_id)
    if found.started is None:
        raise EditNotFound("a session without events has no edits")
    sid = str(found.started.originator_id)
    edit, refusal = planned_edit(found, edit_id)
    autonomy = str(found.started.autonomy_mode)
    policy = recorded_policy(found.started.settings)
    if edit is None and refusal is None:
        raise EditNotFound(f"session {sid} has no edit {edit_id!r}")
    if refusal is not None:
        return _refused_lineage(found, sid, edit_id, refusal, status, trace_lookup)
    assert edit is not None
    target = str(edit.get("expected_improvement", ""))
    sha = found.applied.commit_sha if found.applied is not None else None
    facts = _safe_facts(commit_facts, sha)
    cluster, cluster_data = cluster_link(found, target)
    routing = routing_link(found, edit, autonomy)
    return EditLineage(
        session_id=sid,
        edit_id=edit_id,
        status=status,
        session_version=found.last_version,
        traces=traces_link(found, edit, cluster_data, trace_lookup),
        cluster=cluster,
        teacher_call=teacher_link(found),
        edit=edit_link(found, edit, facts),
        routing=routing,
        validation=validation_link(found),
        commit=commit_link(found, facts),
        gate=gate_link(found, target, policy),
        review=review_link(found, routing),
        undo=undo_link(found),
    )


def _status(events: list[Any], edit_id: str) -> str | None:
    """The edit's outcome as `show` has it: the session folded by its own `evolve`."""
    session: Any = None
    for event in events:
        session = event.mutate(session)
    progress = session.edits.get(edit_id) if session is not None else None
    if progress is not None:
        return progress.outcome
    refused = session is not None and any(r.edit_id == edit_id for r in session.refused_edits)
    return "refused" if refused else None


def _safe_facts(lookup: CommitFactsLookup | None, sha: str | None) -> CommitFacts | None:
    if lookup is None or sha is None:
        return None
    try:
        return lookup(sha)
    except Exception:  # git unreadable: the commit link says its trailers were not found
        return None


def _refused_lineage(
    found: Found,
    sid: str,
    edit_id: str,
    refusal: dict[str, Any],
    status: str | None,
    lookup: TraceLookup | None,
) -> EditLineage:
    """An edit the plan refused when it froze: the chain stops at the plan, and says why."""
    reason = f"refused at plan time: {refusal.get('reason', '')}"
    raw = refusal.get("raw") if isinstance(refusal.get("raw"), dict) else {}
    target = (
        str(raw.get("expected_improvement", "")) if isinstance(raw.get("expected_improvement"), str) else ""
    )
    cluster, cluster_data = cluster_link(found, target)
    edit = {
        **{k: v for k, v in raw.items() if k in ("op", "pillar", "target", "payload", "rationale")},
        "id": edit_id,
        "expected_improvement": target,
        "references": [r for r in raw.get("references", []) if isinstance(r, str)]
        if isinstance(raw.get("references"), list)
        else [],
    }
    edit_part = edit_link(found, edit, None).model_copy(update={"note": reason})
    after_plan = {"note": reason, "versions": versions_of(found.plan)}
    return EditLineage(
        session_id=sid,
        edit_id=edit_id,
        status=status or "refused",
        session_version=found.last_version,
        traces=traces_link(found, edit, cluster_data, lookup),
        cluster=cluster,
        teacher_call=teacher_link(found),
        edit=edit_part,
        routing=RoutingLink(applies=False, **after_plan),
        validation=ValidationLink(applies=False, **after_plan),
        commit=CommitLink(applies=False, **after_plan),
        gate=GateLink(applies=False, **after_plan),
        review=ReviewLink(applies=False, **after_plan),
        undo=UndoLink(applies=False, **after_plan),
    )
