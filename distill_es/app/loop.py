"""Running the multi-session loop (paper Algorithm 1): sessions back to back until the score stops improving.

The loop is an event-sourced aggregate of its own (`distill_es.domain.loop`), sharing the session
store: what it has started, what each session ended with, and why it stopped are events, so
`run_loop(loop_id=X)` after a crash continues exactly where the log says — the session it had started
is run to rest, never started twice. Each step records at most one event, like the engine's own loop.
Every session gets its own trigger value naming the loop and the iteration, and is chained to the
previous one by `parent_session_id`.

Depends on a `SessionRunner` (`distill_es.ports`), not on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from distill_es.app.adoption import adopt_or_start, started_for
from distill_es.domain.errors import WorkspaceConflict
from distill_es.domain.loop.aggregate import Loop
from distill_es.domain.loop.errors import LoopNotFound
from distill_es.domain.loop.events import LoopStarted
from distill_es.domain.loop.rules import StopReason, budget_stop, waiting_for_review
from distill_es.domain.loop.views import LoopParams, LoopResult, LoopView
from distill_es.domain.payloads import describe_validation
from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import AutonomyMode, BenchmarkSnapshot, SessionStatus, Trigger
from distill_es.ports import SessionRunner
from distill_es.store.locks import exclusive
from distill_es.store.verify import Damage, verify_chain

Progress = Callable[[str, LoopView], None]


def run_loop(
    runner: SessionRunner,
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
    with exclusive(runner.store.url, runner.state_dir, f"loop:{lid}", f"loop {lid}"):
        loop = _load(runner, lid)
        if loop is None:
            loop = Loop.begin(
                loop_id=lid, workspace=str(runner.home), trigger=trigger or OnDemandTrigger(), params=params
            )
            _save(runner, loop)
            say(f"loop {lid} started", loop.view())
        elif loop.status == "running":
            say(f"loop {lid} resumed after {len(loop.runs)} session(s)", loop.view())
        while loop.status == "running":
            _advance(runner, loop, say)
        return loop.view()


def _advance(runner: SessionRunner, loop: Loop, say: Progress) -> None:
    """Perform the one next thing the loop's log calls for, and record it."""
    in_flight = loop.in_flight
    if in_flight is not None:  # started (maybe by a process that died): drive it to rest
        view = runner.run(in_flight)
        loop.record_session_finished(
            session_id=in_flight,
            status=view.status.value,
            error=view.error,
            before_score=_score(view.benchmark_before),
            after_score=_score(view.benchmark_after),
            cost_usd=session_cost(runner, in_flight),
        )
        _save(runner, loop)
        record = loop.view().sessions[-1]
        say(f"session {record.iteration} {in_flight} {record.status}: {record.note}", loop.view())
        return
    pending = loop.pending_stop() or budget_stop(
        spent=total_cost(runner, loop), budget=loop.params.max_total_cost_usd, sessions=len(loop.runs)
    )
    if pending is not None:
        _stop(runner, loop, *pending, say)
        return
    iteration = len(loop.runs) + 1
    key = loop.session_key(iteration)
    rows = _rows(runner)
    if started_for(rows, key) is None:
        waiting = [r for r in rows if r["status"] == SessionStatus.AWAITING_REVIEW]
        if waiting:
            _stop(runner, loop, *waiting_for_review(str(waiting[0]["session_id"])), say)
            return
        active = [r for r in rows if r["status"] in ACTIVE]
        if active:  # two sessions editing one workspace at once would trip over each other
            raise WorkspaceConflict(
                f"session {active[0]['session_id']} is {active[0]['status']} on {runner.home}; finish it "
                f"(`distill-es resume`), then continue this loop with `distill-es loop --resume {loop.id}`"
            )
    parent = loop.last_session_id
    launch = adopt_or_start(
        rows,
        key,
        lambda: runner.start(
            loop.trigger_for(iteration), autonomy=loop.params.autonomy, parent_session_id=parent
        ),
    )
    loop.record_session_started(session_id=launch.session_id, iteration=iteration, parent_session_id=parent,
                                adopted=launch.adopted)  # fmt: skip
    _save(runner, loop)
    how = "adopted after a crash" if launch.adopted else "started"
    say(f"session {iteration} {launch.session_id} {how}", loop.view())


def _stop(runner: SessionRunner, loop: Loop, reason: StopReason, detail: str, say: Progress) -> None:
    loop.stop(reason=reason, detail=detail, total_cost_usd=total_cost(runner, loop))
    _save(runner, loop)
    say(f"loop stopped ({reason.value}): {detail}", loop.view())


def _save(runner: SessionRunner, loop: Loop) -> None:
    runner.store.save(loop)


def _score(snapshot: BenchmarkSnapshot | None) -> float | None:
    return snapshot.overall_score if snapshot is not None else None


def session_cost(runner: SessionRunner, session_id: str) -> float:
    """What a session spent, from its recorded cost ledger (never from a field that may lag)."""
    return round(sum(float(entry["cost_usd"]) for entry in runner.cost_ledger(session_id)), 10)


def total_cost(runner: SessionRunner, loop: Loop) -> float:
    return round(sum(session_cost(runner, run.started.session_id) for run in loop.runs), 10)


def _rows(runner: SessionRunner) -> list[dict[str, Any]]:
    return runner.index.rows(workspace=str(runner.home))


# --- queries -------------------------------------------------------------------------------------------
def _parse_loop_id(loop_id: str | UUID) -> UUID:
    if isinstance(loop_id, UUID):
        return loop_id
    try:
        return UUID(str(loop_id).strip())
    except ValueError:
        raise LoopNotFound(f"{loop_id!r} is not a loop id") from None


def _load(runner: SessionRunner, loop_id: UUID) -> Loop | None:
    return runner.store.find_as(loop_id, Loop, LoopNotFound)


def get_loop(runner: SessionRunner, loop_id: str | UUID) -> LoopView:
    loop = _load(runner, _parse_loop_id(loop_id))
    if loop is None:
        raise LoopNotFound(f"no loop {loop_id} in store {runner.store.url}")
    return loop.view()


def loop_ids(runner: SessionRunner, batch: int = 1000) -> list[UUID]:
    """Every loop id in the store, oldest first (read from the log, loop starts only)."""
    return list(runner.store.aggregate_ids(LoopStarted.TOPIC, batch))


def loops(runner: SessionRunner) -> list[LoopView]:
    """This workspace's loops, newest first."""
    views = [get_loop(runner, lid) for lid in loop_ids(runner)]
    return sorted(
        (v for v in views if runner.index.belongs(v.workspace, str(runner.home))),
        key=lambda v: v.started_at,
        reverse=True,
    )


@dataclass
class LoopAudit:
    loop_id: str
    events: int
    damage: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage


def verify_loop(runner: SessionRunner, loop_id: str | UUID) -> LoopAudit:
    """Recompute the loop's digest chain from the stored rows (the same check sessions get)."""
    lid = _parse_loop_id(loop_id)
    count, damage, _ = verify_chain(runner.store, lid)
    if count == 0:
        raise LoopNotFound(f"no loop {loop_id} in store {runner.store.url}")
    return LoopAudit(str(lid), count, damage)
