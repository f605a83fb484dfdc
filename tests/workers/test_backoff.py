"""Workers back off a session interrupted by an outside failure, by what its log records (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from distill_es.api import Engine
from distill_es.app.worker import Backoff, work
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.projections import SessionIndex
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer

FAST_NETWORK = {"network": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.02}}


def opener(home: Path, store_url: str) -> Engine:
    return Engine.open(home, store_url=store_url, create_tables=False, settings=FAST_NETWORK)


def test_workers_back_off_an_interrupted_session_and_all_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_teacher = ScriptedAnthropicServer(world.teacher_reply)
    dead_teacher.close()  # connection refused from here on
    monkeypatch.setenv("ANTHROPIC_BASE_URL", dead_teacher.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    with ScriptedStudentServer(world.toy_answer) as student_server:
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        engine = Engine.open(home)
        sid = engine.start(OnDemandTrigger())
        url = engine.store.url
        polls = {"poll_seconds": 0.01, "idle_polls_before_exit": 4, "open_runner": opener}

        # Before: the worker ran the session again on every poll, forever.
        first = work(url, tmp_path / "w1", **polls)
        assert first.interrupted == [sid] and first.finished == []
        assert "interrupted once" in first.backed_off[sid] and "teacher endpoint" in first.backed_off[sid]

        # Another worker, with nothing in memory, reads the same log and agrees.
        second = work(url, tmp_path / "w2", **polls)
        assert second.interrupted == [] and sid in second.backed_off

        # Once the backoff has passed it tries again; a second interruption in a row doubles the wait.
        later = work(url, tmp_path / "w3", clock=lambda: datetime.now(UTC) + timedelta(seconds=31), **polls)
        assert later.interrupted == [sid] and "2 times in a row" in later.backed_off[sid]
        [row] = SessionIndex(tmp_path / "w3" / "worker-views.sqlite", engine.store).rows()
        until = Backoff().until(row)
        assert until is not None and until - datetime.fromisoformat(row["interrupted_at"]) == timedelta(
            seconds=60
        )
        interruptions = [e for e in engine.store.domain_events(sid) if isinstance(e, ev.StepInterrupted)]
        assert [e.role for e in interruptions] == ["teacher", "teacher"]
        assert engine.get(sid).status == "diagnosing"  # never failed, never completed: resumable

        # The endpoint is back: progress clears the backoff and the session runs to rest.
        with ScriptedAnthropicServer(world.teacher_reply, port=dead_teacher.port):
            done = work(url, tmp_path / "w4", clock=lambda: datetime.now(UTC) + timedelta(hours=2), **polls)
        assert done.finished == [sid]
        assert engine.get(sid).status == "awaiting_review" and engine.get(sid).interruption is None
        engine.close()


def test_a_session_that_is_not_interrupted_now_has_no_backoff() -> None:
    row = {
        "version": 9,
        "interrupted_version": 7,
        "interruptions": 3,
        "interrupted_at": "2026-01-01T00:00:00+00:00",
    }
    assert Backoff().until(row) is None  # progress since the interruptions
    assert Backoff().until({"version": 3}) is None
    capped = {**row, "interrupted_version": 9, "interruptions": 30}
    assert Backoff(base_seconds=30, max_seconds=3600).until(capped) == datetime(2026, 1, 1, 1, tzinfo=UTC)
