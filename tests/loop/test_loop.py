"""The loop's stop reasons, chaining, budget and views, driven by scripted scores over real HTTP."""

from __future__ import annotations

import pytest

from distill_es.app.loop import get_loop, loops, run_loop, session_cost, verify_loop
from distill_es.domain.errors import GuardRejected, IllegalTransition, WorkspaceConflict
from distill_es.domain.loop.aggregate import Loop
from distill_es.domain.loop.errors import LoopNotFound
from distill_es.domain.loop.events import LoopSessionFinished
from distill_es.domain.loop.rules import StopReason, assess
from distill_es.domain.loop.views import LoopParams
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import SessionStatus, TriggerKind
from tests.loop.conftest import LoopWorld
from tests.loop.scripted import FAIL, Beat


def _beats(*scores: float | None) -> list[Beat]:
    return [Beat(s) for s in scores]


def test_stagnation_after_k_sessions_without_improvement_and_each_session_is_chained(
    loop_world: LoopWorld,
) -> None:
    engine = loop_world.engine(_beats(0.5, 0.6, 0.6005, 0.59))
    trigger = OnDemandTrigger({"source": "test"})
    result = run_loop(engine, trigger, stagnation_k=2, stagnation_eps=0.001, autonomy="auto")

    assert result.status == "stopped" and result.stop_reason == StopReason.STAGNATION
    assert [s.after_score for s in result.sessions] == [0.5, 0.6, 0.6005, 0.59]
    # The first session is measured against the baseline it started from (its before-score);
    # 0.6005 is within eps of the best.
    assert [s.improved for s in result.sessions] == [False, True, False, False]
    assert [s.streak for s in result.sessions] == [1, 0, 1, 2]
    assert result.best_score == 0.6
    assert "2 session(s) in a row" in result.detail

    views = {v.id: v for v in engine.sessions()}
    assert set(views) == set(result.session_ids)
    parents = [views[sid].parent_session_id for sid in result.session_ids]
    assert parents == [None, *result.session_ids[:-1]]
    for iteration, sid in enumerate(result.session_ids, start=1):
        view = views[sid]
        assert view.status == SessionStatus.COMPLETED
        assert view.trigger == TriggerKind.ON_DEMAND
        assert view.trigger_metadata == {"source": "test", "loop_id": result.id, "loop_iteration": iteration}
    assert trigger.metadata == {"source": "test"}  # the caller's trigger value is never changed
    engine.close()


def test_a_session_without_an_after_score_is_no_improvement_not_a_zero(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(_beats(0.5, 0.7, None, None))
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=2, autonomy="auto")

    assert result.stop_reason == StopReason.STAGNATION
    assert [s.after_score for s in result.sessions] == [0.5, 0.7, None, None]
    assert [s.status for s in result.sessions] == ["completed"] * 4
    third, fourth = result.sessions[2], result.sessions[3]
    assert "no after-score" in third.note and "not as 0" in third.note
    assert third.improved is False and third.best_score == 0.7 and fourth.best_score == 0.7
    assert result.best_score == 0.7
    assert engine.get(third.session_id).benchmark_after is None
    engine.close()


def test_budget_is_the_sum_of_the_recorded_cost_ledgers_checked_before_each_session(
    loop_world: LoopWorld,
) -> None:
    engine = loop_world.engine(_beats(0.5))
    first = run_loop(engine, OnDemandTrigger(), stagnation_k=50, max_total_cost_usd=1e-9, autonomy="auto")
    assert first.stop_reason == StopReason.BUDGET and len(first.sessions) == 1
    one_session = session_cost(engine, first.session_ids[0])
    assert one_session > 0 and first.total_cost_usd == pytest.approx(one_session)

    budget = 1.2 * one_session
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=50, max_total_cost_usd=budget, autonomy="auto")
    ledgers = [sum(c["cost_usd"] for c in engine.cost_ledger(sid)) for sid in result.session_ids]
    assert result.stop_reason == StopReason.BUDGET
    assert len(result.sessions) >= 2  # later sessions read the teacher's prompt cache: cheaper
    assert result.total_cost_usd == pytest.approx(sum(ledgers))
    assert [s.cost_usd for s in result.sessions] == pytest.approx(ledgers)
    # Every session was started while the total was under budget; the last one took it over.
    assert sum(ledgers) >= budget > sum(ledgers[:-1])
    assert "their cost ledgers" in result.detail
    engine.close()


def test_a_failed_session_stops_the_loop(loop_world: LoopWorld) -> None:
    engine = loop_world.engine([Beat(0.5), FAIL])
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=10, autonomy="auto")

    assert result.stop_reason == StopReason.FAILED
    assert [s.status for s in result.sessions] == ["completed", "failed"]
    failed = engine.get(result.session_ids[1])
    assert failed.status == SessionStatus.FAILED and failed.error
    assert failed.error in result.detail
    assert result.sessions[1].cost_usd == pytest.approx(session_cost(engine, failed.id)) and failed.id
    assert result.sessions[1].cost_usd > 0  # a failed session's spend still counts
    assert result.sessions[1].note == "the session failed: see its error"
    engine.close()


def test_a_session_awaiting_review_stops_the_loop_and_no_new_loop_piles_edits_on_it(
    loop_world: LoopWorld,
) -> None:
    engine = loop_world.engine(_beats(0.5))
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=10, autonomy="manual")
    assert result.stop_reason == StopReason.AWAITING_REVIEW
    assert [s.status for s in result.sessions] == ["awaiting_review"]
    waiting = result.session_ids[0]
    assert waiting in result.detail

    again = run_loop(engine, OnDemandTrigger(), stagnation_k=10, autonomy="manual")
    assert again.stop_reason == StopReason.AWAITING_REVIEW and again.sessions == []
    assert waiting in again.detail
    assert {item["session_id"] for item in engine.pending_reviews()} == {waiting}
    assert len(engine.sessions()) == 1
    engine.close()


def test_an_active_session_blocks_the_loop_until_it_rests_then_the_loop_resumes(
    loop_world: LoopWorld,
) -> None:
    engine = loop_world.engine(_beats(0.5))
    other = engine.start(OnDemandTrigger({"by": "someone else"}), autonomy="auto")
    loop_id = "00000000-0000-4000-8000-000000000123"
    with pytest.raises(WorkspaceConflict, match=f"session {other} is initiated"):
        run_loop(engine, OnDemandTrigger(), stagnation_k=1, autonomy="auto", loop_id=loop_id)
    assert get_loop(engine, loop_id).status == "running" and get_loop(engine, loop_id).sessions == []

    engine.run(other)
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=1, loop_id=loop_id)
    assert result.stop_reason == StopReason.STAGNATION and len(result.sessions) == 1
    assert result.params.autonomy == "auto"  # the recorded parameters win on resume
    engine.close()


def test_loop_views_digest_chain_and_a_stopped_loop_returned_as_it_is(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(_beats(0.5))
    first = run_loop(engine, OnDemandTrigger(), stagnation_k=1, autonomy="auto")
    assert run_loop(engine, OnDemandTrigger(), loop_id=first.id) == first  # stopped: nothing more runs
    second = run_loop(engine, OnDemandTrigger(), stagnation_k=1, autonomy="auto")
    assert [v.id for v in loops(engine)] == [second.id, first.id]
    assert get_loop(engine, first.id) == first
    audit = verify_loop(engine, first.id)
    assert audit.ok and audit.events == 4  # started, session started, session finished, stopped
    # Loops share the store with sessions without disturbing them.
    assert all(report.ok for report in engine.verify())
    assert len(engine.sessions()) == 2
    with pytest.raises(LoopNotFound):
        get_loop(engine, "00000000-0000-4000-8000-000000000999")
    with pytest.raises(LoopNotFound, match="not a loop"):
        get_loop(engine, first.session_ids[0])
    engine.close()


def test_tampering_with_a_loop_event_is_detected(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(_beats(0.5))
    result = run_loop(engine, OnDemandTrigger(), stagnation_k=1, autonomy="auto")
    stored = engine.store.stored_events(result.id)
    finished = next(s for s in stored if s.topic == LoopSessionFinished.TOPIC)
    state = engine.store.decode_state(finished)
    state["after_score"] = 0.99
    mapper = engine.store.app.mapper
    data = mapper.compressor.compress(mapper.transcoder.encode(state))
    recorder = engine.store.app.recorder
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            f"UPDATE {recorder.events_table_name} SET state = ? "
            "WHERE originator_id = ? AND originator_version = ?",
            (data, finished.originator_id.hex, finished.originator_version),
        )
    audit = verify_loop(engine, result.id)
    assert not audit.ok and audit.damage[0].position == finished.originator_version
    engine.close()


# --- the rules, without any session ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "before", "best", "streak", "improved", "new_best", "new_streak"),
    [
        (0.6, 0.5, None, 0, True, 0.6, 0),  # beats the baseline
        (0.5, 0.5, None, 0, False, 0.5, 1),  # the baseline is not progress
        (0.7, None, None, 2, True, 0.7, 0),  # nothing to compare with yet
        (0.6005, 0.4, 0.6, 1, False, 0.6, 2),  # within eps
        (None, None, 0.6, 1, False, 0.6, 2),  # no after-score: not 0, not a reset
        (None, None, None, 0, False, None, 1),
    ],
)
def test_assess(
    after: float | None,
    before: float | None,
    best: float | None,
    streak: int,
    improved: bool,
    new_best: float | None,
    new_streak: int,
) -> None:
    verdict = assess(after=after, before=before, best=best, streak=streak, eps=0.001)
    assert (verdict.improved, verdict.best, verdict.streak) == (improved, new_best, new_streak)


def test_the_loop_machine_refuses_moves_out_of_turn() -> None:
    from uuid import uuid4

    loop = Loop.begin(loop_id=uuid4(), workspace="/w", trigger=OnDemandTrigger(), params=LoopParams())
    with pytest.raises(GuardRejected, match="not the loop's session in flight"):
        loop.record_session_finished(
            session_id="s1", status="completed", error=None, before_score=None, after_score=None, cost_usd=0
        )
    loop.record_session_started(session_id="s1", iteration=1, parent_session_id=None)
    with pytest.raises(GuardRejected, match="has not finished"):
        loop.record_session_started(session_id="s2", iteration=2, parent_session_id="s1")
    with pytest.raises(GuardRejected, match="has not finished"):
        loop.stop(reason=StopReason.BUDGET, detail="", total_cost_usd=0)
    loop.record_session_finished(
        session_id="s1", status="completed", error=None, before_score=0.5, after_score=0.6, cost_usd=0.1
    )
    loop.stop(reason=StopReason.BUDGET, detail="spent", total_cost_usd=0.1)
    with pytest.raises(IllegalTransition, match=f"loop {loop.id} is 'stopped'"):
        loop.stop(reason=StopReason.BUDGET, detail="", total_cost_usd=0)
    assert loop.view().stop_reason == StopReason.BUDGET and loop.view().best_score == 0.6


@pytest.mark.parametrize("options", [{"stagnation_k": 0}, {"max_total_cost_usd": 0}, {"stagnation_eps": -1}])
def test_invalid_parameters_are_refused_before_anything_is_recorded(
    loop_world: LoopWorld, options: dict[str, float]
) -> None:
    engine = loop_world.engine()
    with pytest.raises(ValueError, match="invalid loop parameters"):
        run_loop(engine, OnDemandTrigger(), **options)  # type: ignore[arg-type]
    assert loops(engine) == []
    engine.close()
