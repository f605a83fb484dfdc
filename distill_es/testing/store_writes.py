"""Counting a session's store write transactions and steps, for tests and `scripts/bench_writes.py`.

A write transaction is one call of the store's recorders' `insert_events` (events, and snapshots):
eventsourcing makes each call one transaction on both backends (SQLite: BEGIN … COMMIT; PostgreSQL:
one transaction, or one call of its insert function); or one save of events with their snapshot
(`EventStore._save_with_snapshot`, one transaction of its own). Every write of a session goes
through one of them. A step is one call of `Runner.perform`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from distill_es.app.session_runner import Runner
from distill_es.store.app import EventStore


@dataclass
class WriteCount:
    transactions: int = 0  # insert_events calls (an empty one is still a transaction)
    events: int = 0  # rows they wrote (events and snapshots)
    steps: list[str] = field(default_factory=list)  # the kinds of the steps performed, in order

    @property
    def per_step(self) -> float:
        return self.transactions / len(self.steps) if self.steps else float("inf")


@contextmanager
def counting_writes(store: EventStore, runner: Runner | None = None) -> Iterator[WriteCount]:
    """Count `store`'s write transactions (and `runner`'s steps) while the block runs."""
    count = WriteCount()
    recorders = [store.app.recorder]
    if store.app.snapshots is not None:
        recorders.append(store.app.snapshots.recorder)
    undo: list[Callable[[], None]] = []
    for recorder in recorders:
        original = recorder.insert_events

        def insert_events(stored_events: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            result = _original(stored_events, *args, **kwargs)
            count.transactions += 1
            count.events += len(stored_events)
            return result

        recorder.insert_events = insert_events  # type: ignore[method-assign]
        undo.append(lambda recorder=recorder: vars(recorder).pop("insert_events", None))
    with_snapshot = store._save_with_snapshot

    def save_with_snapshot(session: Any) -> int:
        events = len(session.pending_events) + 1  # and the snapshot
        result = with_snapshot(session)
        count.transactions += 1
        count.events += events
        return result

    store._save_with_snapshot = save_with_snapshot  # type: ignore[method-assign]
    undo.append(lambda: vars(store).pop("_save_with_snapshot", None))
    if runner is not None:
        perform = runner.perform

        def counted(session: Any, step: Any) -> None:
            count.steps.append(step.kind)
            perform(session, step)

        runner.perform = counted  # type: ignore[method-assign]
        undo.append(lambda: vars(runner).pop("perform", None))
    try:
        yield count
    finally:
        for restore in reversed(undo):
            restore()
