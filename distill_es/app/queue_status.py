"""`distill-es queue`: how long the workers' queue is and how fast it drains, read from the index.

A session is *running* while some process holds its session lock (a worker's claim, or `run` /
`resume` in a terminal); *queued* while it is `initiated` and nobody runs it; *waiting to resume*
while it is under way (diagnosing … executing) and nobody runs it — a dead worker's session before
another takes it over, or one backing off after an outside failure. *Finished* counts sessions that
came to rest (completed, awaiting_review, failed, rolled_back) in the last minute and five minutes;
the drain rate is the five-minute count per minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.store.projections import SessionIndex

Running = Callable[[dict[str, Any]], bool]  # an index row -> is some process running it now?
RESTING = ("completed", "awaiting_review", "failed", "rolled_back")


def queue_status(index: SessionIndex, running: Running, now: datetime) -> dict[str, Any]:
    """The queue as one JSON-ready dict (counts, the oldest queued session's age, the drain rate)."""
    every = index.rows()  # one read: a session coming to rest between two reads would count twice
    active = [row for row in every if row["status"] in ACTIVE]
    claimed = [running(row) for row in active]  # asked once per row: a claim may end meanwhile
    runs = [row for row, held in zip(active, claimed, strict=True) if held]
    idle = [row for row, held in zip(active, claimed, strict=True) if not held]
    queued = sorted((r for r in idle if r["status"] == "initiated"), key=lambda r: r["started_at"])
    waiting = [r for r in idle if r["status"] != "initiated"]
    since_5 = now - timedelta(minutes=5)
    ended = [
        datetime.fromisoformat(row["ended_at"])
        for row in every
        if row["status"] in RESTING and row.get("ended_at")
    ]
    last_minute = sum(1 for at in ended if at >= now - timedelta(minutes=1))
    last_5 = sum(1 for at in ended if at >= since_5)
    oldest = queued[0] if queued else None
    return {
        "queued": len(queued),
        "oldest_queued_session": oldest["session_id"] if oldest else None,
        "oldest_queued_at": oldest["started_at"] if oldest else None,
        "oldest_queued_age_seconds": _age(oldest, now),
        "running": len(runs),
        "running_sessions": [_brief(row) for row in runs],
        "waiting_to_resume": len(waiting),
        "finished_last_minute": last_minute,
        "finished_last_5_minutes": last_5,
        "drain_rate_per_minute": round(last_5 / 5, 2),
    }


def _age(row: dict[str, Any] | None, now: datetime) -> float | None:
    if row is None:
        return None
    return round(max(0.0, (now - datetime.fromisoformat(row["started_at"])).total_seconds()), 1)


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": row["session_id"], "workspace": row["workspace"], "status": row["status"]}
