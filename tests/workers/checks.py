"""What the worker tests wait for and check: a condition in time, a session at rest exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_es.api import Engine
from distill_es.app.worker import WorkerNote, WorkerReport, work
from distill_es.compose import worker_opener
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore

RESTING_EVENTS = (ev.SessionAwaitingReview, ev.SessionCompleted, ev.SessionFailed, ev.SessionRolledBack)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rested_once(url: str, session_id: str) -> list[Any]:
    """The session's events, checked: versions contiguous from 1, exactly one resting event."""
    store = EventStore(url, create_tables=False)
    try:
        events = store.domain_events(session_id)
    finally:
        store.close()
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert sum(isinstance(e, RESTING_EVENTS) for e in events) == 1, f"{session_id} did not rest once"
    return events


class WorkerThread(threading.Thread):
    """`work()` with the default runner opener in a thread of this process: its notes as they come,
    its report (or what it raised) when it is done."""

    def __init__(self, url: str, state_dir: Path, **options: Any) -> None:
        super().__init__(name=f"worker-{state_dir.name}")
        self.url, self.state_dir = url, state_dir
        self.options = {"open_runner": worker_opener, "poll_seconds": 0.1, **options}
        self.notes: list[WorkerNote] = []
        self.report: WorkerReport | None = None
        self.raised: BaseException | None = None

    def run(self) -> None:
        try:
            self.report = work(self.url, self.state_dir, notes=self.notes.append, **self.options)
        except BaseException as exc:  # a KeyboardInterrupt out of work(), for the test to see
            self.raised = exc

    def saw(self, event: str, session_id: str) -> bool:
        return any(n.event == event and n.session_id == session_id for n in self.notes)


def queue(url: str, home: Path) -> str:
    """Record a session on `home` for the workers, as `distill-es enqueue` does."""
    engine = Engine.open(home, store_url=url, create_tables=False)
    try:
        return engine.start(OnDemandTrigger({"home": home.name}))
    finally:
        engine.close()
