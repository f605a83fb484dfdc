"""The loop's event catalogue: explicit stable topics, JSON-only payloads, chained digests."""

from __future__ import annotations

from typing import Any

from distill_es.domain import chain


class LoopEvent(chain.ChainedEvent):
    """Base of every non-initial loop event (explicit topic, JSON payload, chained digest)."""


class LoopStarted(chain.ChainedCreated):
    TOPIC = "distill_es.LoopStarted.v1"
    workspace: str
    trigger: dict[str, Any]  # the base trigger; each session gets a copy naming loop and iteration
    params: dict[str, Any]  # LoopParams


class LoopSessionStarted(LoopEvent):
    TOPIC = "distill_es.LoopSessionStarted.v1"
    session_id: str
    iteration: int
    parent_session_id: str | None
    adopted: bool  # found already started after a crash, rather than started by this process


class LoopSessionFinished(LoopEvent):
    """A session of the loop came to rest, with the verdict the loop drew from it."""

    TOPIC = "distill_es.LoopSessionFinished.v1"
    session_id: str
    iteration: int
    status: str
    error: str | None
    before_score: float | None
    after_score: float | None
    cost_usd: float  # from the session's cost ledger
    improved: bool
    best_score: float | None
    streak: int
    note: str


class LoopStopped(LoopEvent):
    TOPIC = "distill_es.LoopStopped.v1"
    reason: str
    detail: str
    best_score: float | None
    total_cost_usd: float
    sessions: int
