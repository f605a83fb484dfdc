"""`TriggerLog`: one per workspace, the flags, firings and launched sessions as events.

Every decision that started something is auditable, and a crash between "fired" and "session
started" is reconciled on the next tick (the firing id in the session's trigger metadata is the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain import chain
from distill_es.domain.errors import DistillError
from distill_es.domain.trigger_log.events import SessionLaunched, TraceFlagged, TriggerFired, TriggerLogOpened
from distill_es.domain.trigger_log.rules import Decision
from distill_es.domain.trigger_log.views import Flag


@dataclass
class _Flag:
    event: TraceFlagged
    firing_id: str | None = None


@dataclass
class _Firing:
    event: TriggerFired
    session_id: str | None = None


class TriggerLog(chain.ChainedRecording, Aggregate):
    """One per workspace; its id is derived from the workspace path."""

    @staticmethod
    def id_for(workspace: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"distill_es:trigger-log:{workspace}")

    @classmethod
    def open(cls, workspace: str) -> TriggerLog:
        return cls._create_chained(TriggerLogOpened, cls.id_for(workspace), workspace=workspace)

    def __init__(self) -> None:
        pass

    # --- commands ----------------------------------------------------------------------------------
    def flag(self, *, trace_id: str, note: str, flagged_by: str) -> str:
        """Flag a trace; an unconsumed flag on the same trace is returned instead of a second one."""
        for existing in self.flags.values():
            if existing.event.trace_id == trace_id and existing.firing_id is None:
                return existing.event.flag_id
        flag_id = uuid4().hex[:12]
        self._record(TraceFlagged, flag_id=flag_id, trace_id=trace_id, note=note, flagged_by=flagged_by)
        return flag_id

    def fire(self, *, firing_id: str, decision: Decision, clock_at: datetime) -> TriggerFired:
        if firing_id in self.firings:
            raise DistillError(f"firing {firing_id} is already recorded")
        consumed = [f for f in decision.flag_ids if self.flags.get(f) is None or self.flags[f].firing_id]
        if consumed:
            raise DistillError(f"flags {', '.join(consumed)} are no longer pending")
        assert decision.trigger is not None
        self._record(
            TriggerFired,
            firing_id=firing_id,
            kind=decision.kind,
            reason=decision.reason,
            clock_at=clock_at.isoformat(),
            trigger=decision.trigger.model_dump(mode="json"),
            flag_ids=list(decision.flag_ids),
            cron=decision.cron,
            slot=decision.slot.isoformat() if decision.slot else None,
        )
        return self.firings[firing_id].event

    def launched(self, *, firing_id: str, session_id: str, adopted: bool) -> None:
        firing = self.firings.get(firing_id)
        if firing is None or firing.session_id is not None:
            raise DistillError(f"firing {firing_id} is unknown or already has its session")
        self._record(SessionLaunched, firing_id=firing_id, session_id=session_id, adopted=adopted)

    # --- reads -------------------------------------------------------------------------------------
    def pending_flags(self) -> list[TraceFlagged]:
        return [f.event for f in self.flags.values() if f.firing_id is None]

    def unlaunched(self) -> list[TriggerFired]:
        return [f.event for f in self.firings.values() if f.session_id is None]

    def launched_session_ids(self) -> set[str]:
        return {f.session_id for f in self.firings.values() if f.session_id}

    def last_slot(self, cron: str) -> datetime | None:
        slots = [f.event.slot for f in self.firings.values() if f.event.cron == cron and f.event.slot]
        return max(datetime.fromisoformat(s) for s in slots) if slots else None

    def flag_views(self) -> list[Flag]:
        views = []
        for f in self.flags.values():
            firing = self.firings.get(f.firing_id) if f.firing_id else None
            views.append(
                Flag(
                    flag_id=f.event.flag_id,
                    trace_id=f.event.trace_id,
                    note=f.event.note,
                    flagged_by=f.event.flagged_by,
                    flagged_at=f.event.timestamp,
                    status="consumed" if f.firing_id else "pending",
                    firing_id=f.firing_id,
                    session_id=firing.session_id if firing else None,
                )
            )
        return views

    # --- evolve: assignments only -----------------------------------------------------------------
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__} on a trigger log")

    @evolve.register
    def _(self, e: TriggerLogOpened) -> None:
        self.workspace = e.workspace
        self.flags: dict[str, _Flag] = {}
        self.firings: dict[str, _Firing] = {}
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: TraceFlagged) -> None:
        self.flags[e.flag_id] = _Flag(e)
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: TriggerFired) -> None:
        self.firings[e.firing_id] = _Firing(e)
        for flag_id in e.flag_ids:
            self.flags[flag_id].firing_id = e.firing_id
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: SessionLaunched) -> None:
        self.firings[e.firing_id].session_id = e.session_id
        self.last_digest = e.digest


TriggerLog.TOPIC = "distill_es.TriggerLog"
register_topic(TriggerLog.TOPIC, TriggerLog)
