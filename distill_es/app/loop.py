"""The multi-session loop (paper Algorithm 1): sessions back to back until the score stops improving.

The loop is an event-sourced aggregate of its own (`Loop`), sharing the session store: what it has
started, what each session ended with, and why it stopped are events, so `run_loop(loop_id=X)` after
a crash continues exactly where the log says — the session it had started is run to rest, never
started twice. Each step records at most one event, like the engine's own loop.

Fixes the reference's `SpecSearchLoop` (spec §8.2, §11 item 18):
- a session left awaiting review stops the loop (pending edits must not pile up);
- every session gets its own trigger value naming the loop and the iteration, and is chained to the
  previous one by `parent_session_id`;
- a session without an after-score is "no improvement", never a score of 0 (and the record says so);
- the budget is the sum of the sessions' recorded cost ledgers, checked before each new session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import singledispatchmethod
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic
from pydantic import Field, ValidationError

from distill_es.domain import chain, rulebook
from distill_es.domain.errors import (
    DistillError,
    IllegalTransition,
    SessionNotFound,
    WorkspaceConflict,
)
from distill_es.domain.payloads import describe_validation
from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import AutonomyMode, BenchmarkSnapshot, SessionStatus, Trigger, Value
from distill_es.store.locks import exclusive
from distill_es.store.verify import Damage, verify_chain

if TYPE_CHECKING:  # the engine will import this module to expose `engine.loop(...)`
    from distill_es.ports import SessionRunner as Engine


class LoopNotFound(SessionNotFound):
    """No loop with that id in this store (a SessionNotFound, so the CLI exits 3)."""


class StopReason(StrEnum):
    STAGNATION = "stagnation"  # k sessions in a row without improving the best gated score by > eps
    BUDGET = "budget"  # the sessions' recorded costs reached max_total_cost_usd
    FAILED = "failed"  # a session failed
    AWAITING_REVIEW = "awaiting_review"  # a session waits for a reviewer: nothing new until it is decided
    ROLLED_BACK = "rolled_back"  # a reviewer rolled the session back while the loop was running it


# --- the rulebook: running → stopped, plus the facts a running loop records ---------------------------
MOVES: list[dict[str, Any]] = [
    {"trigger": "stop", "source": "running", "dest": "stopped", "conditions": ["nothing_in_flight"]},
]
FACTS: dict[str, list[str]] = {
    "record_session_started": ["running"],
    "record_session_finished": ["running"],
}
FACT_GUARDS: dict[str, list[str]] = {
    "record_session_started": ["nothing_in_flight"],
    "record_session_finished": ["session_in_flight"],
}
MACHINE = rulebook.build_machine(
    "Loop", ["running", "stopped"], rulebook.transition_table(MOVES, FACTS, FACT_GUARDS)
)


class _Decision(rulebook.Decision):
    """Throw-away model the machine runs on: guards only read the loop."""

    def __init__(self, state: str, in_flight: str | None, data: dict[str, Any]) -> None:
        super().__init__(state)
        self.in_flight, self.data = in_flight, data

    def nothing_in_flight(self, _: Any) -> bool:
        return self._check(
            self.in_flight is None, f"session {self.in_flight} was started and has not finished"
        )

    def session_in_flight(self, _: Any) -> bool:
        session_id = self.data.get("session_id")
        ok = self.in_flight is not None and self.in_flight == session_id
        return self._check(ok, f"session {session_id} is not the loop's session in flight")


def decide(state: str, in_flight: str | None, command: str, data: dict[str, Any], loop_id: str) -> None:
    try:
        rulebook.decide(MACHINE, _Decision(state, in_flight, data), command)
    except IllegalTransition as exc:
        raise _named(exc, loop_id) from None


def _named(exc: IllegalTransition, loop_id: str) -> IllegalTransition:
    exc.args = (str(exc.args[0]).replace("the session is", f"loop {loop_id} is", 1),)
    return exc


# --- the decision rules, pure ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    improved: bool
    best: float | None
    streak: int
    note: str


def assess(
    *, after: float | None, before: float | None, best: float | None, streak: int, eps: float
) -> Verdict:
    """Did this session improve the best gated score by more than eps?

    Until a session has improved anything, the best is the baseline the loop started from (the
    first session's before-score): a session that leaves the score where it was is not progress.
    A session without an after-score (no edit reached the gate) is no improvement — not a 0.
    """
    reference = best if best is not None else before
    if after is None:
        note = "no after-score (no edit reached the gate): counted as no improvement, not as 0"
        return Verdict(False, reference, streak + 1, note)
    if reference is None:
        return Verdict(True, after, 0, f"first gated score {after:.4f}")
    if after > reference + eps:
        return Verdict(True, after, 0, f"improved the best score {reference:.4f} → {after:.4f}")
    note = f"after-score {after:.4f} does not beat the best {reference:.4f} by more than {eps:g}"
    return Verdict(False, reference, streak + 1, note)


# --- events --------------------------------------------------------------------------------------------
class LoopEvent(chain.ChainedEvent):
    """Base of every non-initial loop event (explicit topic, JSON payload, chained digest)."""


class LoopStarted(Aggregate.Created):
    TOPIC: ClassVar[str] = "distill_es.LoopStarted.v1"
    digest: str
    workspace: str
    trigger: dict[str, Any]  # the base trigger; each session gets a copy naming loop and iteration
    params: dict[str, Any]  # LoopParams

    def apply(self, aggregate: Any) -> None:
        aggregate.evolve(self)


register_topic(LoopStarted.TOPIC, LoopStarted)


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


# --- views ---------------------------------------------------------------------------------------------
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


# --- the aggregate -------------------------------------------------------------------------------------
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
        metadata = {**self.trigger.metadata, "loop_id": str(self.id), "loop_iteration": iteration}
        return Trigger(kind=self.trigger.kind, metadata=metadata)

    def pending_stop(self) -> tuple[StopReason, str] | None:
        """The stop the last finished session calls for, if any (failure first, then stagnation)."""
        if not self.runs or self.runs[-1].finished is None:
            return None
        last = self.runs[-1].finished
        if last.status == SessionStatus.FAILED:
            return StopReason.FAILED, f"session {last.session_id} failed: {last.error or 'no error recorded'}"
        if last.status == SessionStatus.AWAITING_REVIEW:
            return StopReason.AWAITING_REVIEW, (
                f"session {last.session_id} awaits review; decide its pending edits "
                "(`distill-es review`), then start a new loop"
            )
        if last.status == SessionStatus.ROLLED_BACK:
            return StopReason.ROLLED_BACK, f"session {last.session_id} was rolled back"
        k = self.params.stagnation_k
        if last.streak >= k:
            best = "none" if last.best_score is None else f"{last.best_score:.4f}"
            return StopReason.STAGNATION, (
                f"{k} session(s) in a row without improving the best gated score ({best}) "
                f"by more than {self.params.stagnation_eps:g}"
            )
        return None

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


# --- running it ----------------------------------------------------------------------------------------
Progress = Callable[[str, LoopView], None]


def run_loop(
    engine: Engine,
    trigger: Trigger | None = None,
    *,
    stagnation_k: int = 5,
    stagnation_eps: float = 0.001,
    max_total_cost_usd: float = 50.0,
    loop_id: str | UUID | None = None,
    autonomy: AutonomyMode | str | None = None,
    on_progress: Progress | None = None,
) -> LoopResult:
    """Run sessions back to back until a stop reason holds; return the loop's view.

    With `loop_id` of an existing loop, continue it (its recorded trigger and parameters win); with a
    new `loop_id`, start a loop under that id. A stopped loop is returned as it is.
    """
    try:
        params = LoopParams(
            stagnation_k=stagnation_k,
            stagnation_eps=stagnation_eps,
            max_total_cost_usd=max_total_cost_usd,
            autonomy=AutonomyMode(autonomy) if autonomy is not None else None,
        )
    except ValidationError as exc:
        raise ValueError(f"invalid loop parameters: {describe_validation(exc)}") from None
    lid = _parse_loop_id(loop_id) if loop_id is not None else uuid4()
    say = on_progress or (lambda _message, _view: None)
    with exclusive(engine.store.url, engine.state_dir, f"loop:{lid}", f"loop {lid}"):
        loop = _load(engine, lid)
        if loop is None:
            loop = Loop.begin(
                loop_id=lid, workspace=str(engine.home), trigger=trigger or OnDemandTrigger(), params=params
            )
            engine.store.save(loop)  # type: ignore[arg-type]  # any aggregate: the store is generic
            say(f"loop {lid} started", loop.view())
        elif loop.status == "running":
            say(f"loop {lid} resumed after {len(loop.runs)} session(s)", loop.view())
        while loop.status == "running":
            _advance(engine, loop, say)
        return loop.view()


def _advance(engine: Engine, loop: Loop, say: Progress) -> None:
    """Perform the one next thing the loop's log calls for, and record it."""
    in_flight = loop.in_flight
    if in_flight is not None:  # started (maybe by a process that died): drive it to rest
        view = engine.run(in_flight)
        loop.record_session_finished(
            session_id=in_flight,
            status=view.status.value,
            error=view.error,
            before_score=_score(view.benchmark_before),
            after_score=_score(view.benchmark_after),
            cost_usd=session_cost(engine, in_flight),
        )
        _save(engine, loop)
        record = loop.view().sessions[-1]
        say(f"session {record.iteration} {in_flight} {record.status}: {record.note}", loop.view())
        return
    pending = loop.pending_stop()
    if pending is not None:
        _stop(engine, loop, *pending, say)
        return
    total = total_cost(engine, loop)
    budget = loop.params.max_total_cost_usd
    if total >= budget:
        detail = f"spent ${total:.4f} of ${budget:.2f} over {len(loop.runs)} session(s) (their cost ledgers)"
        _stop(engine, loop, StopReason.BUDGET, detail, say)
        return
    iteration = len(loop.runs) + 1
    adopted = _find_started(engine, str(loop.id), iteration)
    if adopted is None:
        waiting = [r for r in _rows(engine) if r["status"] == SessionStatus.AWAITING_REVIEW]
        if waiting:
            detail = (
                f"session {waiting[0]['session_id']} awaits review; decide its pending edits "
                "(`distill-es review`) before more sessions pile up"
            )
            _stop(engine, loop, StopReason.AWAITING_REVIEW, detail, say)
            return
        active = [r for r in _rows(engine) if r["status"] in ACTIVE]
        if active:  # two sessions editing one workspace at once would trip over each other
            raise WorkspaceConflict(
                f"session {active[0]['session_id']} is {active[0]['status']} on {engine.home}; finish it "
                f"(`distill-es resume`), then continue this loop with `distill-es loop --resume {loop.id}`"
            )
    parent = loop.last_session_id
    sid = adopted or engine.start(
        loop.trigger_for(iteration), autonomy=loop.params.autonomy, parent_session_id=parent
    )
    loop.record_session_started(session_id=sid, iteration=iteration, parent_session_id=parent,
                                adopted=adopted is not None)  # fmt: skip
    _save(engine, loop)
    how = "adopted after a crash" if adopted else "started"
    say(f"session {iteration} {sid} {how}", loop.view())


def _stop(engine: Engine, loop: Loop, reason: StopReason, detail: str, say: Progress) -> None:
    loop.stop(reason=reason, detail=detail, total_cost_usd=total_cost(engine, loop))
    _save(engine, loop)
    say(f"loop stopped ({reason.value}): {detail}", loop.view())


def _save(engine: Engine, loop: Loop) -> None:
    engine.store.save(loop)  # type: ignore[arg-type]


def _score(snapshot: BenchmarkSnapshot | None) -> float | None:
    return snapshot.overall_score if snapshot is not None else None


def session_cost(engine: Engine, session_id: str) -> float:
    """What a session spent, from its recorded cost ledger (never from a field that may lag)."""
    return round(sum(float(entry["cost_usd"]) for entry in engine.cost_ledger(session_id)), 10)


def total_cost(engine: Engine, loop: Loop) -> float:
    return round(sum(session_cost(engine, run.started.session_id) for run in loop.runs), 10)


def _rows(engine: Engine) -> list[dict[str, Any]]:
    return engine.index.rows(workspace=str(engine.home))


def _find_started(engine: Engine, loop_id: str, iteration: int) -> str | None:
    """A session started for this loop iteration whose start the loop did not get to record (a crash
    between the two writes): the trigger metadata is the idempotency key."""
    for row in _rows(engine):
        meta = row.get("trigger_metadata") or {}
        if meta.get("loop_id") == loop_id and meta.get("loop_iteration") == iteration:
            return str(row["session_id"])
    return None


# --- queries -------------------------------------------------------------------------------------------
def _parse_loop_id(loop_id: str | UUID) -> UUID:
    if isinstance(loop_id, UUID):
        return loop_id
    try:
        return UUID(str(loop_id).strip())
    except ValueError:
        raise LoopNotFound(f"{loop_id!r} is not a loop id") from None


def _load(engine: Engine, loop_id: UUID) -> Loop | None:
    found = engine.store.find(loop_id)
    if found is None:
        return None
    if not isinstance(found, Loop):
        raise LoopNotFound(f"{loop_id} is a {type(found).__name__}, not a loop")
    return found


def get_loop(engine: Engine, loop_id: str | UUID) -> LoopView:
    loop = _load(engine, _parse_loop_id(loop_id))
    if loop is None:
        raise LoopNotFound(f"no loop {loop_id} in store {engine.store.url}")
    return loop.view()


def loop_ids(engine: Engine, batch: int = 1000) -> list[UUID]:
    """Every loop id in the store, oldest first (read from the log, loop starts only)."""
    recorder = engine.store.app.recorder
    ids: list[UUID] = []
    position = 0
    while True:
        page = recorder.select_notifications(
            position, batch, topics=[LoopStarted.TOPIC], inclusive_of_start=False
        )
        if not page:
            return ids
        ids.extend(UUID(str(n.originator_id)) for n in page)
        position = page[-1].id


def loops(engine: Engine) -> list[LoopView]:
    """This workspace's loops, newest first."""
    views = [get_loop(engine, lid) for lid in loop_ids(engine)]
    return sorted(
        (v for v in views if v.workspace == str(engine.home)), key=lambda v: v.started_at, reverse=True
    )


@dataclass
class LoopAudit:
    loop_id: str
    events: int
    damage: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage


def verify_loop(engine: Engine, loop_id: str | UUID) -> LoopAudit:
    """Recompute the loop's digest chain from the stored rows (the same check sessions get)."""
    lid = _parse_loop_id(loop_id)
    count, damage, _ = verify_chain(engine.store, lid)
    if count == 0:
        raise LoopNotFound(f"no loop {loop_id} in store {engine.store.url}")
    return LoopAudit(str(lid), count, damage)
