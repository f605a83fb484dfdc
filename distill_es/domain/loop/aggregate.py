"""`Loop`: what a loop has started, what each session ended with, and why it stopped, as events.

Commands decide with the rulebook (`lifecycle`) and the pure rules (`rules`), then record one event;
`evolve` only assigns. `distill_es.app.loop` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain import chain
from distill_es.domain.errors import DistillError
from distill_es.domain.loop.events import LoopSessionFinished, LoopSessionStarted, LoopStarted, LoopStopped
from distill_es.domain.loop.lifecycle import decide
from distill_es.domain.loop.rules import Stop, StopReason, assess, stop_after
from distill_es.domain.loop.views import LoopParams, LoopSessionRecord, LoopView
from distill_es.domain.vocabulary import SessionStatus, Trigger


@dataclass
class _Session:
    started: LoopSessionStarted
    finished: LoopSessionFinished | None = None


class Loop(chain.ChainedRecording, Aggregate):
    @classmethod
    def begin(cls, *, loop_id: UUID, workspace: str, trigger: Trigger, params: LoopParams) -> Loop:
        return cls._create_chained(
            LoopStarted,
            loop_id,
            workspace=workspace,
            trigger=trigger.model_dump(mode="json"),
            params=params.model_dump(mode="json"),
        )

    def __init__(self) -> None:
        pass  # state is assigned by evolve(LoopStarted), like every other event

    # --- facts the rules read ----------------------------------------------------------------------
    @property
    def in_flight(self) -> str | None:
        last = self.runs[-1] if self.runs else None
        return last.started.session_id if last is not None and last.finished is None else None

    @property
    def last_session_id(self) -> str | None:
        return self.runs[-1].started.session_id if self.runs else None

    def trigger_for(self, iteration: int) -> Trigger:
        """A fresh trigger value per session: the base trigger's facts plus loop id and iteration."""
        metadata = {**self.trigger.metadata, **self.session_key(iteration)}
        return Trigger(kind=self.trigger.kind, metadata=metadata)

    def session_key(self, iteration: int) -> dict[str, Any]:
        """The trigger metadata naming this loop's session for `iteration`: the key that finds a
        session a crash started before the loop recorded it."""
        return {"loop_id": str(self.id), "loop_iteration": iteration}

    def pending_stop(self) -> Stop | None:
        """The stop the last finished session calls for, if any (failure first, then stagnation)."""
        if not self.runs or self.runs[-1].finished is None:
            return None
        return stop_after(
            self.runs[-1].finished,
            stagnation_k=self.params.stagnation_k,
            stagnation_eps=self.params.stagnation_eps,
        )

    # --- commands: decide, then record ------------------------------------------------------------
    def record_session_started(
        self, *, session_id: str, iteration: int, parent_session_id: str | None, adopted: bool = False
    ) -> None:
        self._decide("record_session_started", session_id=session_id)
        if iteration != len(self.runs) + 1:
            expected = len(self.runs) + 1
            raise DistillError(f"loop {self.id}: iteration {iteration} is out of turn (next is {expected})")
        self._record(
            LoopSessionStarted,
            session_id=session_id,
            iteration=iteration,
            parent_session_id=parent_session_id,
            adopted=adopted,
        )

    def record_session_finished(
        self,
        *,
        session_id: str,
        status: str,
        error: str | None,
        before_score: float | None,
        after_score: float | None,
        cost_usd: float,
    ) -> None:
        self._decide("record_session_finished", session_id=session_id)
        verdict = assess(
            after=after_score,
            before=before_score,
            best=self.best_score,
            streak=self.streak,
            eps=self.params.stagnation_eps,
        )
        self._record(
            LoopSessionFinished,
            session_id=session_id,
            iteration=len(self.runs),
            status=status,
            error=error,
            before_score=before_score,
            after_score=after_score,
            cost_usd=cost_usd,
            improved=verdict.improved,
            best_score=verdict.best,
            streak=verdict.streak,
            # A failed session's missing score is not news: its failure is (and it stops the loop).
            note="the session failed: see its error" if status == SessionStatus.FAILED else verdict.note,
        )

    def stop(self, *, reason: StopReason, detail: str, total_cost_usd: float) -> None:
        self._decide("stop")
        self._record(
            LoopStopped,
            reason=reason.value,
            detail=detail,
            best_score=self.best_score,
            total_cost_usd=total_cost_usd,
            sessions=len(self.runs),
        )

    def _decide(self, command: str, **data: Any) -> None:
        decide(self.status, self.in_flight, command, data, str(self.id))

    # --- evolve: assignments only -----------------------------------------------------------------
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__} on a loop")

    @evolve.register
    def _(self, e: LoopStarted) -> None:
        self.status = "running"
        self.workspace = e.workspace
        self.trigger = Trigger.model_validate(e.trigger)
        self.params = LoopParams.model_validate(e.params)
        self.started_at = e.timestamp
        self.stopped: LoopStopped | None = None
        self.runs: list[_Session] = []
        self.best_score: float | None = None
        self.streak = 0
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: LoopSessionStarted) -> None:
        self.runs.append(_Session(started=e))
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: LoopSessionFinished) -> None:
        self.runs[-1].finished = e
        self.best_score, self.streak = e.best_score, e.streak
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: LoopStopped) -> None:
        self.status = "stopped"
        self.stopped = e
        self.last_digest = e.digest

    # --- view --------------------------------------------------------------------------------------
    def view(self) -> LoopView:
        records = []
        for run in self.runs:
            s, f = run.started, run.finished
            record: dict[str, Any] = {
                "session_id": s.session_id,
                "iteration": s.iteration,
                "parent_session_id": s.parent_session_id,
                "adopted": s.adopted,
            }
            if f is not None:
                record.update(
                    status=f.status, error=f.error, before_score=f.before_score, after_score=f.after_score,
                    cost_usd=f.cost_usd, improved=f.improved, best_score=f.best_score, streak=f.streak,
                    note=f.note,
                )  # fmt: skip
            records.append(LoopSessionRecord(**record))
        stopped = self.stopped
        return LoopView(
            id=str(self.id),
            workspace=self.workspace,
            status=self.status,
            trigger=self.trigger,
            params=self.params,
            started_at=self.started_at,
            stopped_at=stopped.timestamp if stopped else None,
            sessions=records,
            stop_reason=StopReason(stopped.reason) if stopped else None,
            detail=stopped.detail if stopped else "",
            best_score=self.best_score,
            streak=self.streak,
            total_cost_usd=(
                stopped.total_cost_usd if stopped else round(sum(r.cost_usd or 0.0 for r in records), 10)
            ),
            version=self.version,
        )


Loop.TOPIC = "distill_es.Loop"  # stable aggregate topic, as Session's
register_topic(Loop.TOPIC, Loop)
