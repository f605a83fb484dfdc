"""One session: its view (at any version), the timeline with expandable payloads, and a card per
edit with its diff, outcome and reason."""

from __future__ import annotations

from typing import Any

from distill_es.web.reads import AuditReader

# Why an edit ended where it did, when the outcome carries no error text of its own.
REASONS = {
    "applied": "kept: the gate accepted it",
    "pending_review": "waiting for a reviewer",
    "rolled_back": "reverted by a rollback of the session",
    "skipped": "skipped",
}


def edit_cards(reader: AuditReader, view: dict[str, Any], events: list[Any]) -> list[dict[str, Any]]:
    """A card per edit of the plan (and per outcome the plan does not list), in plan order."""
    previews = {e.edit_id: e.preview for e in events if type(e).__name__ == "EditQueuedForReview"}
    outcomes = {o["edit_id"]: o for o in view.get("edit_outcomes", [])}
    edits = list((view.get("plan") or {}).get("edits", []))
    edits += [{"id": eid} for eid in outcomes if eid not in {e.get("id") for e in edits}]
    cards = []
    for edit in edits:
        outcome = outcomes.get(edit["id"])
        status = outcome["status"] if outcome else "planned"
        diff = previews.get(edit["id"], "") if status == "pending_review" else ""
        if not diff and outcome and outcome.get("commit_sha"):
            diff = reader.commit_diff(outcome["commit_sha"])
        diff = diff or previews.get(edit["id"], "")
        reason = (outcome or {}).get("error") or REASONS.get(status, "")
        cards.append({"edit": edit, "outcome": outcome, "status": status, "diff": diff, "reason": reason})
    return cards


def context(reader: AuditReader, session_id: str, at: int | None) -> dict[str, Any]:
    latest = reader.session(session_id)
    view = reader.session(session_id, version=at) if at is not None else latest
    events = reader.events(session_id)
    history = reader.history(session_id)
    return {
        "view": view,
        "latest_version": latest["version"],
        "at": at,
        "history": [entry for entry in history if at is None or entry["version"] <= at],
        "versions": [entry["version"] for entry in history],
        "cards": edit_cards(reader, view, events),
        "ledger": reader.cost_ledger(session_id),
    }
