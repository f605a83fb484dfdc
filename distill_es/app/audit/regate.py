"""What-if re-gating: every recorded gate of a session decided again under another policy.

A pure function over the session's recorded events: they are folded with the session's own `evolve`
(the same replay the engine runs), and at each `GateEvaluated` the edit's before and after readings are
recomputed from the recorded `TasksScored` with the gate's own `snapshot`, then decided by the gate's own
`evaluate_gate` — under the recorded policy (which must reproduce the recorded verdict, else the gate is
not re-decidable) and under the what-if policy. No model is called, nothing is recorded, no workspace is
read. What a what-if can and cannot answer: `LIMITS`, and docs/audit.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from distill_es.app.audit.models import ClusterChange, GatePolicy, RegatedGate, RegateReport, SessionRegate
from distill_es.domain.errors import DamagedSession, DistillError
from distill_es.domain.session import events as ev
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.vocabulary import BenchmarkSnapshot
from distill_es.phases.gate import GateDecision, evaluate_gate, snapshot
from distill_es.ports import TaskScore

LIMITS = [
    "A what-if re-decides each recorded gate from the scores recorded for it; it runs no student, "
    "judge or teacher, so it cannot say how a tree that was never scored would have scored.",
    "A rejection that flips to accepted was reverted when it was recorded: the what-if does not restore "
    "it, and the gates after it in that session were scored on a tree without it.",
    "An acceptance that flips to rejected stays applied in the workspace: every later gate of that session "
    "was scored on a tree that contains it, so their what-if verdicts assume the recorded history "
    "(`after_a_flip`).",
    "Gates without recorded per-cluster scores (or whose recorded scores do not reproduce their recorded "
    "verdict under their recorded policy) cannot be re-decided; they are listed with `why_not`.",
    "Edits that never reached a gate (refused at plan time, invalid, rejected by a reviewer, pending) are "
    "not gates: no policy would have changed their fate.",
]


class InvalidPolicy(DistillError, ValueError):
    """A what-if policy that no gate could run under (negative, NaN or infinite ε / improvement)."""


def check_policy(max_regression: float | None, min_improvement: float | None) -> None:
    for name, value in (("max_regression", max_regression), ("min_improvement", min_improvement)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidPolicy(f"{name} must be a number, not {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise InvalidPolicy(f"{name} must be a finite number ≥ 0, not {value}")


def recorded_policy(settings: dict[str, Any]) -> GatePolicy:
    """The policy a session ran under: its frozen settings' `[gate]` (the contract's defaults if absent)."""
    gate = settings.get("gate") if isinstance(settings, dict) else None
    gate = gate if isinstance(gate, dict) else {}
    return GatePolicy(
        max_regression=float(gate.get("max_regression", 0.01)),
        min_improvement=float(gate.get("min_improvement", 0.0)),
    )


def _reading(session: Any, tree_sha: str | None) -> BenchmarkSnapshot | None:
    """A tree's benchmark reading from the scores recorded for it, as the gate computed it; None when any
    of the gate's tasks has no recorded score on that tree."""
    if tree_sha is None or not session.scored(tree_sha):
        return None
    task_ids = list(session.gate_task_ids or [])
    try:
        scores = {
            t: TaskScore.model_validate(session.scores[session.score_key(tree_sha, t)]) for t in task_ids
        }
        return snapshot(
            scores=scores,
            task_ids=task_ids,
            clusters=session.clusters,
            benchmark_version=str(session.settings.get("gate", {}).get("benchmark_version", "")),
            tree_sha=tree_sha,
        )
    except (ValueError, KeyError):  # a cluster task outside the subsample, or a malformed score
        return None


def _recorded_snapshot(value: dict[str, Any]) -> BenchmarkSnapshot | None:
    try:
        return BenchmarkSnapshot.model_validate(value)
    except ValueError:
        return None


def _decide(
    before: BenchmarkSnapshot, after: BenchmarkSnapshot, target: str, policy: GatePolicy
) -> GateDecision:
    return evaluate_gate(
        before=before,
        after=after,
        target_cluster=target,
        max_regression=policy.max_regression,
        min_improvement=policy.min_improvement,
    )


def cluster_changes(
    before: BenchmarkSnapshot | None, after: BenchmarkSnapshot | None, target: str
) -> list[ClusterChange]:
    """Per-cluster before/after of two readings: the target cluster first, then the others by id."""
    old = before.cluster_scores if before else {}
    new = after.cluster_scores if after else {}
    ids = sorted(set(old) | set(new), key=lambda c: (c != target, c))
    return [
        ClusterChange(
            cluster_id=c,
            before=old.get(c),
            after=new.get(c),
            delta=(new[c] - old[c]) if c in old and c in new else None,
            target=c == target,
        )
        for c in ids
    ]


def _regate(
    session: Any, event: ev.GateEvaluated, recorded: GatePolicy, whatif: GatePolicy
) -> dict[str, Any]:
    """One gate decided again, from the session state folded up to just before its GateEvaluated."""
    progress = session.edits.get(event.edit_id)
    target = progress.edit.expected_improvement if progress is not None else ""
    candidates: list[tuple[str, BenchmarkSnapshot | None, BenchmarkSnapshot | None]] = []
    if progress is not None:
        candidates.append(
            ("tasks_scored", _reading(session, progress.pre_tree), _reading(session, progress.tree_sha))
        )
    candidates.append(("gate_snapshots", _recorded_snapshot(event.before), _recorded_snapshot(event.after)))
    base: dict[str, Any] = {
        "session_id": str(session.id),
        "edit_id": event.edit_id,
        "version": int(event.originator_version),
        "target_cluster": target,
        "recorded_policy": recorded,
        "recorded_accepted": bool(event.accepted),
        "recorded_reason": event.reason,
        "flipped": False,
    }
    why_not = "no before/after readings are recorded for this gate"
    for source, before, after in candidates:
        if before is None or after is None:
            continue
        if not before.cluster_scores and not after.cluster_scores:
            why_not = "no per-cluster scores are recorded for this gate"
            continue
        replay = _decide(before, after, target, recorded)
        if replay.accepted != bool(event.accepted):
            why_not = (
                "the recorded scores do not reproduce the recorded verdict under the recorded policy "
                f"(they give {'accepted' if replay.accepted else 'rejected'})"
            )
            continue
        decision = _decide(before, after, target, whatif)
        return base | {
            "redecidable": True,
            "scores_from": source,
            "whatif_accepted": decision.accepted,
            "whatif_reason": decision.reason,
            "flipped": decision.accepted != bool(event.accepted),
            "delta": decision.delta,
            "clusters": cluster_changes(before, after, target),
        }
    return base | {"redecidable": False, "why_not": why_not, "scores_from": "none", "delta": event.delta}


def _caveats(gate: dict[str, Any], progress: Any) -> list[str]:
    """What this gate's what-if verdict cannot tell, from the edit's whole recorded fate."""
    notes: list[str] = []
    if gate.get("after_a_flip"):
        notes.append(
            "an earlier gate of this session flipped: this gate was scored on the recorded tree, which the "
            "what-if would not have had"
        )
    if not gate["flipped"] or progress is None:
        return notes
    if not gate["recorded_accepted"]:
        revert = f" by {progress.revert_sha[:10]}" if progress.revert_sha else ""
        notes.append(
            f"the edit was reverted{revert} after its recorded rejection: accepting it now restores nothing, "
            "and the later gates of this session were scored without it"
        )
    else:
        commit = f" (commit {progress.commit_sha[:10]})" if progress.commit_sha else ""
        fate = (
            " It was later rolled back anyway."
            if progress.state == E.ROLLED_BACK
            else " It is still applied: a what-if reverts nothing."
        )
        notes.append(
            f"the edit was kept{commit}: under this policy it would have been reverted, and every later gate "
            f"of this session was scored on a tree that contains it.{fate}"
        )
    return notes


def regate_events(
    events: Iterable[Any], *, max_regression: float | None = None, min_improvement: float | None = None
) -> SessionRegate:
    """Every recorded gate of the session whose `events` are given (in order), decided again. A policy
    value left None is the session's own recorded one (so `regate_events(events)` flips nothing)."""
    check_policy(max_regression, min_improvement)
    session: Any = None
    found: list[dict[str, Any]] = []
    recorded = whatif = GatePolicy(max_regression=0.01, min_improvement=0.0)
    for event in events:
        if session is None:
            session = event.mutate(None)  # SessionStarted: settings are frozen from here on
            recorded = recorded_policy(session.settings)
            whatif = GatePolicy(
                max_regression=recorded.max_regression if max_regression is None else float(max_regression),
                min_improvement=recorded.min_improvement
                if min_improvement is None
                else float(min_improvement),
            )
            continue
        if isinstance(event, ev.GateEvaluated) and event.edit_id in session.edits:
            found.append(_regate(session, event, recorded, whatif))
        session = event.mutate(session)
    if session is None:
        raise DistillError("a session without events cannot be re-gated")
    gates: list[RegatedGate] = []
    flipped_before = False
    for gate in found:
        gate["after_a_flip"] = flipped_before
        gate["caveats"] = _caveats(gate, session.edits.get(gate["edit_id"]))
        flipped_before = flipped_before or gate["flipped"]
        gates.append(RegatedGate.model_validate(gate))
    return SessionRegate(
        session_id=str(session.id),
        status=str(session.status),
        recorded_policy=recorded,
        policy=whatif,
        gates=gates,
        flips=sum(g.flipped for g in gates),
    )


def regate_sessions(
    events_of: Callable[[str], list[Any]],
    session_ids: Iterable[str],
    *,
    max_regression: float | None = None,
    min_improvement: float | None = None,
    only_with_gates: bool = True,
) -> RegateReport:
    """`regate_events` over several sessions (`events_of(id)`: a session's checked events). A damaged
    session is listed in `skipped_sessions`, never hides the others; with `only_with_gates`, sessions
    without a gate are left out."""
    check_policy(max_regression, min_improvement)
    sessions: list[SessionRegate] = []
    skipped: list[str] = []
    for sid in session_ids:
        try:
            events = events_of(sid)
        except DamagedSession as exc:
            skipped.append(f"{sid}: {exc}")
            continue
        result = regate_events(events, max_regression=max_regression, min_improvement=min_improvement)
        if result.gates or not only_with_gates:
            sessions.append(result)
    gates = [g for s in sessions for g in s.gates]
    return RegateReport(
        max_regression=max_regression,
        min_improvement=min_improvement,
        sessions=sessions,
        gates=len(gates),
        redecided=sum(g.redecidable for g in gates),
        flips=sum(g.flipped for g in gates),
        skipped_sessions=skipped,
        limits=list(LIMITS),
    )
