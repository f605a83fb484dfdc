"""A save that crosses the snapshot interval writes its events and the snapshot in one transaction,
on SQLite and PostgreSQL; a conflicting one stores neither."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import ConcurrentSessionWrite
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import Trigger
from distill_es.store.app import SNAPSHOT_INTERVAL, EventStore
from distill_es.store.snapshots import snapshot_state
from distill_es.testing.store_writes import counting_writes
from tests.store.test_snapshots import record_call
from tests.store.test_store import scratch_dir


def diagnosing(store: EventStore) -> Session:
    session = Session.start(
        trigger=Trigger(kind="on_demand"), autonomy_mode="tiered", settings={}, workspace=str(store.url)
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    record_call(session, "diagnose/1")
    return session


def tool_results(session: Session, count: int, prefix: str = "t") -> None:
    for i in range(count):
        session.record_tool_result(
            call_key="diagnose/1",
            tool_use_id=f"{prefix}{i}",
            tool="list_traces",
            content=f"r{i}",
            is_error=False,
        )


def test_a_save_across_the_interval_is_one_transaction_with_its_snapshot(store_url: str) -> None:
    store = EventStore(store_url)
    try:
        session = diagnosing(store)
        tool_results(session, SNAPSHOT_INTERVAL - 10)
        store.save(session)
        assert list(store.app.snapshots.get(session.id)) == []
        tool_results(session, 20, prefix="u")  # versions ~94..113: crosses 100
        with counting_writes(store) as count:
            last = store.save(session)
        assert count.transactions == 1
        assert count.events == 20 + 1  # the events and the snapshot, together
        assert last == store.max_position()
        [snapshot] = list(store.app.snapshots.get(session.id))
        assert snapshot.originator_version == session.version
        loaded, replayed = store.load(session.id), store.replay(session.id)
        assert snapshot_state(loaded) == snapshot_state(replayed) == snapshot_state(session)
    finally:
        store.close()


def test_a_conflicting_save_across_the_interval_stores_neither(store_url: str) -> None:
    store = EventStore(store_url)
    try:
        session = diagnosing(store)
        tool_results(session, SNAPSHOT_INTERVAL - 10)
        store.save(session)
        stale = store.load(session.id)
        tool_results(session, 3, prefix="w")  # someone else appends first (no snapshot due)
        store.save(session)
        tool_results(stale, 20, prefix="s")
        with pytest.raises(ConcurrentSessionWrite):
            store.save(stale)
        assert list(store.app.snapshots.get(session.id)) == []
        assert store.load(session.id).version == session.version
    finally:
        store.close()


@settings(max_examples=10, deadline=None)
@given(batches=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=8))
def test_every_save_is_one_transaction_and_snapshots_land_where_saves_cross(batches: list[int]) -> None:
    """Saves of any sizes: each is one write transaction, a snapshot is stored exactly at the version
    of each save that crossed a multiple of the interval, and loading through them equals replay."""
    with scratch_dir() as folder:
        store = EventStore(f"sqlite:///{folder / 'events.sqlite'}", snapshot_every=50)
        try:
            session = diagnosing(store)
            store.save(session)
            expected = []
            for n, size in enumerate(batches):
                first = session.version + 1
                tool_results(session, size, prefix=f"b{n}-")
                with counting_writes(store) as count:
                    store.save(session)
                assert count.transactions == 1
                if session.version // 50 > (first - 1) // 50:
                    expected.append(session.version)
            assert [s.originator_version for s in store.app.snapshots.get(session.id)] == expected
            assert snapshot_state(store.load(session.id)) == snapshot_state(store.replay(session.id))
        finally:
            store.close()
