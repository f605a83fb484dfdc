"""The loop's read model: its parameters, one record per session, and the loop as a whole."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from distill_es.domain.loop.rules import StopReason
from distill_es.domain.vocabulary import AutonomyMode, Trigger, Value


class LoopParams(Value):
    stagnation_k: int = Field(default=5, ge=1)
    stagnation_eps: float = Field(default=0.001, ge=0.0)
    max_total_cost_usd: float = Field(default=50.0, gt=0.0)
    autonomy: AutonomyMode | None = None  # None: the workspace's session.autonomy_mode


class LoopSessionRecord(Value):
    session_id: str
    iteration: int
    parent_session_id: str | None = None
    adopted: bool = False
    status: str | None = None  # None while the session is in flight
    error: str | None = None
    before_score: float | None = None
    after_score: float | None = None
    cost_usd: float | None = None
    improved: bool | None = None
    best_score: float | None = None
    streak: int | None = None
    note: str = ""


class LoopView(Value):
    id: str
    workspace: str
    status: str  # running | stopped
    trigger: Trigger
    params: LoopParams
    started_at: datetime
    stopped_at: datetime | None = None
    sessions: list[LoopSessionRecord] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    detail: str = ""
    best_score: float | None = None
    streak: int = 0
    total_cost_usd: float = 0.0  # of finished sessions, from their cost ledgers
    version: int = 0

    @property
    def session_ids(self) -> list[str]:
        return [s.session_id for s in self.sessions]


LoopResult = LoopView
