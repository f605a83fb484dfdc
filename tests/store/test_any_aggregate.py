"""The event store serves every chained aggregate, not only sessions: save with optimistic
concurrency, scan by the topic of the first event, digest-chain verify from each class's genesis."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest

from distill_es.domain.errors import ConcurrentSessionWrite
from distill_es.domain.loop.aggregate import Loop
from distill_es.domain.loop.events import LoopStarted
from distill_es.domain.loop.views import LoopParams
from distill_es.domain.session.aggregate import Session
from distill_es.domain.trigger_log.aggregate import TriggerLog
from distill_es.domain.trigger_log.events import TriggerLogOpened
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.store.app import EventStore
from distill_es.store.verify import verify_chain


def store_at(tmp_path: Path, **options: int) -> EventStore:
    return EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}", **options)  # type: ignore[arg-type]


def new_loop() -> Loop:
    return Loop.begin(loop_id=uuid4(), workspace="/ws", trigger=OnDemandTrigger(), params=LoopParams())


def test_a_loop_and_a_trigger_log_save_past_the_snapshot_interval(tmp_path: Path) -> None:
    """Only sessions have a snapshot format: the library's generic snapshot of a loop could not be
    encoded, so a save crossing the interval failed after its events were stored."""
    store = store_at(tmp_path, snapshot_every=2)
    loop = new_loop()
    store.save(loop)
    for iteration in (1, 2):
        loop.record_session_started(session_id=f"s{iteration}", iteration=iteration, parent_session_id=None)
        store.save(loop)
        loop.record_session_finished(session_id=f"s{iteration}", status="completed", error=None,
                                     before_score=0.5, after_score=0.5, cost_usd=0.0)  # fmt: skip
        store.save(loop)
    trigger_log = TriggerLog.open("/ws")
    for n in range(3):
        trigger_log.flag(trace_id=f"t{n}", note="", flagged_by="test")
    store.save(trigger_log)
    found = store.find(loop.id)
    assert isinstance(found, Loop) and found.version == loop.version == 5
    assert found.view() == loop.view()
    assert store.app.snapshots is not None and list(store.app.snapshots.get(loop.id)) == []
    assert [f.trace_id for f in store.find(trigger_log.id).flag_views()] == ["t0", "t1", "t2"]
    store.close()


def test_a_conflicting_save_names_the_aggregate_and_stores_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    loop = new_loop()
    store.save(loop)
    first, second = store.find(loop.id), store.find(loop.id)
    first.record_session_started(session_id="a", iteration=1, parent_session_id=None)
    second.record_session_started(session_id="b", iteration=1, parent_session_id=None)
    store.save(first)
    with pytest.raises(ConcurrentSessionWrite, match=f"^loop {loop.id} was written .*from version 2"):
        store.save(second)
    assert store.find(loop.id).runs[0].started.session_id == "a"
    store.close()


def test_aggregates_are_scanned_by_the_topic_of_their_first_event(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    loops = [new_loop(), new_loop()]
    session = Session.start(trigger=OnDemandTrigger(), autonomy_mode="manual", settings={}, workspace="/ws",
                            parent_session_id=None)  # fmt: skip
    for aggregate in (loops[0], session, TriggerLog.open("/ws"), loops[1]):
        store.save(aggregate)
    assert list(store.aggregate_ids(LoopStarted.TOPIC, batch=1)) == [loop.id for loop in loops]
    assert list(store.aggregate_ids(TriggerLogOpened.TOPIC)) == [TriggerLog.id_for("/ws")]
    assert list(store.iter_session_ids()) == [session.id]
    store.close()


def test_verify_chain_checks_any_aggregate(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    loop = new_loop()
    loop.record_session_started(session_id="a", iteration=1, parent_session_id=None)
    store.save(loop)
    assert verify_chain(store, loop.id) == (2, [], loop.last_digest)
    store.close()
