"""The lineage of one edit: its causal chain read from the session's recorded events, each link with the
event versions it comes from.

A pure function over the events. The facts the log does not hold are asked of two optional read-only
callables the caller passes: `commit_facts(sha)` (the commit's trailers and diff, from git) and
`trace_lookup(trace_id)` (a trace the diagnosis never fetched, from the workspace's trace source).
Trace excerpts are scrubbed of secrets (`domain.scrub`) and cut short; every other string is kept as
recorded for the renderer to escape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from distill_es.app.audit.models import (
    CitedTrace,
    ClusterLink,
    CommitLink,
    EditLineage,
    EditLink,
    GateLink,
    GatePolicy,
    ReviewLink,
    RoutingLink,
    TeacherCallLink,
    TracesLink,
    UndoLink,
    ValidationLink,
)
from distill_es.app.audit.regate import cluster_changes, recorded_policy
from distill_es.domain import teacher_reply
from distill_es.domain.errors import EditNotFound
from distill_es.domain.policy import TIER_TABLE, route
from distill_es.domain.scrub import scrub
from distill_es.domain.session import events as ev
from distill_es.domain.session.records import RefusedEdit
from distill_es.domain.vocabulary import AutonomyMode, BenchmarkSnapshot, EditOp, EditRiskTier

EXCERPT_CHARS = 600
DIFF_CHARS = 20_000


@dataclass(frozen=True)
class CommitFacts:
    """What git says of a commit (read only): its trailers and its diff."""

    trailers: dict[str, list[str]]
    diff: str = ""


CommitFactsLookup = Callable[[str], CommitFacts | None]
TraceLookup = Callable[[str], Any]  # -> a ports.TraceRecord or None


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Secrets scrubbed, then cut to `limit` characters (scrubbing first: a cut never halves a secret)."""
    clean = scrub(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


@dataclass
class _Found:
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


def _scan(events: Iterable[Any], edit_id: str) -> _Found:
    found = _Found()
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


def _edit_event(found: _Found, event: Any) -> None:
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


def _v(*events: Any) -> list[int]:
    return sorted({int(e.originator_version) for e in events if e is not None})


def _at(event: Any) -> str | None:
    return event.timestamp.isoformat() if event is not None else None


def _planned_edit(found: _Found, edit_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
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


def _traces_link(
    found: _Found, edit: dict[str, Any], cluster: dict[str, Any] | None, lookup: TraceLookup | None
) -> TracesLink:
    cited: dict[str, list[str]] = {}
    for trace_id in edit.get("references", []) or []:
        cited.setdefault(str(trace_id), []).append("edit")
    for trace_id in (cluster or {}).get("sample_trace_ids", []) or []:
        cited.setdefault(str(trace_id), []).append("cluster")
    traces: list[CitedTrace] = []
    for trace_id, by in cited.items():
        if trace_id in found.trace_texts:
            text, version = found.trace_texts[trace_id]
            outcome = _outcome_of(text)
            traces.append(
                CitedTrace(
                    trace_id=trace_id,
                    cited_by=by,
                    found=True,
                    source="log",
                    version=version,
                    outcome=outcome,
                    excerpt=excerpt(text),
                )
            )
            continue
        record = _safe_lookup(lookup, trace_id)
        if record is not None:
            text = f"query: {getattr(record, 'query', '')}\nresult: {getattr(record, 'result', '')}"
            traces.append(
                CitedTrace(
                    trace_id=trace_id,
                    cited_by=by,
                    found=True,
                    source="trace_source",
                    outcome=getattr(record, "outcome", None),
                    excerpt=excerpt(text),
                )
            )
        else:
            traces.append(CitedTrace(trace_id=trace_id, cited_by=by, found=False, source=""))
    if not traces:
        return TracesLink(applies=False, note="the edit and its cluster cite no traces")
    versions = sorted({t.version for t in traces if t.version is not None})
    return TracesLink(
        applies=True,
        note=f"{len(traces)} trace(s) cited, {sum(t.found for t in traces)} with recorded text",
        versions=versions,
        traces=traces,
    )


def _safe_lookup(lookup: TraceLookup | None, trace_id: str) -> Any:
    if lookup is None:
        return None
    try:
        return lookup(trace_id)
    except Exception:  # an unreadable trace file: the link says "not found", explain still answers
        return None


def _outcome_of(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    outcome = value.get("outcome") if isinstance(value, dict) else None
    return outcome if isinstance(outcome, str) else None


def _cluster_link(found: _Found, target: str) -> tuple[ClusterLink, dict[str, Any] | None]:
    if found.diagnosis is None:
        return ClusterLink(applies=False, note="no diagnosis was recorded"), None
    for cluster in found.diagnosis.clusters:
        if isinstance(cluster, dict) and cluster.get("id") == target:
            return (
                ClusterLink(
                    applies=True,
                    note=f"cluster {target!r} of the diagnosis",
                    versions=_v(found.diagnosis),
                    cluster_id=target,
                    description=str(cluster.get("description", "")),
                    student_failure_rate=cluster.get("student_failure_rate"),
                    teacher_success_rate=cluster.get("teacher_success_rate"),
                    skill_gap=str(cluster.get("skill_gap", "")),
                    sample_trace_ids=[str(t) for t in cluster.get("sample_trace_ids", [])],
                    task_ids=[str(t) for t in cluster.get("task_ids", [])],
                ),
                cluster,
            )
    note = (
        f"the edit names cluster {target!r}, which the diagnosis does not have"
        if target
        else ("the edit names no target cluster")
    )
    return ClusterLink(applies=False, note=note, versions=_v(found.diagnosis), cluster_id=target), None


def _teacher_link(found: _Found) -> TeacherCallLink:
    call = found.plan_call
    if call is None:
        return TeacherCallLink(applies=False, note="no plan call of the teacher is recorded")
    usage = {str(k): int(v) for k, v in call.usage.items() if isinstance(v, int | float)}
    return TeacherCallLink(
        applies=True,
        note=f"proposed by the {call.purpose} call {call.call_key!r} of {call.model}",
        versions=_v(call),
        call_key=call.call_key,
        purpose=call.purpose,
        model=call.model,
        request_digest=call.request_digest,
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        usage=usage,
        cost_usd=float(call.cost_usd),
        at=_at(call),
    )


def _edit_link(found: _Found, edit: dict[str, Any], facts: CommitFacts | None) -> EditLink:
    if found.queued is not None and found.queued.preview:
        diff, source, versions = found.queued.preview, "review_preview", _v(found.plan, found.queued)
    elif facts is not None and facts.diff:
        diff, source, versions = facts.diff, "git", _v(found.plan)
    else:
        diff, source, versions = "", "", _v(found.plan)
    if len(diff) > DIFF_CHARS:
        diff = diff[:DIFF_CHARS] + f"\n… ({len(diff) - DIFF_CHARS} more characters)"
    payload = edit.get("payload")
    return EditLink(
        applies=True,
        note=f"{edit.get('op', '')} on {edit.get('target') or edit.get('id')}",
        versions=versions,
        op=str(edit.get("op", "")),
        pillar=str(edit.get("pillar", "")),
        target=str(edit.get("target", "")),
        rationale=str(edit.get("rationale", "")),
        payload=payload if isinstance(payload, dict) else {},
        expected_improvement=str(edit.get("expected_improvement", "")),
        references=[str(r) for r in edit.get("references", []) or []],
        diff=diff,
        diff_source=source,
    )


def _routing_link(found: _Found, edit: dict[str, Any], autonomy: str) -> RoutingLink:
    edit_id = str(edit.get("id", ""))
    proposed = next(
        (
            str(c.get("proposed"))
            for c in found.plan.tier_changes
            if isinstance(c, dict) and c.get("edit_id") == edit_id
        ),
        None,
    )
    tier = str(edit.get("risk_tier", ""))
    if found.routed is None:
        return RoutingLink(
            applies=False,
            note="the edit was never routed",
            versions=_v(found.plan),
            proposed_tier=proposed or tier,
            risk_tier=tier,
            autonomy_mode=autonomy,
        )
    why = _routing_words(str(edit.get("op", "")), found.routed.risk_tier, autonomy, found.routed.route)
    return RoutingLink(
        applies=True,
        note=f"{found.routed.risk_tier} tier, routed to {found.routed.route}",
        versions=_v(found.plan, found.routed),
        proposed_tier=proposed or tier,
        risk_tier=found.routed.risk_tier,
        autonomy_mode=autonomy,
        route=found.routed.route,
        why=why,
    )


def _routing_words(op: str, tier: str, autonomy: str, routed: str) -> str:
    """The two tables' rows that decided the route (domain/policy.py), in words."""
    try:
        table_tier = TIER_TABLE[EditOp(op)].value
        table_route = route(AutonomyMode(autonomy), EditRiskTier(tier)).value
    except (ValueError, KeyError):
        return f"recorded as {tier} tier → {routed}"
    words = f"op {op} is {table_tier} tier (the tier table; the teacher's tier is advisory); "
    words += f"autonomy {autonomy} × {tier} tier → {table_route} (the routing table)"
    if table_route != routed:
        words += f"; recorded route {routed} differs from the table"
    return words


def _validation_link(found: _Found) -> ValidationLink:
    if not found.validated:
        return ValidationLink(applies=False, note="the edit was never validated")
    last = found.validated[-1]
    return ValidationLink(
        applies=True,
        note="valid" if last.ok else f"invalid: {last.reason}",
        versions=_v(*found.validated),
        ok=bool(last.ok),
        reason=last.reason,
    )


def _commit_link(found: _Found, facts: CommitFacts | None) -> CommitLink:
    applied, started = found.applied, found.apply_started
    if applied is None:
        note = (
            "the apply started but no commit was recorded"
            if started is not None
            else "the edit was never committed"
        )
        return CommitLink(
            applies=False,
            note=note,
            versions=_v(started),
            pre_sha=started.pre_sha if started is not None else None,
        )
    return CommitLink(
        applies=True,
        note=f"committed as {applied.commit_sha[:10]}"
        + (" (reconciled after a crash)" if applied.reconciled else ""),
        versions=_v(started, applied),
        pre_sha=started.pre_sha if started is not None else None,
        commit_sha=applied.commit_sha,
        tree_sha=applied.tree_sha,
        changed_files=list(applied.changed_files),
        reconciled=bool(applied.reconciled),
        trailers=dict(facts.trailers) if facts is not None else {},
        trailers_found=facts is not None and bool(facts.trailers),
    )


def _gate_link(found: _Found, target: str, policy: GatePolicy) -> GateLink:
    gate = found.gate
    chosen = found.tasks_chosen
    if gate is None:
        return GateLink(applies=False, note="the edit was never gated")
    before = _snapshot(gate.before)
    after = _snapshot(gate.after)
    return GateLink(
        applies=True,
        note=("accepted" if gate.accepted else "rejected") + f": delta {gate.delta:+.4f}",
        versions=_v(chosen, gate),
        task_ids=list(chosen.task_ids) if chosen is not None else [],
        seed=chosen.seed if chosen is not None else None,
        policy=policy,
        accepted=bool(gate.accepted),
        reason=gate.reason,
        before_overall=before.overall_score if before else None,
        after_overall=after.overall_score if after else None,
        delta=float(gate.delta),
        clusters=cluster_changes(before, after, target),
    )


def _snapshot(value: dict[str, Any]) -> BenchmarkSnapshot | None:
    try:
        return BenchmarkSnapshot.model_validate(value)
    except ValueError:
        return None


def _review_link(found: _Found, routing: RoutingLink) -> ReviewLink:
    queued = found.queued
    if found.approved is not None:
        e = found.approved
        return ReviewLink(
            applies=True,
            note=f"approved by {e.reviewer}",
            versions=_v(queued, e),
            decision="approved",
            reviewer=e.reviewer,
            at=_at(e),
            comment=e.note,
        )
    if found.rejected is not None:
        e = found.rejected
        return ReviewLink(
            applies=True,
            note=f"rejected by {e.reviewer}",
            versions=_v(queued, e),
            decision="rejected",
            reviewer=e.reviewer,
            at=_at(e),
            comment=e.reason,
        )
    if queued is not None or routing.route == "review":
        return ReviewLink(
            applies=True, note="waiting for a reviewer", versions=_v(queued, found.routed), decision="pending"
        )
    if routing.route == "apply":
        return ReviewLink(
            applies=False,
            note=f"no reviewer: autonomy {routing.autonomy_mode} applies {routing.risk_tier}-tier edits "
            "without one",
            versions=_v(found.routed),
        )
    return ReviewLink(applies=False, note="no reviewer: the edit was never routed")


def _undo_link(found: _Found) -> UndoLink:
    if found.rolled_back is not None:
        e, asked = found.rolled_back, found.rollback_requested
        who = asked.requested_by if asked is not None else None
        return UndoLink(
            applies=True,
            note=f"rolled back by {e.revert_sha[:10]}" + (f", asked by {who}" if who else ""),
            versions=_v(asked, e),
            kind="rolled_back",
            revert_sha=e.revert_sha,
            at=_at(e),
            requested_by=who,
        )
    if found.reverted is not None:
        e = found.reverted
        why = (
            "its gate rejected it"
            if found.gate is not None and not found.gate.accepted
            else "it was withdrawn"
        )
        return UndoLink(
            applies=True,
            note=f"reverted by {e.revert_sha[:10]}: {why}",
            versions=_v(e),
            kind="reverted",
            revert_sha=e.revert_sha,
            at=_at(e),
        )
    return UndoLink(applies=False, note="never reverted or rolled back")


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
    found = _scan(events, edit_id)
    status = status if status is not None else _status(events, edit_id)
    if found.started is None:
        raise EditNotFound("a session without events has no edits")
    sid = str(found.started.originator_id)
    edit, refusal = _planned_edit(found, edit_id)
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
    cluster_link, cluster = _cluster_link(found, target)
    routing = _routing_link(found, edit, autonomy)
    return EditLineage(
        session_id=sid,
        edit_id=edit_id,
        status=status,
        session_version=found.last_version,
        traces=_traces_link(found, edit, cluster, trace_lookup),
        cluster=cluster_link,
        teacher_call=_teacher_link(found),
        edit=_edit_link(found, edit, facts),
        routing=routing,
        validation=_validation_link(found),
        commit=_commit_link(found, facts),
        gate=_gate_link(found, target, policy),
        review=_review_link(found, routing),
        undo=_undo_link(found),
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
    found: _Found,
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
    cluster_link, cluster = _cluster_link(found, target)
    edit = {
        **{k: v for k, v in raw.items() if k in ("op", "pillar", "target", "payload", "rationale")},
        "id": edit_id,
        "expected_improvement": target,
        "references": [r for r in raw.get("references", []) if isinstance(r, str)]
        if isinstance(raw.get("references"), list)
        else [],
    }
    edit_link = _edit_link(found, edit, None).model_copy(update={"note": reason})
    after_plan = {"note": reason, "versions": _v(found.plan)}
    return EditLineage(
        session_id=sid,
        edit_id=edit_id,
        status=status or "refused",
        session_version=found.last_version,
        traces=_traces_link(found, edit, cluster, lookup),
        cluster=cluster_link,
        teacher_call=_teacher_link(found),
        edit=edit_link,
        routing=RoutingLink(applies=False, **after_plan),
        validation=ValidationLink(applies=False, **after_plan),
        commit=CommitLink(applies=False, **after_plan),
        gate=GateLink(applies=False, **after_plan),
        review=ReviewLink(applies=False, **after_plan),
        undo=UndoLink(applies=False, **after_plan),
    )
