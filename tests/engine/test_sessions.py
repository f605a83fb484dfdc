"""Whole sessions through the real anthropic/openai clients, real git, real SQLite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from distill_es.demo import world
from distill_es.domain.errors import IllegalTransition, WorkspaceConflict
from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import SessionStatus

from .conftest import World


def git_log(home: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(home), "log", "--format=%H %s%n%b%x00"], capture_output=True, text=True, check=True
    ).stdout
    return [entry.strip() for entry in out.split("\x00") if entry.strip()]


def outcomes(session) -> dict[str, str]:
    return {o.edit_id: o.status for o in session.edit_outcomes}


def event_types(engine, sid: str) -> list[str]:
    return [entry["type"] for entry in engine.history(sid)]


def test_tiered_session_applies_auto_edits_reverts_rejected_and_waits_for_review(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger({"why": "test"}))

    assert session.status == SessionStatus.AWAITING_REVIEW
    assert outcomes(session) == {
        "edit_001": "applied",
        "edit_002": "rejected_by_gate",
        "edit_003": "pending_review",
    }
    rejected = next(o for o in session.edit_outcomes if o.edit_id == "edit_002")
    assert "units" in rejected.error and "geography" in rejected.error
    assert rejected.cluster_deltas["geography"] < -0.5
    applied = next(o for o in session.edit_outcomes if o.edit_id == "edit_001")
    assert applied.cluster_deltas["arithmetic"] == pytest.approx(1.0)

    # git tells the same story as the log: baseline, edit_001, edit_002, the revert of edit_002.
    log = git_log(scripted_world.home)
    assert len(log) == 4
    assert "Revert" in log[0] and "Reverts-Edit-ID: edit_002" in log[0]
    assert "Edit-ID: edit_002" in log[1] and f"Session-ID: {session.id}" in log[1]
    assert (
        "Edit-ID: edit_001" in log[2]
        and "Risk-Tier: auto" in log[2]
        and "Op: set_model_for_query_class" in log[2]
    )
    assert applied.commit_sha == log[2].split()[0]
    config = (scripted_world.home / "config.toml").read_text()
    assert 'arithmetic = "qwen2.5-math:7b"' in config
    assert "temperature = 1.4" not in config and "# The demo student's configuration" in config

    types = event_types(engine, session.id)
    assert types[:3] == ["SessionStarted", "ReadinessChecked", "PhaseEntered"]
    assert types.count("TeacherCallCompleted") == 5  # 3 diagnose turns, 1 self run, 1 plan
    assert types[-1] == "SessionAwaitingReview"
    for expected in (
        "EditApplied",
        "GateEvaluated",
        "EditReverted",
        "EditQueuedForReview",
        "BenchmarkCaptured",
    ):
        assert expected in types

    # The gate scored the pre-session tree once, each new tree once, and reused the rest.
    assert session.student_calls_made == 24  # 8 tasks × 3 distinct trees
    assert session.student_calls_reused == 8  # the after-snapshot is the accepted edit's tree
    assert session.teacher_cost_usd > 0
    assert [r.ok for r in engine.verify(session.id)] == [True]


def test_approving_the_pending_prompt_edit_applies_and_gates_it(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    pending = engine.pending_reviews()
    assert [(p["edit_id"], p["target_cluster"]) for p in pending] == [("edit_003", "units")]
    assert "+When a question involves units" in pending[0]["preview"]

    done = engine.approve(session.id, "edit_003", reviewer="ann", note="looks right")
    assert done.status == SessionStatus.COMPLETED
    assert outcomes(done)["edit_003"] == "applied"
    assert done.benchmark_after.cluster_scores["units"] == pytest.approx(1.0)
    assert (
        "convert units explicitly" in (scripted_world.home / "agents/assistant/system_prompt.md").read_text()
    )
    history = engine.history(session.id)
    assert any(h["who"] == "ann" and "approved edit edit_003" in h["what"] for h in history)
    assert engine.pending_reviews() == []

    with pytest.raises(IllegalTransition) as refused:
        engine.approve(session.id, "edit_003", reviewer="ann")
    assert "completed" in str(refused.value) and "approve_edit" in str(refused.value)


def test_rejecting_the_last_pending_edit_completes_the_session(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    done = engine.reject(session.id, "edit_003", reviewer="bob", reason="prompt changes need a wider test")
    assert done.status == SessionStatus.COMPLETED
    assert outcomes(done)["edit_003"] == "rejected_by_user"
    assert "bob" in next(o.error for o in done.edit_outcomes if o.edit_id == "edit_003")
    with pytest.raises(IllegalTransition):
        engine.reject(session.id, "edit_003", reviewer="bob", reason="again")


def test_rollback_reverts_every_applied_edit_newest_first(scripted_world: World):
    engine = scripted_world.engine()
    session = engine.run_session(OnDemandTrigger())
    engine.approve(session.id, "edit_003", reviewer="ann")
    baseline_config = subprocess.run(
        ["git", "-C", str(scripted_world.home), "show", f"{session.git_checkpoint_pre}:config.toml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    rolled = engine.rollback(session.id)
    assert rolled.status == SessionStatus.ROLLED_BACK
    assert outcomes(rolled) == {
        "edit_001": "rolled_back",
        "edit_002": "rejected_by_gate",
        "edit_003": "rolled_back",
    }
    assert (scripted_world.home / "config.toml").read_text() == baseline_config
    log = git_log(scripted_world.home)
    assert "Reverts-Edit-ID: edit_001" in log[0] and "Reverts-Edit-ID: edit_003" in log[1]
    with pytest.raises(IllegalTransition):
        engine.rollback(session.id)


def test_auto_mode_applies_the_review_tier_too(scripted_world: World):
    engine = scripted_world.engine(settings={"session": {"autonomy_mode": "auto"}})
    session = engine.run_session(ClusterTrigger("arithmetic failures", ["t001"], 0.8))
    assert session.status == SessionStatus.COMPLETED
    assert outcomes(session) == {"edit_001": "applied", "edit_002": "rejected_by_gate", "edit_003": "applied"}
    assert session.trigger_metadata["failure_rate"] == 0.8


def test_manual_mode_queues_everything_and_never_runs_the_student_for_the_gate(scripted_world: World):
    engine = scripted_world.engine()
    before_calls = scripted_world.student_server.completed
    sid = engine.start(UserFlagTrigger("t004"), autonomy="manual")
    session = engine.run(sid)
    assert session.status == SessionStatus.AWAITING_REVIEW
    assert set(outcomes(session).values()) == {"pending_review"}
    assert session.benchmark_before is None and session.student_calls_made == 0
    # Only the teacher's diagnose tools ran the student (3 run_student_on_task calls).
    assert scripted_world.student_server.completed - before_calls == 3


def test_cold_start_fails_with_both_counts(scripted_world: World):
    engine = scripted_world.engine(settings={"session": {"min_traces": 100}})
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.FAILED
    assert "have 30" in session.error and "at least 100" in session.error
    assert scripted_world.teacher_server.requests == []


def test_budget_stops_diagnosis(scripted_world: World):
    engine = scripted_world.engine(settings={"session": {"max_cost_usd": 0.001}})
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.FAILED
    assert "budget" in session.error
    assert len(scripted_world.teacher_server.requests) == 1  # checked before every call, not after


def test_turns_exhausted_fails_clearly(scripted_world: World):
    engine = scripted_world.engine(settings={"session": {"max_turns": 2}})
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.FAILED
    assert "all 2 turns" in session.error


def test_dirty_tracked_files_refuse_to_start_naming_them(scripted_world: World):
    (scripted_world.home / "config.toml").write_text("# changed by hand\n")
    engine = scripted_world.engine()
    with pytest.raises(WorkspaceConflict) as refused:
        engine.start(OnDemandTrigger())
    assert "config.toml" in str(refused.value)
    assert engine.sessions() == []


def test_cassette_replay_reproduces_the_session_offline(scripted_world: World, tmp_path: Path):
    from distill_es.adapters.cassette import CassetteTeacher
    from distill_es.demo.run import CASSETTE, open_demo_engine

    home = world.create_demo_workspace(tmp_path / "offline")
    engine = open_demo_engine(home, teacher=CassetteTeacher(CASSETTE))
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.AWAITING_REVIEW
    assert outcomes(session)["edit_002"] == "rejected_by_gate"


def test_cassette_divergence_fails_with_a_clear_reason(tmp_path: Path):
    from distill_es.adapters.cassette import CassetteTeacher
    from distill_es.demo.run import CASSETTE, open_demo_engine

    home = world.create_demo_workspace(tmp_path / "diverged")
    (home / "distill_es.toml").write_text(
        world.settings_toml().replace("max_tokens = 4096", "max_tokens = 999")
    )
    engine = open_demo_engine(home, teacher=CassetteTeacher(CASSETTE))
    session = engine.run_session(OnDemandTrigger())
    assert session.status == SessionStatus.FAILED
    assert "cassette" in session.error.lower()
    assert event_types(engine, session.id)[-1] == "SessionFailed"


def test_the_scoring_observer_hears_every_task_scored_with_totals(scripted_world: World):
    """`on_scoring` counts 1..n per tree as tasks are scored; what it reports matches the log."""
    ticks: list = []
    engine = scripted_world.engine(on_scoring=ticks.append)
    try:
        session = engine.run_session(OnDemandTrigger({"source": "test"}))
        scored = [e for e in engine.store.domain_events(session.id) if type(e).__name__ == "TasksScored"]
    finally:
        engine.close()
    assert ticks and all(t.session_id == session.id for t in ticks)
    by_tree: dict[str, list] = {}
    for tick in ticks:
        by_tree.setdefault(tick.tree_sha, []).append(tick)
    assert set(by_tree) == {e.tree_sha for e in scored}
    for event in scored:
        tree_ticks = by_tree[event.tree_sha]
        assert [t.scored for t in tree_ticks] == list(range(1, len(event.scores) + 1))
        assert {(t.to_score, t.total) for t in tree_ticks} == {(len(event.scores), 8)}
    assert sum(len(e.scores) for e in scored) == session.student_calls_made == len(ticks)
