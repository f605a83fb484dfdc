"""A run whose PostgreSQL locks die with their connection (the server ends it: `idle_session_timeout`,
a pooler, an operator) stops before its next step and records nothing more; the session is run to
rest once, by whoever claims it next. And `approve` keeps its locks from the approval into the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from distill_es.adapters.teacher import request_digest
from distill_es.app import session_runner
from distill_es.app.worker import migrate
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.store.app import EventStore
from distill_es.store.locks import lock_key, session_lock
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
from tests.pg import fresh_database
from tests.workers.checks import WorkerThread, queue, rested_once


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_database("distill_es_lost")


def lock_holder(url: str, session_id: str) -> int | None:
    """The backend pid holding the session's advisory lock, if any."""
    key = lock_key(session_lock(session_id)[0]) & ((1 << 64) - 1)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s "
            "AND objid::bigint = %s",
            (key >> 32, key & 0xFFFFFFFF),
        ).fetchone()
    return row[0] if row else None


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_whose_claim_connection_dies_stops_and_the_session_rests_once(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(pg_url)
    release = threading.Event()
    held = threading.Event()

    def held_answer(request: dict[str, Any]) -> str:
        held.set()
        assert release.wait(120), "never released"
        return world.toy_answer(request)

    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(held_answer) as student,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", teacher.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        session_id = queue(pg_url, home)
        worker = WorkerThread(pg_url, tmp_path / "worker", idle_polls_before_exit=5)
        worker.start()
        assert held.wait(90), "the session never reached its student"
        holder = lock_holder(pg_url, session_id)
        assert holder is not None
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as idle_session_timeout would
            admin.execute("SELECT pg_terminate_backend(%s)", (holder,))
        release.set()
        worker.join(timeout=180)
        assert not worker.is_alive()

    outcomes = [(n.event, n.outcome) for n in worker.notes if n.session_id == session_id]
    assert ("finished", "lock_lost") in outcomes, outcomes
    assert outcomes[-1][0] == "finished" and outcomes[-1][1] in ("awaiting_review", "completed"), outcomes
    report = worker.report
    assert report is not None
    assert report.finished == [session_id] and report.rescued == []  # never its own rescuer's
    events = rested_once(pg_url, session_id)
    recorded = [e.request_digest for e in events if isinstance(e, ev.TeacherCallCompleted)]
    served = [request_digest(request) for request in teacher.requests]
    assert sorted(recorded) == sorted(served), "a teacher call was made twice, or one was lost"


def test_approve_takes_the_sessions_locks_once_for_the_approval_and_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the approval and the run nobody can take the session (a worker's rescue, another
    terminal): the locks are held from the one into the other, not released and taken again."""
    from distill_es.demo.run import open_demo_engine, run_demo

    home = tmp_path / "demo"
    run_demo(home)
    taken: list[tuple[str, ...]] = []
    real = session_runner.exclusive

    @contextmanager
    def counting(url: str, state_dir: Path, name: str, what: str, *more: tuple[str, str]) -> Iterator[None]:
        taken.append((name, *(n for n, _ in more)))
        with real(url, state_dir, name, what, *more):
            yield

    monkeypatch.setattr(session_runner, "exclusive", counting)
    engine = open_demo_engine(home)
    try:
        (pending,) = engine.pending_reviews()
        view = engine.approve(pending["session_id"], pending["edit_id"], reviewer="alice")
    finally:
        engine.close()
    assert view.status.value == "completed"
    session_locks = [names for names in taken if names[0] == session_lock(pending["session_id"])[0]]
    assert len(session_locks) == 1, taken


@pytest.mark.postgres
def test_a_held_lock_survives_a_server_idle_timeout_shorter_than_the_step(
    pg_url: str, tmp_path: Path
) -> None:
    """The lock's connection is pinged while it is held (a terminal `run` holds it through steps of
    minutes): the server's `idle_session_timeout` never ends it, and the run never sees LockLost."""
    from distill_es.store.locks import exclusive, require_held

    EventStore(pg_url, create_tables=True).close()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {psycopg.conninfo.conninfo_to_dict(pg_url)['dbname']} "
                      "SET idle_session_timeout = '1s'")  # fmt: skip
    with exclusive(pg_url, tmp_path, *session_lock("s-idle")):
        time.sleep(2.5)  # one long step: a teacher call, a training run
        require_held("s-idle")
        assert lock_holder(pg_url, "s-idle") is not None
