"""A session writes at most one store transaction per step (issue 15 item 2), on SQLite and
PostgreSQL, and never performs an outside effect while an earlier one's result is unsaved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_es.app.activities import NEEDS_SAVED_HEAD, READS_ONLY
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.store_writes import counting_writes
from tests.engine.conftest import World


def test_a_scripted_session_writes_at_most_one_transaction_per_step(scripted_world: World, store_url: str):
    engine = scripted_world.engine(store_url=store_url)
    try:
        with counting_writes(engine.store, engine.runner) as count:
            view = engine.run_session(OnDemandTrigger({"source": "test"}))
        assert view.status.value == "awaiting_review"
        assert len(count.steps) >= 20  # diagnosis, plan, three edits, gates: a real session
        # `start` is one of them; the steps that only read share the next step's transaction.
        assert count.transactions <= len(count.steps), (count.transactions, count.steps)
        assert count.events == view.version  # every event written once, no snapshot yet (< 100)
        assert engine.store.replay(view.id).version == view.version
    finally:
        engine.close()


def test_no_outside_effect_starts_before_the_last_ones_result_is_saved(scripted_world: World, tmp_path: Path):
    """Every step not in READS_ONLY starts with the results of all earlier such steps in the store,
    and a git-committing step starts with nothing unsaved (its commit anchors the saved log head)."""
    engine = scripted_world.engine(store_url=f"sqlite:///{tmp_path / 'events.sqlite'}")
    runner, store = engine.runner, engine.store
    perform = runner.perform
    must_be_stored = 0
    seen: list[str] = []

    def checked(session: Any, step: Any) -> None:
        nonlocal must_be_stored
        stored = len(store.stored_events(session.id))
        assert stored >= must_be_stored, f"{step.kind} started with a side effect's result unsaved"
        if type(step) in NEEDS_SAVED_HEAD:
            assert not session.pending_events and stored == session.version, step.kind
        perform(session, step)
        seen.append(step.kind)
        if type(step) not in READS_ONLY:
            must_be_stored = session.version

    runner.perform = checked  # type: ignore[method-assign]
    try:
        view = engine.run_session(OnDemandTrigger({"source": "test"}))
        assert len(store.stored_events(view.id)) == view.version  # nothing left unsaved at rest
        assert {"CallTeacher", "RunTool", "ApplyEdit", "RevertEdit", "ScoreTree"} <= set(seen)
        assert set(seen) & {t.__name__ for t in READS_ONLY}
    finally:
        engine.close()
