"""Snapshots: a session loaded through a snapshot is the session replayed from its events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from distill_es.demo.run import open_demo_engine, run_demo
from distill_es.domain.next_step import next_step
from distill_es.domain.session import Session, SessionSnapshot
from distill_es.domain.vocabulary import Trigger
from distill_es.store.app import SNAPSHOT_INTERVAL, EventStore
from distill_es.store.verify import verify_session


def test_snapshot_state_round_trips_through_the_store_transcoder(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    session_id = run_demo(home).id
    engine = open_demo_engine(home)
    live = engine.store.load(session_id)
    stored = engine.store.app.mapper.to_stored_event(SessionSnapshot.take(live))
    rebuilt = engine.store.app.mapper.to_domain_event(stored).mutate(None)
    assert rebuilt.snapshot_state() == live.snapshot_state()
    assert rebuilt.view() == live.view()
    assert (rebuilt.id, rebuilt.version) == (live.id, live.version)
    assert next_step(rebuilt) == next_step(live)


def long_session(store: EventStore, events: int) -> Session:
    session = Session.start(
        trigger=Trigger(kind="on_demand"), autonomy_mode="tiered", settings={}, workspace=str(store.url)
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    session.record_teacher_call(
        call_key="diagnose/1",
        purpose="diagnose",
        model="m",
        request_digest="d",
        response={"content": []},
        usage={},
        cost_usd=0.0,
    )
    for i in range(events):
        session.record_tool_result(
            call_key="diagnose/1",
            tool_use_id=f"t{i}",
            tool="list_traces",
            content=f"result {i}",
            is_error=False,
        )
        if i % 97 == 0:
            store.save(session)
    store.save(session)
    return session


def test_saves_snapshot_long_sessions_and_loads_agree_with_replay(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    session = long_session(store, 3 * SNAPSHOT_INTERVAL + 17)
    # A save that crosses a multiple of the interval snapshots the session it holds, at the version
    # it saved (saves come every 97 events here): one snapshot per hundred crossed.
    snapshots = [s.originator_version for s in store.app.snapshots.get(session.id)]
    assert [v // SNAPSHOT_INTERVAL for v in snapshots] == [1, 2, 3]
    loaded, replayed = store.load(session.id), store.replay(session.id)
    assert loaded.version == replayed.version == session.version
    assert loaded.snapshot_state() == replayed.snapshot_state() == session.snapshot_state()
    assert store.load(session.id, version=250).snapshot_state() == _replay_to(store, session.id, 250)
    assert verify_session(store, None, session.id).ok


def _replay_to(store: EventStore, session_id: object, version: int) -> dict:
    session = None
    for event in store.domain_events(str(session_id))[:version]:
        session = event.mutate(session)
    return session.snapshot_state()


def test_verify_reports_a_snapshot_that_disagrees_with_the_events(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    session = long_session(store, SNAPSHOT_INTERVAL + 3)
    [taken] = [s.originator_version for s in store.app.snapshots.get(session.id)]
    forged = store.load(session.id, version=taken)
    forged.teacher_cost_usd = 99.0  # a forged snapshot claims a different history
    state = store.app.mapper.to_stored_event(SessionSnapshot.take(forged)).state
    with sqlite3.connect(tmp_path / "events.sqlite") as db:  # overwrite the stored row, as an attacker would
        db.execute("UPDATE stored_snapshots SET state = ? WHERE originator_version = ?", (state, taken))
    report = verify_session(store, None, session.id)
    assert not report.ok
    assert [d.kind for d in report.damage] == ["snapshot"]
