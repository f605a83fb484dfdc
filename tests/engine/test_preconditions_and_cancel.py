"""A refused command records nothing, and `cancel` is the way out (issue 13, bullets 6 and 8).

Real git, real SQLite, the real anthropic/openai clients against the scripted HTTP servers.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from distill_es import Engine
from distill_es.demo import world as demo_world
from distill_es.domain.errors import (
    DistillError,
    IllegalTransition,
    SessionBusy,
    TraceNotFound,
    WorkspaceConflict,
)
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.next_step import next_step
from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import SessionStatus
from distill_es.store.locks import exclusive

from .conftest import World


def git(home: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(home), *args], capture_output=True, text=True, check=True).stdout


def event_types(engine, sid: str) -> list[str]:
    return [entry["type"] for entry in engine.history(sid)]


def outcomes(view) -> dict[str, str]:
    return {o.edit_id: o.status for o in view.edit_outcomes}


# --- approve / reject / rollback: the clean tree is checked before anything is recorded -------------


def test_approve_over_a_hand_edit_records_nothing_and_the_edit_stays_pending(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.AWAITING_REVIEW
    before = event_types(engine, session.id)
    (scripted_world.home / "config.toml").write_text("# a hand edit, not committed\n")

    with pytest.raises(WorkspaceConflict, match=r"config\.toml.*nothing was recorded"):
        engine.approve(session.id, "edit_003", reviewer="ann")

    assert event_types(engine, session.id) == before
    assert engine.get(session.id).status == SessionStatus.AWAITING_REVIEW
    assert [p["edit_id"] for p in engine.pending_reviews()] == ["edit_003"]
    # The approval was not used up: once the tree is clean it can still be approved or rejected.
    git(scripted_world.home, "checkout", "--", "config.toml")
    done = engine.reject(session.id, "edit_003", reviewer="ann", reason="no")
    assert done.status == SessionStatus.COMPLETED


@pytest.mark.parametrize("command", ["reject", "rollback"])
def test_reject_and_rollback_over_a_hand_edit_record_nothing(scripted_world: World, command: str):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    before = event_types(engine, session.id)
    (scripted_world.home / "agents" / "assistant" / "system_prompt.md").write_text("mine\n")

    with pytest.raises(WorkspaceConflict, match=r"system_prompt\.md"):
        if command == "reject":
            engine.reject(session.id, "edit_003", reviewer="ann", reason="no")
        else:
            engine.rollback(session.id)

    assert event_types(engine, session.id) == before
    assert engine.get(session.id).status == SessionStatus.AWAITING_REVIEW


# --- start: inputs are checked before the session is recorded or the teacher paid -------------------


def _refused_start(world: World, match: str) -> None:
    engine = world.engine()
    with pytest.raises(DistillError, match=match) as refused:
        engine.start(OnDemandTrigger())
    assert "this is a bug" not in str(refused.value)
    assert engine.sessions() == []
    assert world.teacher_server.requests == []


def test_a_corrupt_config_is_refused_at_start_naming_file_and_line(scripted_world: World):
    home = scripted_world.home
    (home / "config.toml").write_text('[agent]\ndefault = "assistant"\n[broken\n')
    git(home, "commit", "-qam", "a corrupt config, committed")
    _refused_start(scripted_world, r"config\.toml is not valid TOML.*line 3")


def test_an_empty_benchmark_is_refused_at_start(scripted_world: World):
    (scripted_world.home / "benchmark.jsonl").write_text("\n")
    _refused_start(scripted_world, r"benchmark\.jsonl has no tasks")


def test_a_non_utf8_trace_line_is_refused_at_start_naming_file_and_line(scripted_world: World):
    path = scripted_world.home / "traces.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(4, b'{"trace_id": "bad", "query": "caf\xe9"}\n')
    path.write_bytes(b"".join(lines))
    _refused_start(scripted_world, r"traces\.jsonl:5: not valid UTF-8")


def test_a_malformed_trace_line_is_refused_at_start(scripted_world: World):
    with (scripted_world.home / "traces.jsonl").open("a") as fh:
        fh.write("{not json\n")
    _refused_start(scripted_world, r"traces\.jsonl:\d+: not valid JSON")


def test_a_traces_db_that_is_not_sqlite_is_refused_at_start(scripted_world: World):
    (scripted_world.home / "traces.jsonl").unlink()
    (scripted_world.home / "traces.db").write_bytes(b"this is not a database at all" * 100)
    _refused_start(scripted_world, r"traces\.db")


def test_a_non_utf8_benchmark_line_is_refused_at_start(scripted_world: World):
    with (scripted_world.home / "benchmark.jsonl").open("ab") as fh:
        fh.write(b'{"task_id": "x", "query": "\xff", "reference_answer": "y"}\n')
    _refused_start(scripted_world, r"benchmark\.jsonl:9: not valid UTF-8")


def test_a_busy_workspace_refuses_start_and_leaves_no_session(scripted_world: World):
    engine = scripted_world.engine()
    engine.workspace  # noqa: B018 - the baseline exists before the other process takes the workspace
    with (
        exclusive(engine.store.url, engine.state_dir, *engine.runner.workspace_lock()),
        pytest.raises(SessionBusy, match="workspace"),
    ):
        engine.start(OnDemandTrigger())
    assert engine.sessions() == []


def test_a_traces_db_row_cannot_break_start_with_a_bug(scripted_world: World):
    """A real SQLite file without OpenJarvis's table: refused at start, one line naming the file."""
    (scripted_world.home / "traces.jsonl").unlink()
    with sqlite3.connect(scripted_world.home / "traces.db") as db:
        db.execute("CREATE TABLE other (x)")
    _refused_start(scripted_world, r"traces\.db: not an OpenJarvis traces database")


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_ends_a_stuck_initiated_session_with_who_and_why(scripted_world: World):
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())

    view = engine.cancel(sid, by="ann", reason="traces are being rebuilt")

    assert view.status == SessionStatus.FAILED
    assert view.error == "cancelled by ann: traces are being rebuilt"
    assert engine.store.load(sid).reason_code == "cancelled"
    last = engine.history(sid)[-1]
    assert (last["type"], last["who"], last["what"]) == (
        "SessionCancelled",
        "ann",
        "cancelled: traces are being rebuilt",
    )
    assert [s.status for s in engine.sessions()] == [SessionStatus.FAILED]
    assert engine.run(sid).status == SessionStatus.FAILED  # nothing left to run: workers skip it
    assert scripted_world.teacher_server.requests == []
    assert [r.ok for r in engine.verify(sid)] == [True]


def test_cancel_from_a_resting_state_is_an_illegal_transition(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    before = event_types(engine, session.id)
    with pytest.raises(IllegalTransition, match="cancel"):
        engine.cancel(session.id, by="ann", reason="too late")
    assert event_types(engine, session.id) == before


def test_cancel_needs_a_name_and_a_reason(scripted_world: World):
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())
    for by, reason in (("", "why"), ("ann", "  ")):
        with pytest.raises(DistillError):
            engine.cancel(sid, by=by, reason=reason)
    assert event_types(engine, sid) == ["SessionStarted"]


def test_cancel_is_refused_while_another_process_runs_the_session(scripted_world: World):
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())
    with (
        exclusive(engine.store.url, engine.state_dir, *engine.runner.session_lock(sid)),
        pytest.raises(SessionBusy),
    ):
        engine.cancel(sid, by="ann", reason="stop")
    assert event_types(engine, sid) == ["SessionStarted"]


def _drive_until(engine, sid: str, stop) -> object:
    """Run the session step by step, saving each, until `stop(session, step)`; returns the session
    (unsaved from that step on) and the step it stopped at."""
    session = engine.store.load(sid)
    while True:
        step = next_step(session)
        if stop(session, step):
            return session, step
        engine.runner.perform(session, step)
        engine.store.save(session)


def test_cancel_mid_apply_reverts_a_commit_made_but_not_recorded(scripted_world: World):
    """A crash between the commit and its record: cancel reconciles the commit and reverts it, the
    accepted edit stays, and `rollback` from failed reverts that too."""
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())
    session, step = _drive_until(
        engine, sid, lambda s, st: isinstance(st, steps.ApplyEdit) and st.edit_id == "edit_002"
    )
    pre = engine.workspace.head_sha()
    engine.runner.perform(session, step)  # the commit is made; the process "dies" before recording it
    assert engine.workspace.find_edit_commit(sid, "edit_002") is not None

    view = engine.cancel(sid, by="ann", reason="stop now")

    assert view.status == SessionStatus.FAILED
    assert outcomes(view) == {"edit_001": "applied", "edit_002": "skipped"}  # edit_003: never reached
    assert git(scripted_world.home, "diff", pre, "HEAD") == ""  # edit_002 is undone by a revert commit
    assert "Reverts-Edit-ID: edit_002" in git(scripted_world.home, "log", "-1", "--format=%B")
    assert engine.workspace.dirty_paths() == []
    types = event_types(engine, sid)
    assert types[-4:] == ["EditApplied", "EditReverted", "EditSkipped", "SessionCancelled"]

    rolled = engine.rollback(sid)
    assert rolled.status == SessionStatus.ROLLED_BACK
    assert outcomes(rolled)["edit_001"] == "rolled_back"
    assert [r.ok for r in engine.verify(sid)] == [True]


def test_cancel_mid_apply_restores_half_written_files(scripted_world: World):
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())
    _drive_until(engine, sid, lambda s, st: isinstance(st, steps.ApplyEdit) and st.edit_id == "edit_001")
    head = engine.workspace.head_sha()
    (scripted_world.home / "config.toml").write_text("half-writ")  # the apply died mid-write

    view = engine.cancel(sid, by="ann", reason="stop now")

    assert view.status == SessionStatus.FAILED
    assert outcomes(view)["edit_001"] == "skipped"
    assert engine.workspace.dirty_paths() == [] and engine.workspace.head_sha() == head
    assert event_types(engine, sid)[-2:] == ["EditSkipped", "SessionCancelled"]


def test_cancelled_sessions_read_back_the_same_from_a_fresh_engine(scripted_world: World):
    engine = scripted_world.engine()
    sid = engine.start(OnDemandTrigger())
    engine.cancel(sid, by="ann", reason="stop")
    engine.close()
    fresh = scripted_world.engine()
    assert fresh.get(sid).error == "cancelled by ann: stop"
    assert fresh.sessions(status="failed")[0].id == sid


def test_cancel_and_a_busy_start_on_each_store(scripted_world: World, store_url: str):
    """The locks cancel and start rely on are the store's own: flock on SQLite, advisory locks on
    PostgreSQL."""
    engine = scripted_world.engine(store_url=store_url)
    sid = engine.start(OnDemandTrigger())
    with (
        exclusive(engine.store.url, engine.state_dir, *engine.runner.session_lock(sid)),
        pytest.raises(SessionBusy),
    ):
        engine.cancel(sid, by="ann", reason="stop")
    with (
        exclusive(engine.store.url, engine.state_dir, *engine.runner.workspace_lock()),
        pytest.raises(SessionBusy),
    ):
        engine.start(OnDemandTrigger())
    assert engine.cancel(sid, by="ann", reason="stop").status == SessionStatus.FAILED
    assert [s.id for s in engine.sessions()] == [sid]


def test_approve_over_a_corrupt_committed_config_records_nothing(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    before = event_types(engine, session.id)
    (scripted_world.home / "config.toml").write_text("[agent\n")
    git(scripted_world.home, "commit", "-qam", "the user broke it and committed it")

    with pytest.raises(DistillError, match=r"config\.toml is not valid TOML"):
        engine.approve(session.id, "edit_003", reviewer="ann")

    assert event_types(engine, session.id) == before
    assert [p["edit_id"] for p in engine.pending_reviews()] == ["edit_003"]


@pytest.mark.parametrize("trace_id", ["nope", "", "  "])
def test_a_trigger_naming_a_trace_the_workspace_lacks_records_nothing(tmp_path: Path, trace_id: str) -> None:
    """A typo in --trace-id never pays the teacher: refused (TraceNotFound, exit 3) before recording."""
    home = demo_world.create_demo_workspace(tmp_path / "demo")
    engine = Engine.open(home)
    try:
        with pytest.raises(TraceNotFound):
            engine.start(UserFlagTrigger(trace_id=trace_id))
        with pytest.raises(TraceNotFound):
            engine.start(ClusterTrigger("a cluster", trace_ids=["t001", trace_id]))
        assert engine.sessions() == []
        assert engine.get(engine.start(UserFlagTrigger(trace_id="t001"))).trigger_metadata == {
            "trace_id": "t001"
        }
    finally:
        engine.close()
