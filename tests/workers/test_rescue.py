"""A worker busy with a session of its own still takes over a session a dead worker left under way:
its rescue thread does, within a poll, without waiting for its own session to end. Real PostgreSQL,
a real worker process killed with SIGKILL, real HTTP servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.app.worker import WorkerNote, migrate, work
from distill_es.compose import worker_opener
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.pg import fresh_database

RESTING_EVENTS = (ev.SessionAwaitingReview, ev.SessionCompleted, ev.SessionFailed, ev.SessionRolledBack)


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database("distill_es_rescue")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def recorded(url: str, session_id: str) -> int:
    """How many events the session has in the store."""
    store = EventStore(url, create_tables=False)
    try:
        return len(store.domain_events(session_id))
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_busy_worker_takes_over_a_dead_workers_session_before_its_own_ends(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(pg_url)
    release = threading.Event()  # holds workspace A's student: the busy worker's own session waits

    def held_answer(request: dict[str, Any]) -> str:
        assert release.wait(120), "never released"
        return world.toy_answer(request)

    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(held_answer) as held_student,
        ScriptedStudentServer(world.toy_answer, latency=0.05) as student,
    ):
        home_a = world.create_demo_workspace(tmp_path / "a", student_url=held_student.base_url)
        home_b = world.create_demo_workspace(tmp_path / "b", student_url=student.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", teacher.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")

        def queue(home: Path) -> str:
            engine = Engine.open(home, store_url=pg_url, create_tables=False)
            try:
                return engine.start(OnDemandTrigger({"home": home.name}))
            finally:
                engine.close()

        # The survivor, in this process: it claims A's session, which hangs on A's student.
        session_a = queue(home_a)
        notes: list[WorkerNote] = []
        reports: list[Any] = []
        survivor = threading.Thread(
            target=lambda: reports.append(
                work(pg_url, tmp_path / "survivor", open_runner=worker_opener, poll_seconds=0.1,
                     idle_polls_before_exit=5, notes=notes.append)
            )
        )  # fmt: skip
        survivor.start()
        wait_for(lambda: any(n.event == "claimed" and n.session_id == session_a for n in notes), "claim of A")

        # The victim, a worker process: it takes B's session (A's is locked) and dies in the middle.
        session_b = queue(home_b)
        victim = subprocess.Popen(
            [sys.executable, "-m", "distill_es.worker", "--store", pg_url, "--state-dir",
             str(tmp_path / "victim"), "--poll", "0.1", "--json"],
            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert victim.stderr is not None
        for raw in victim.stderr:  # its log: the claim of B
            line = json.loads(raw) if raw.startswith("{") else {}
            if line.get("event") == "claimed":
                assert line["session_id"] == session_b
                break
        wait_for(lambda: recorded(pg_url, session_b) > 2, "B under way")
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        killed_at = time.monotonic()

        wait_for(lambda: any(n.event == "claimed" and n.session_id == session_b for n in notes), "takeover")
        took = time.monotonic() - killed_at
        # A's session is still held by its student: the takeover did not wait for it to end.
        assert not any(n.event == "finished" and n.session_id == session_a for n in notes)
        assert took < 5, f"takeover took {took:.2f} s"
        wait_for(lambda: any(n.event == "finished" and n.session_id == session_b for n in notes), "B at rest")
        release.set()
        survivor.join(timeout=120)
        assert not survivor.is_alive()

    (report,) = reports
    assert sorted(report.finished) == sorted([session_a, session_b])
    assert report.rescued == [session_b]
    claims_of_b = [n for n in notes if n.event == "claimed" and n.session_id == session_b]
    assert len(claims_of_b) == 1 and claims_of_b[0].status != "initiated"
    store = EventStore(pg_url, create_tables=False)
    try:
        for session_id in (session_a, session_b):
            events = store.domain_events(session_id)
            assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
            assert sum(isinstance(e, RESTING_EVENTS) for e in events) == 1
    finally:
        store.close()
