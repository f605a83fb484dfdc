"""The links of an edit's lineage, one builder each, from the events `edit_events.scan` found.

Each link carries the event versions it is read from; a link that does not apply says why. Trace
excerpts are scrubbed of secrets (`domain.scrub`) and cut short; every other string is kept as recorded
for the renderer to escape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distill_es.app.audit.edit_events import Found
from distill_es.app.audit.models import (
    CitedTrace,
    ClusterLink,
    CommitLink,
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
from distill_es.app.audit.regate import cluster_changes
from distill_es.domain.policy import TIER_TABLE, route
from distill_es.domain.scrub import scrub
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


def versions_of(*events: Any) -> list[int]:
    return sorted({int(e.originator_version) for e in events if e is not None})


def _at(event: Any) -> str | None:
    return event.timestamp.isoformat() if event is not None else None


def traces_link(
    found: Found, edit: dict[str, Any], cluster: dict[str, Any] | None, lookup: TraceLookup | None
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


def cluster_link(found: Found, target: str) -> tuple[ClusterLink, dict[str, Any] | None]:
    if found.diagnosis is None:
        return ClusterLink(applies=False, note="no diagnosis was recorded"), None
    for cluster in found.diagnosis.clusters:
        if isinstance(cluster, dict) and cluster.get("id") == target:
            return (
                ClusterLink(
                    applies=True,
                    note=f"cluster {target!r} of the diagnosis",
                    versions=versions_of(found.diagnosis),
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
    return ClusterLink(
        applies=False, note=note, versions=versions_of(found.diagnosis), cluster_id=target
    ), None


def teacher_link(found: Found) -> TeacherCallLink:
    call = found.plan_call
    if call is None:
        return TeacherCallLink(applies=False, note="no plan call of the teacher is recorded")
    usage = {str(k): int(v) for k, v in call.usage.items() if isinstance(v, int | float)}
    return TeacherCallLink(
        applies=True,
        note=f"proposed by the {call.purpose} call {call.call_key!r} of {call.model}",
        versions=versions_of(call),
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


def edit_link(found: Found, edit: dict[str, Any], facts: CommitFacts | None) -> EditLink:
    if found.queued is not None and found.queued.preview:
        diff, source, versions = found.queued.preview, "review_preview", versions_of(found.plan, found.queued)
    elif facts is not None and facts.diff:
        diff, source, versions = facts.diff, "git", versions_of(found.plan)
    else:
        diff, source, versions = "", "", versions_of(found.plan)
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


def routing_link(found: Found, edit: dict[str, Any], autonomy: str) -> RoutingLink:
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
            versions=versions_of(found.plan),
            proposed_tier=proposed or tier,
            risk_tier=tier,
            autonomy_mode=autonomy,
        )
    why = _routing_words(str(edit.get("op", "")), found.routed.risk_tier, autonomy, found.routed.route)
    return RoutingLink(
        applies=True,
        note=f"{found.routed.risk_tier} tier, routed to {found.routed.route}",
        versions=versions_of(found.plan, found.routed),
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


def validation_link(found: Found) -> ValidationLink:
    if not found.validated:
        return ValidationLink(applies=False, note="the edit was never validated")
    last = found.validated[-1]
    return ValidationLink(
        applies=True,
        note="valid" if last.ok else f"invalid: {last.reason}",
        versions=versions_of(*found.validated),
        ok=bool(last.ok),
        reason=last.reason,
    )


def commit_link(found: Found, facts: CommitFacts | None) -> CommitLink:
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
            versions=versions_of(started),
            pre_sha=started.pre_sha if started is not None else None,
        )
    return CommitLink(
        applies=True,
        note=f"committed as {applied.commit_sha[:10]}"
        + (" (reconciled after a crash)" if applied.reconciled else ""),
        versions=versions_of(started, applied),
        pre_sha=started.pre_sha if started is not None else None,
        commit_sha=applied.commit_sha,
        tree_sha=applied.tree_sha,
        changed_files=list(applied.changed_files),
        reconciled=bool(applied.reconciled),
        trailers=dict(facts.trailers) if facts is not None else {},
        trailers_found=facts is not None and bool(facts.trailers),
    )


def gate_link(found: Found, target: str, policy: GatePolicy) -> GateLink:
    gate = found.gate
    chosen = found.tasks_chosen
    if gate is None:
        return GateLink(applies=False, note="the edit was never gated")
    before = _snapshot(gate.before)
    after = _snapshot(gate.after)
    return GateLink(
        applies=True,
        note=("accepted" if gate.accepted else "rejected") + f": delta {gate.delta:+.4f}",
        versions=versions_of(chosen, gate),
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


def review_link(found: Found, routing: RoutingLink) -> ReviewLink:
    queued = found.queued
    if found.approved is not None:
        e = found.approved
        return ReviewLink(
            applies=True,
            note=f"approved by {e.reviewer}",
            versions=versions_of(queued, e),
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
            versions=versions_of(queued, e),
            decision="rejected",
            reviewer=e.reviewer,
            at=_at(e),
            comment=e.reason,
        )
    if queued is not None or routing.route == "review":
        return ReviewLink(
            applies=True,
            note="waiting for a reviewer",
            versions=versions_of(queued, found.routed),
            decision="pending",
        )
    if routing.route == "apply":
        return ReviewLink(
            applies=False,
            note=f"no reviewer: autonomy {routing.autonomy_mode} applies {routing.risk_tier}-tier edits "
            "without one",
            versions=versions_of(found.routed),
        )
    return ReviewLink(applies=False, note="no reviewer: the edit was never routed")


def undo_link(found: Found) -> UndoLink:
    if found.rolled_back is not None:
        e, asked = found.rolled_back, found.rollback_requested
        who = asked.requested_by if asked is not None else None
        return UndoLink(
            applies=True,
            note=f"rolled back by {e.revert_sha[:10]}" + (f", asked by {who}" if who else ""),
            versions=versions_of(asked, e),
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
            versions=versions_of(e),
            kind="reverted",
            revert_sha=e.revert_sha,
            at=_at(e),
        )
    return UndoLink(applies=False, note="never reverted or rolled back")
