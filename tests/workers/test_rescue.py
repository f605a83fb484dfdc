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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distill_es.app.worker import RESCUE_NOTE, migrate
from distill_es.compose import worker_opener
from distill_es.demo import world
from distill_es.domain.errors import StoreUnavailable
from distill_es.store.app import EventStore
from distill_es.store.locks import Claims
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.pg import fresh_database
from tests.workers.checks import WorkerThread, queue, rested_once, wait_for


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database("distill_es_rescue")


def recorded(url: str, session_id: str) -> int:
    """How many events the session has in the store."""
    store = EventStore(url, create_tables=False)
    try:
        return len(store.domain_events(session_id))
    finally:
        store.close()


def kill_a_worker_in(session_id: str, url: str, state_dir: Path) -> None:
    """Start a worker process, let it claim `session_id` (the only one free) and record a few of its
    steps, then SIGKILL it: a session under way that nobody runs."""
    victim = subprocess.Popen(
        [sys.executable, "-m", "distill_es.worker", "--store", url, "--state-dir", str(state_dir),
         "--poll", "0.1", "--json"],
        env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert victim.stderr is not None
    for raw in victim.stderr:  # its log: the claim
        line = json.loads(raw) if raw.startswith("{") else {}
        if line.get("event") == "claimed":
            assert line["session_id"] == session_id
            break
    wait_for(lambda: recorded(url, session_id) > 2, "the session under way")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("outage", [False, True], ids=["", "store-outage-first"])
def test_a_busy_worker_takes_over_a_dead_workers_session_before_its_own_ends(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outage: bool
) -> None:
    """With `outage`, the rescue thread's first three claims fail as a store that is away fails
    (StoreUnavailable): it says so and looks again at its next poll instead of dying."""
    migrate(pg_url)
    if outage:
        failures = iter(range(3))
        real_claim = Claims.claim

        def claim(self: Claims, *args: Any) -> Any:
            if threading.current_thread().name == "distill_es-rescue" and next(failures, None) is not None:
                raise StoreUnavailable("the store is away (injected)")
            return real_claim(self, *args)

        monkeypatch.setattr(Claims, "claim", claim)
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

        # The survivor, in this process: it claims A's session, which hangs on A's student.
        session_a = queue(pg_url, home_a)
        survivor = WorkerThread(pg_url, tmp_path / "survivor", idle_polls_before_exit=5)
        notes = survivor.notes
        survivor.start()
        wait_for(lambda: any(n.event == "claimed" and n.session_id == session_a for n in notes), "claim of A")

        # The victim, a worker process: it takes B's session (A's is locked) and dies in the middle.
        session_b = queue(pg_url, home_b)
        kill_a_worker_in(session_b, pg_url, tmp_path / "victim")
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

    report = survivor.report
    assert report is not None
    assert sorted(report.finished) == sorted([session_a, session_b])
    assert report.rescued == [session_b]
    claims_of_b = [n for n in notes if n.event == "claimed" and n.session_id == session_b]
    assert len(claims_of_b) == 1 and claims_of_b[0].status != "initiated"
    for session_id in (session_a, session_b):
        rested_once(pg_url, session_id)


@pytest.mark.slow
@pytest.mark.postgres
def test_ctrl_c_leaves_a_rescue_under_way_to_the_next_worker_at_once(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the worker while its rescue thread runs a session held by its student: the worker
    stops now (the rescued session is left under way, as after a crash), not when the student answers."""
    migrate(pg_url)
    release = threading.Event()

    def held_answer(request: dict[str, Any]) -> str:
        assert release.wait(120), "never released"
        return world.toy_answer(request)

    survivor: WorkerThread | None = None

    def opener(home: Path, url: str) -> Any:
        if home.name != "a":
            return worker_opener(home, url)

        class CtrlC:  # the worker's own session: interrupted once B is being rescued
            def run(self, session_id: str) -> Any:
                assert survivor is not None
                notes = survivor.notes
                wait_for(lambda: any(n.detail == RESCUE_NOTE for n in notes), "the rescue")
                raise KeyboardInterrupt

            def close(self) -> None:
                pass

        return CtrlC()

    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(held_answer) as held_student,
    ):
        home_a = world.create_demo_workspace(tmp_path / "a", student_url=held_student.base_url)
        home_b = world.create_demo_workspace(tmp_path / "b", student_url=held_student.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", teacher.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        session_a = queue(pg_url, home_a)
        survivor = WorkerThread(pg_url, tmp_path / "survivor", open_runner=opener)
        survivor.start()
        wait_for(lambda: survivor.saw("claimed", session_a), "claim of A")
        session_b = queue(pg_url, home_b)
        kill_a_worker_in(session_b, pg_url, tmp_path / "victim")
        survivor.join(timeout=30)  # B's student answers only after this
        assert not survivor.is_alive(), "Ctrl-C waited for the rescued session"
        assert isinstance(survivor.raised, KeyboardInterrupt)
        assert not survivor.saw("finished", session_b)
        release.set()  # the abandoned rescue's student answers; its thread ends with the test
        for thread in threading.enumerate():
            if thread.name == "distill_es-rescue":
                thread.join(timeout=120)
