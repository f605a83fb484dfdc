"""One edit: its `explain` chain (each link with the event versions it is read from) and a per-cluster
before/after chart of its gate."""

from __future__ import annotations

from typing import Any

from distill_es.domain.errors import EditNotFound
from distill_es.web import charts
from distill_es.web.reads import AuditReader
from distill_es.web.views.session import edit_cards

# The chain's links in order, with their headings (EditLineage.LINKS).
LINKS = (
    ("traces", "Traces cited"), ("cluster", "Failure cluster"), ("teacher_call", "Teacher call"),
    ("edit", "The edit"), ("routing", "Tier and route"), ("validation", "Validation"),
    ("commit", "Commit"), ("gate", "Gate"), ("review", "Review"), ("undo", "Revert or rollback"),
)  # fmt: skip


def explain(reader: AuditReader, session_id: str, edit_id: str) -> dict[str, Any] | None:
    """`explain --json` for the edit; None when this build's engine has no `explain`."""
    engine = reader.engine
    if not hasattr(engine, "explain"):
        return None
    lineage = reader.call(lambda: engine.explain(session_id, edit_id))
    return lineage.model_dump(mode="json")


def last_gate(events: list[Any], edit_id: str) -> dict[str, Any] | None:
    """The edit's last recorded GateEvaluated: before/after snapshots, delta, verdict, its version."""
    gates = [e for e in events if type(e).__name__ == "GateEvaluated" and e.edit_id == edit_id]
    if not gates:
        return None
    g = gates[-1]
    return {
        "version": g.originator_version, "before": g.before, "after": g.after, "delta": g.delta,
        "cluster_deltas": g.cluster_deltas, "accepted": g.accepted, "reason": g.reason,
    }  # fmt: skip


def gate_chart(lineage: dict[str, Any] | None, gate: dict[str, Any] | None) -> charts.Chart | None:
    """The per-cluster before/after bars: from `explain`'s gate link (its numbers, as `explain --json`
    prints them), else from the recorded GateEvaluated snapshots."""
    link = (lineage or {}).get("gate") or {}
    if link.get("applies") and link.get("clusters"):
        rows = link["clusters"]
        before = {c["cluster_id"]: c["before"] for c in rows if c["before"] is not None}
        after = {c["cluster_id"]: c["after"] for c in rows if c["after"] is not None}
        return charts.before_after(before, after)
    if gate is None:
        return None
    before, after = gate["before"].get("cluster_scores", {}), gate["after"].get("cluster_scores", {})
    return charts.before_after(before, after)


def context(reader: AuditReader, session_id: str, edit_id: str) -> dict[str, Any]:
    view = reader.session(session_id)
    events = reader.events(session_id)
    card = next((c for c in edit_cards(reader, view, events) if c["edit"]["id"] == edit_id), None)
    if card is None:
        raise EditNotFound(f"session {session_id} has no edit {edit_id!r}")
    gate = last_gate(events, edit_id)
    lineage = explain(reader, session_id, edit_id)
    chart = gate_chart(lineage, gate)
    mentions = [
        entry for entry in reader.history(session_id)
        if f'"edit_id": "{edit_id}"' in entry["payload"]
    ]  # fmt: skip
    return {
        "view": view, "card": card, "gate": gate, "chart": chart, "links": LINKS, "mentions": mentions,
        "lineage": lineage,
    }  # fmt: skip
