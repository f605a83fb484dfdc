"""A session writes at most one store transaction per step (issue 15 item 2), on SQLite and
PostgreSQL, and never performs an outside effect while an earlier one's result is unsaved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.api import Engine
from distill_es.app.activities import NEEDS_SAVED_HEAD, READS_ONLY
from distill_es.demo import world
from distill_es.demo.world import DemoStudent
from distill_es.domain.errors import EndpointUnavailable
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer
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


def stored_types(engine: Any, sid: str) -> list[str]:
    return [type(e).__name__ for e in engine.store.domain_events(sid)]


def test_a_step_that_fails_leaves_the_log_as_a_save_per_step_would(scripted_world: World, tmp_path: Path):
    """What reads-only steps left waiting is saved when the next step fails without recording
    anything: an interruption is recorded on top of it, and even Ctrl-C keeps it."""
    engine = scripted_world.engine(store_url=f"sqlite:///{tmp_path / 'events.sqlite'}")
    perform = engine.runner.perform

    def interrupted(session: Any, step: Any) -> None:
        if step.kind == "CallTeacher":
            raise KeyboardInterrupt
        perform(session, step)

    engine.runner.perform = interrupted
    try:
        sid = engine.start(OnDemandTrigger({"source": "test"}))
        with pytest.raises(KeyboardInterrupt):
            engine.run(sid)
        assert stored_types(engine, sid) == ["SessionStarted", "ReadinessChecked", "PhaseEntered"]
        del engine.runner.perform
        assert engine.run(sid).status.value == "awaiting_review"
        assert stored_types(engine, sid).count("ReadinessChecked") == 1
    finally:
        engine.close()


def test_an_interruption_is_recorded_after_the_reads_before_it(tmp_path: Path):
    home = world.create_demo_workspace(tmp_path / "ws")
    teacher_server = ScriptedAnthropicServer(world.teacher_reply)
    teacher_server.close()  # nothing answers: the first teacher call is interrupted
    teacher = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
    fast = {"network": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.02}}
    engine = Engine.open(home, teacher=teacher, student=DemoStudent(home), settings=fast)
    try:
        sid = engine.start(OnDemandTrigger({"source": "test"}))
        with pytest.raises(EndpointUnavailable):
            engine.run(sid)
        reads = ["SessionStarted", "ReadinessChecked", "PhaseEntered"]
        assert stored_types(engine, sid) == [*reads, "StepInterrupted"]
        assert engine.get(sid).status == "diagnosing"
    finally:
        engine.close()
