"""The event store, its projections and the audit, on SQLite and on PostgreSQL.

Every test taking `store_url` runs twice: on a SQLite file and on a PostgreSQL database (skipped with a
message when no server answers; CI sets DISTILL_ES_REQUIRE_POSTGRES=1 and requires it).
"""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_es.config.settings import Settings
from distill_es.domain.errors import ConcurrentSessionWrite, SessionNotFound
from distill_es.domain.session import events as ev
from distill_es.domain.session.aggregate import Session
from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, ScheduledTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import (
    AutonomyMode,
    Edit,
    EditOp,
    EditPillar,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    Trigger,
)
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex, fold_index_row
from distill_es.store.timeline import cost_ledger, timeline
from distill_es.store.urls import is_postgres
from distill_es.store.verify import verify_session, verify_store
from distill_es.testing.machine import fast_tmp
from distill_es.testing.strategies import event_histories
from tests.store import racing

CLUSTER = FailureCluster(id="c1", student_failure_rate=0.5, teacher_success_rate=1.0)


def review_edit(edit_id: str) -> Edit:
    return Edit(
        id=edit_id,
        pillar=EditPillar.AGENT,
        op=EditOp.REPLACE_SYSTEM_PROMPT,
        target="agents.helper",
        payload={"agent": "helper", "new_content": f"prompt {edit_id}"},
        rationale=f"why {edit_id}",
        expected_improvement="c1",
        risk_tier=EditRiskTier.REVIEW,
    )


def start(trigger: Trigger | None = None, workspace: str = "/w/one") -> Session:
    return Session.start(
        trigger=trigger or OnDemandTrigger(),
        autonomy_mode=AutonomyMode.TIERED,
        settings=Settings().model_dump(mode="json"),
        workspace=workspace,
    )


teacher_call = racing.teacher_call


def diagnosing(session: Session) -> Session:
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    return session


def executing(session: Session, edits: list[Edit]) -> Session:
    diagnosing(session)
    teacher_call(session, "diagnose/1", 0.25)
    session.submit_diagnosis(markdown="# d", clusters=[CLUSTER])
    teacher_call(session, "plan", 0.5)
    plan = LearningPlan(session_id=str(session.id), failure_clusters=[CLUSTER], edits=edits)
    session.freeze_plan(plan=plan, rejected=[], tier_changes=[], downgrades=[])
    return session


def awaiting(session: Session, edit_ids: list[str]) -> Session:
    executing(session, [review_edit(e) for e in edit_ids])
    for edit_id in edit_ids:
        session.route_edit(edit_id=edit_id, route="review", preview=f"diff of {edit_id}")
    session.await_review(git_post="c" * 40)
    return session


@contextmanager
def opened(url: str, **options: Any) -> Iterator[EventStore]:
    store = EventStore(url, **options)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    with opened(store_url) as store:
        yield store


# --- saving and loading -------------------------------------------------------------------------


def test_save_load_by_version_and_by_time(store: EventStore) -> None:
    session = executing(start(), [review_edit("e1")])
    first = store.save(session)
    assert first > 0 and not session.pending_events
    assert store.save(session) == 0  # nothing pending: nothing written
    session.route_edit(edit_id="e1", route="review", preview="d")
    assert store.save(session) > first

    loaded = store.load(session.id)
    assert loaded.view() == session.view() and loaded.version == session.version
    assert store.load(str(session.id)).version == session.version  # ids as text work too

    events = store.domain_events(session.id)
    assert [e.originator_version for e in events] == list(range(1, session.version + 1))
    assert isinstance(events[0], ev.SessionStarted)
    for version in (1, 3, session.version):
        past = store.load(session.id, version=version)
        assert past.version == version and past.last_digest == events[version - 1].digest
    assert store.load(session.id, version=3).status == "diagnosing"

    for event in (events[0], events[4], events[-1]):
        assert store.load_at(session.id, event.timestamp).version == event.originator_version
    later = events[-1].timestamp + timedelta(days=1)
    assert store.load_at(session.id, later).version == session.version
    with pytest.raises(SessionNotFound, match="did not exist yet"):
        store.load_at(session.id, events[0].timestamp - timedelta(microseconds=1))


def test_missing_sessions_are_session_not_found(store: EventStore) -> None:
    ghost = uuid.uuid4()
    with pytest.raises(SessionNotFound, match=str(ghost)):
        store.load(ghost)
    with pytest.raises(SessionNotFound):
        store.domain_events(ghost)
    with pytest.raises(SessionNotFound, match="is not a session id"):
        store.load("not-a-session")
    assert store.stored_events(ghost) == []


def test_a_stale_copy_conflicts_in_process(store: EventStore) -> None:
    session = diagnosing(start())
    store.save(session)
    a, b = store.load(session.id), store.load(session.id)
    teacher_call(a, "diagnose/1", 0.1)
    store.save(a)
    teacher_call(b, "diagnose/1", 0.2)
    teacher_call(b, "diagnose/2", 0.2)
    with pytest.raises(ConcurrentSessionWrite, match=f"session {session.id} .*from version 4"):
        store.save(b)
    assert [e.cost_usd for e in store.domain_events(session.id)[3:]] == [0.1]


# --- two writers, two processes -------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_appending_to_one_session_exactly_one_wins_each_time(store: EventStore) -> None:
    session = diagnosing(start())
    teacher_call(session, "diagnose/1", 0.0)
    store.save(session)
    base = session.version

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    writers = [
        spawn.Process(target=racing.append_racing, args=(store.url, str(session.id), name, barrier, results))
        for name in ("left", "right")
    ]
    for writer in writers:
        writer.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * racing.ROUNDS)]
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0

    assert not [o for o in outcomes if o[0] < 0], outcomes
    winners = {}
    for round_ in range(racing.ROUNDS):
        this_round = sorted((name, result) for r, name, result in outcomes if r == round_)
        saved = [name for name, result in this_round if result == "saved"]
        conflicts = [result for _, result in this_round if result.startswith("conflict")]
        assert len(saved) == 1 and len(conflicts) == 1, this_round
        assert str(session.id) in conflicts[0]
        winners[round_] = saved[0]

    stored = store.domain_events(session.id)
    assert [e.originator_version for e in stored] == list(range(1, base + 3 * racing.ROUNDS + 1))
    appended = [e.call_key for e in stored[base:]]
    expected = [f"judge/{winners[r]}-{r}-{i}" for r in range(racing.ROUNDS) for i in range(3)]
    assert appended == expected  # each round: all three events of the winner, none of the loser
    assert verify_session(store, None, session.id).ok


# --- projections ------------------------------------------------------------------------------------


@contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="distill_es_index_", dir=fast_tmp()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def interleavings(histories: list[Session]) -> st.SearchStrategy[list[list[Any]]]:
    """The histories' events merged in some order (each session's own order kept), cut into saves."""
    queues = [list(h.collect_events()) for h in histories]

    @st.composite
    def merged(draw: st.DrawFn) -> list[list[Any]]:
        order: list[Any] = []
        heads = [0] * len(queues)
        while any(heads[i] < len(q) for i, q in enumerate(queues)):
            live = [i for i, q in enumerate(queues) if heads[i] < len(q)]
            i = draw(st.sampled_from(live))
            order.append(queues[i][heads[i]])
            heads[i] += 1
        batches, at = [], 0
        while at < len(order):
            size = draw(st.integers(min_value=1, max_value=8))
            batches.append(order[at : at + size])
            at += size
        return batches

    return merged()


def check_live_index_equals_a_rebuild(store_url: str, data: st.DataObject, histories: list[Session]) -> None:
    with opened(store_url) as store, scratch_dir() as folder:
        live = SessionIndex(folder / "live.sqlite", store)
        live.catch_up()  # whatever earlier examples left in this store
        for batch in data.draw(interleavings(histories), label="saves"):
            store.app.save(*batch)
            live.catch_up()
        rebuilt = SessionIndex(folder / "rebuilt.sqlite", store)
        assert rebuilt.rows() == live.rows()
        # Small pages: an event skipped as moot within one page must not be moot across pages.
        paged = SessionIndex(folder / "paged.sqlite", store)
        paged.catch_up(batch_size=data.draw(st.integers(min_value=1, max_value=5), label="page size"))
        assert paged.rows() == live.rows()
        assert rebuilt.position() == live.position() == store.max_position()
        rows = {row["session_id"]: row for row in live.rows()}
        for session in histories:
            row = rows[str(session.id)]
            assert (row["status"], row["version"]) == (session.status, session.version)
            assert row["last_digest"] == session.last_digest
            assert abs(row["teacher_cost_usd"] - session.teacher_cost_usd) < 1e-9
            folded = None
            for event in store.domain_events(session.id):
                folded = fold_index_row(folded, event)
            assert row == folded


HISTORIES = st.lists(event_histories(max_steps=25), min_size=1, max_size=3)
_PROJECTION = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def sqlite_url_in_memory_fs() -> Iterator[str]:
    """A SQLite store on a memory-backed folder where there is one: the property runs many saves."""
    with scratch_dir() as folder:
        yield f"sqlite:///{folder / 'events.sqlite'}"


@_PROJECTION
@given(data=st.data(), histories=HISTORIES)
def test_live_index_equals_a_rebuilt_one_on_sqlite(
    sqlite_url_in_memory_fs: str, data: st.DataObject, histories
) -> None:
    check_live_index_equals_a_rebuild(sqlite_url_in_memory_fs, data, histories)


@pytest.mark.postgres
@settings(_PROJECTION, max_examples=6)
@given(data=st.data(), histories=HISTORIES)
def test_live_index_equals_a_rebuilt_one_on_postgres(
    postgres_url: str, data: st.DataObject, histories
) -> None:
    check_live_index_equals_a_rebuild(postgres_url, data, histories)


@pytest.fixture
def four_sessions(store: EventStore) -> list[Session]:
    """Started in this order: completed (on demand), failed (user flag), awaiting review (scheduled),
    initiated (cluster, another workspace)."""
    done = executing(start(OnDemandTrigger()), [])
    done.complete(git_post="c" * 40)
    failed = start(UserFlagTrigger("trace-9"))
    failed.fail(error="not enough traces", reason_code="cold_start")
    waiting = start(ScheduledTrigger())
    fresh = start(ClusterTrigger("math word problems", ["t1"], 0.4), workspace="/w/two")
    awaiting(waiting, ["e1"])
    sessions = [done, failed, waiting, fresh]
    for session in sessions:
        store.save(session)
    return sessions


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["session_id"] for row in rows]


def test_index_rows_filter_and_come_newest_first(store: EventStore, four_sessions, tmp_path: Path) -> None:
    done, failed, waiting, fresh = (str(s.id) for s in four_sessions)
    index = SessionIndex(tmp_path / "index.sqlite", store)
    assert ids(index.rows()) == [fresh, waiting, failed, done]
    assert ids(index.rows(status="failed")) == [failed]
    assert ids(index.rows(status="awaiting_review")) == [waiting]
    assert ids(index.rows(trigger="scheduled")) == [waiting]
    assert ids(index.rows(trigger="cluster", workspace="/w/two")) == [fresh]
    assert ids(index.rows(workspace="/w/one")) == [waiting, failed, done]
    second = four_sessions[1].started_at
    assert ids(index.rows(since=second)) == [fresh, waiting, failed]
    assert ids(index.rows(until=second)) == [failed, done]
    assert ids(index.rows(since=second, until=four_sessions[2].started_at)) == [waiting, failed]
    assert ids(index.rows(limit=2)) == [fresh, waiting]
    row = index.rows(status="failed")[0]
    assert (row["error"], row["trigger"], row["trigger_metadata"]) == (
        "not enough traces",
        "user_flag",
        {"trace_id": "trace-9"},
    )
    assert index.rows(status="completed")[0]["teacher_cost_usd"] == 0.75


def test_the_index_of_a_workspaces_own_store_lists_every_session_whatever_path_it_recorded(
    store: EventStore, four_sessions, tmp_path: Path
) -> None:
    every = ids(SessionIndex(tmp_path / "all.sqlite", store).rows())
    own = SessionIndex(tmp_path / "own.sqlite", store, own_store=True)  # a moved workspace's own store
    assert ids(own.rows(workspace="/moved/here")) == every
    assert own.session_ids(workspace="/moved/here") == every
    assert own.count(workspace="/moved/here") == len(every) == 4
    assert ids(own.rows(workspace="/moved/here", status="failed")) == ids(own.rows(status="failed"))
    assert own.belongs("/w/one", "/moved/here")
    shared = SessionIndex(tmp_path / "shared.sqlite", store)  # a shared store: the recorded path
    assert shared.rows(workspace="/moved/here") == [] and shared.count(workspace="/moved/here") == 0
    assert shared.session_ids(workspace="/moved/here") == []
    assert shared.belongs("/w/one", "/w/one") and not shared.belongs("/w/one", "/moved/here")


def test_review_queue_lists_pending_edits_oldest_first(
    store: EventStore, four_sessions, tmp_path: Path
) -> None:
    waiting = four_sessions[2]
    later = awaiting(start(), ["e2", "e3"])
    store.save(later)
    index = SessionIndex(tmp_path / "index.sqlite", store)

    queue = index.review_queue()
    assert [(q["session_id"], q["edit_id"]) for q in queue] == [
        (str(waiting.id), "e1"),
        (str(later.id), "e2"),
        (str(later.id), "e3"),
    ]
    first = queue[0]
    assert (first["op"], first["target"], first["risk_tier"], first["target_cluster"]) == (
        "replace_system_prompt",
        "agents.helper",
        "review",
        "c1",
    )
    assert (first["preview"], first["rationale"]) == ("diff of e1", "why e1")
    assert index.review_queue(workspace="/w/two") == []

    waiting = store.load(waiting.id)
    waiting.approve_edit(edit_id="e1", reviewer="bob")
    store.save(waiting)
    later = store.load(later.id)
    later.request_rollback(requested_by="carol")
    later.roll_back(git_post=None)
    store.save(later)
    assert index.review_queue() == []
    assert all(r.ok for r in verify_store(store, index)), "a rolled-back review is not damage"


def test_timeline_and_cost_ledger(store: EventStore) -> None:
    session = awaiting(start(), ["e1"])
    session.approve_edit(edit_id="e1", reviewer="bob", note="ship it")
    store.save(session)
    events = store.domain_events(session.id)

    entries = timeline(events)
    assert [e["version"] for e in entries] == list(range(1, len(events) + 1))
    assert [e["type"] for e in entries] == [type(e).__name__ for e in events]
    assert [e["digest"] for e in entries] == [e.digest for e in events]
    assert entries[0]["what"] == "session started by on_demand trigger, autonomy tiered"
    by_type = {e["type"]: e for e in entries}
    assert by_type["TeacherCallCompleted"]["who"] == "teacher"
    assert by_type["EditApprovedByReviewer"]["who"] == "bob"
    assert by_type["EditApprovedByReviewer"]["what"] == "approved edit e1: ship it"
    assert by_type["SessionAwaitingReview"]["what"] == "awaiting review of e1"

    ledger = cost_ledger(events)
    assert [(c["call_key"], c["purpose"], c["cost_usd"]) for c in ledger] == [
        ("diagnose/1", "diagnose", 0.25),
        ("plan", "plan", 0.5),
    ]
    assert sum(c["cost_usd"] for c in ledger) == store.load(session.id).view().teacher_cost_usd
    assert ledger[0]["usage"] == {"input_tokens": 100, "output_tokens": 10}


# --- verify and tampering ----------------------------------------------------------------------------


class RawRows:
    """Raw SQL on one session's stored rows, as anyone with access to the database could run it."""

    def __init__(self, url: str, session_id: uuid.UUID) -> None:
        self.url, self.sid = url, session_id

    def _exec(self, sql: str, *params: Any) -> list[tuple]:
        if is_postgres(self.url):
            import psycopg

            sql = sql.replace("stored_events", "distill_es_events").replace("?", "%s")
            with psycopg.connect(self.url, autocommit=True) as conn:
                cursor = conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        params = tuple(p.hex if isinstance(p, uuid.UUID) else p for p in params)  # SQLite keeps hex ids
        with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn, conn:
            return conn.execute(sql, params).fetchall()

    def state(self, version: int) -> bytes:
        sql = "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?"
        return bytes(self._exec(sql, self.sid, version)[0][0])

    def set_state(self, version: int, state: bytes) -> None:
        sql = "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?"
        self._exec(sql, state, self.sid, version)

    def delete(self, version: int) -> None:
        self._exec(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?", self.sid, version
        )

    def swap(self, a: int, b: int) -> None:
        move = "UPDATE stored_events SET originator_version = ? WHERE originator_id = ? "
        for new, old in ((-1, a), (a, b), (b, -1)):
            self._exec(move + "AND originator_version = ?", new, self.sid, old)


def edit_payload(store: EventStore, state: bytes, **changes: Any) -> bytes:
    mapper = store.app.mapper
    decoded = mapper.transcoder.decode(mapper.compressor.decompress(state))
    return mapper.compressor.compress(mapper.transcoder.encode({**decoded, **changes}))


@pytest.fixture
def audited(
    store: EventStore, store_url: str, tmp_path: Path
) -> tuple[EventStore, SessionIndex, Session, RawRows]:
    """A clean store with two sessions, an index caught up, and raw access to the first one's rows."""
    target = diagnosing(start())
    for n in range(1, 5):
        teacher_call(target, f"diagnose/{n}", 0.1 * n)  # versions 4..7
    bystander = awaiting(start(), ["e1"])
    bystander.request_rollback(requested_by="carol")
    bystander.roll_back(git_post=None)  # awaiting_review -> rolled_back with an undecided edit
    store.save(target)
    store.save(bystander)
    index = SessionIndex(tmp_path / "index.sqlite", store)
    index.catch_up()
    reports = verify_store(store, index)
    assert [(r.ok, r.events) for r in reports] == [(True, 7), (True, bystander.version)], reports
    return store, index, target, RawRows(store_url, target.id)


def damage_of(store: EventStore, index: SessionIndex | None, session: Session) -> list[tuple[int, str]]:
    reports = verify_store(store, index)
    assert all(r.ok for r in reports if r.session_id != str(session.id)), "only the tampered session is hurt"
    [report] = [r for r in reports if r.session_id == str(session.id)]
    assert not report.ok and all(d.session_id == str(session.id) for d in report.damage)
    return [(d.position, d.kind) for d in report.damage]


def test_verify_finds_an_edited_payload(audited) -> None:
    store, index, target, raw = audited
    raw.set_state(5, edit_payload(store, raw.state(5), cost_usd=0.0))
    assert damage_of(store, index, target) == [(5, "edited")]
    assert damage_of(store, None, target) == [(5, "edited")]


def test_verify_finds_bytes_that_no_longer_decode(audited) -> None:
    store, index, target, raw = audited
    raw.set_state(6, b"\x00not zlib at all")
    assert damage_of(store, index, target) == [(6, "undecodable")]


def test_verify_finds_a_deleted_row(audited) -> None:
    store, index, target, raw = audited
    raw.delete(5)
    assert damage_of(store, index, target) == [(5, "deleted")]


def test_verify_finds_the_last_row_deleted_through_the_index(audited) -> None:
    store, index, target, raw = audited
    raw.delete(7)
    assert damage_of(store, index, target) == [(7, "truncated")]


def test_verify_finds_a_session_whose_first_row_was_deleted(audited) -> None:
    store, index, target, raw = audited
    raw.delete(1)
    assert damage_of(store, index, target) == [(1, "deleted")]


def test_verify_finds_two_swapped_rows(audited) -> None:
    store, index, target, raw = audited
    raw.swap(5, 6)
    assert damage_of(store, index, target) == [(5, "reordered"), (6, "reordered")]
    [report] = [r for r in verify_store(store, None) if r.session_id == str(target.id)]
    assert "written as version 6" in report.damage[0].detail
