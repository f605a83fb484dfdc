"""Snapshots: a session loaded through a snapshot is the session replayed from its events."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from distill_es.demo.run import open_demo_engine, run_demo
from distill_es.domain.errors import DistillError
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.next_step import next_step
from distill_es.domain.vocabulary import Trigger
from distill_es.store.app import SNAPSHOT_INTERVAL, EventStore
from distill_es.store.snapshots import SessionSnapshot, session_from_state, snapshot_state
from distill_es.store.verify import verify_session


def test_snapshot_state_round_trips_through_the_store_transcoder(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    session_id = run_demo(home).id
    engine = open_demo_engine(home)
    live = engine.store.load(session_id)
    stored = engine.store.app.mapper.to_stored_event(SessionSnapshot.take(live))
    rebuilt = engine.store.app.mapper.to_domain_event(stored).mutate(None)
    assert snapshot_state(rebuilt) == snapshot_state(live)
    assert rebuilt.view() == live.view()
    assert (rebuilt.id, rebuilt.version) == (live.id, live.version)
    assert next_step(rebuilt) == next_step(live)


def record_call(session: Session, call_key: str, **fields: object) -> None:
    """A teacher call with nothing in it but what the test sets."""
    purpose = call_key.split("/", 1)[0]
    defaults = {
        "model": "m",
        "request_digest": "d",
        "response": {"content": []},
        "usage": {},
        "cost_usd": 0.0,
    }
    session.record_teacher_call(call_key=call_key, purpose=purpose, **{**defaults, **fields})


def long_session(store: EventStore, events: int) -> Session:
    session = Session.start(
        trigger=Trigger(kind="on_demand"), autonomy_mode="tiered", settings={}, workspace=str(store.url)
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    record_call(session, "diagnose/1")
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
    assert snapshot_state(loaded) == snapshot_state(replayed) == snapshot_state(session)
    assert snapshot_state(store.load(session.id, version=250)) == _replay_to(store, session.id, 250)
    assert verify_session(store, None, session.id).ok


def _replay_to(store: EventStore, session_id: object, version: int) -> dict:
    session = None
    for event in store.domain_events(str(session_id))[:version]:
        session = event.mutate(session)
    return snapshot_state(session)


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


def many_turns(store: EventStore, turns: int, *, self_runs: bool = True) -> Session:
    """A diagnosing session of `turns` answered turns, with a self-run teacher call between some."""
    session = Session.start(
        trigger=Trigger(kind="on_demand"),
        autonomy_mode="tiered",
        settings={"session": {"max_turns": 10 * turns, "max_cost_usd": 100.0}},
        workspace=str(store.url),
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    for n in range(1, turns + 1):
        use = {"type": "tool_use", "id": f"u{n}", "name": "list_traces", "input": {"n": n}}
        record_call(
            session,
            f"diagnose/{n}",
            request_digest=f"{n:064x}",
            response={"content": [use]},
            usage={"input_tokens": n},
            cost_usd=0.001,
        )
        if self_runs and n % 3 == 0:
            record_call(session, f"self_run/u{n}", response={"content": [{"type": "text", "text": str(n)}]})
        session.record_tool_result(
            call_key=f"diagnose/{n}", tool_use_id=f"u{n}", tool="list_traces", content=str(n), is_error=False
        )
        store.save(session)
    return session


def test_a_loaded_snapshot_keeps_finished_turns_undecoded_until_they_are_read(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    session = many_turns(store, 60)
    loaded = store.load(session.id)
    assert loaded._archive is not None and len(loaded._turns) < 60  # loaded from a snapshot
    # What loading, replaying the events after the snapshot and choosing the next step read ...
    step = next_step(loaded)
    assert step == next_step(session) and step.call_key == "diagnose/61"
    assert loaded.turn_count == 60 and loaded.has_teacher_call("diagnose/1")
    assert loaded.has_teacher_call("self_run/u3") and not loaded.has_teacher_call("diagnose/61")
    assert loaded.view() == session.view()
    assert loaded._archive is not None  # ... never needed the archive
    # Reading the turns decodes it once, in the recorded order, calls interleaved as they were.
    assert list(loaded.teacher_calls) == list(session.teacher_calls)
    assert loaded._archive is None
    assert loaded.diagnose_turns == session.diagnose_turns
    assert snapshot_state(loaded) == snapshot_state(store.replay(session.id))


def test_a_session_with_an_archive_records_on_and_snapshots_again(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    session = many_turns(store, 45)
    loaded = store.load(session.id)
    assert loaded._archive is not None
    with pytest.raises(DistillError, match="already recorded"):
        record_call(loaded, "diagnose/5")  # archived: still known
    for _ in range(3):  # more turns on the loaded copy, then another snapshot taken from it
        record_call(loaded, f"diagnose/{loaded.turn_count + 1}")
    store.save(loaded)
    store.take_snapshot(loaded.id)
    again = store.load(loaded.id)
    assert again.version == loaded.version and again.turn_count == 48
    assert snapshot_state(again) == snapshot_state(store.replay(loaded.id)) == snapshot_state(loaded)
    assert verify_session(store, None, loaded.id).ok


def test_a_tampered_archive_is_refused_when_read(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    session = many_turns(store, 30, self_runs=False)
    snapshot = SessionSnapshot.take(session)
    archive = json.loads(snapshot.state["archive"])
    archive["calls"].pop()  # the archive no longer holds a turn the snapshot names
    archive["turns"].pop()
    rebuilt = session_from_state(json.loads(snapshot.state["session"]), json.dumps(archive))
    with pytest.raises(DistillError, match="turn archive"):
        rebuilt.diagnose_turns  # noqa: B018


def test_a_store_without_periodic_snapshots_folds_every_event(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite", snapshot_every=None)
    session = long_session(store, 2 * SNAPSHOT_INTERVAL + 5)
    assert list(store.app.snapshots.get(session.id)) == []
    assert snapshot_state(store.load(session.id)) == snapshot_state(session)
    store.take_snapshot(session.id)  # by hand, still
    assert [s.originator_version for s in store.app.snapshots.get(session.id)] == [session.version]
