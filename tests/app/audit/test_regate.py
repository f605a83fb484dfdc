"""What-if re-gating over recorded events: the recorded policy flips nothing, other policies flip exactly
the gates the gate rule decides differently, and gates it cannot re-decide say why."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from distill_es.app.audit import InvalidPolicy, regate_events
from distill_es.config.settings import Settings
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import (
    OP_PILLAR,
    AutonomyMode,
    Edit,
    EditOp,
    FailureCluster,
    LearningPlan,
    Trigger,
    TriggerKind,
)
from distill_es.phases.gate import evaluate_gate, snapshot
from distill_es.ports import TaskScore
from distill_es.testing import event_histories

SCORES = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
POLICY = st.sampled_from([0.0, 0.01, 0.1, 0.3, 0.6])


def _sha(n: int) -> str:
    return f"{n:040x}"


@st.composite
def gated_histories(draw: st.DrawFn) -> tuple[Session, list[bool]]:
    """A session driven through the real aggregate whose every gate was decided by the real gate rule
    from scores recorded as `TasksScored` (as the engine does), under a drawn policy. Returns the session
    (events pending) and the recorded verdicts."""
    eps, min_imp = draw(POLICY), draw(POLICY)
    config = Settings().model_dump(mode="json")
    config["gate"] |= {"max_regression": eps, "min_improvement": min_imp}
    session = Session.start(
        trigger=Trigger(kind=TriggerKind.ON_DEMAND),
        autonomy_mode=AutonomyMode.AUTO,
        settings=config,
        workspace="/ws",
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head=_sha(1), git_tree=_sha(2))
    session.begin_diagnosis()
    n_clusters = draw(st.integers(1, 3))
    clusters = [
        FailureCluster(
            id=f"c{i}", task_ids=[f"t{i}a", f"t{i}b"], student_failure_rate=0.5, teacher_success_rate=0.5
        )
        for i in range(n_clusters)
    ]
    session.submit_diagnosis(markdown="d", clusters=clusters)
    op = EditOp.SET_MODEL_PARAM
    edits = [
        Edit(
            id=f"e{i}",
            pillar=OP_PILLAR[op],
            op=op,
            target="models.m.temperature",
            payload={"model": "m", "param": "temperature", "value": 0.1 * i},
            expected_improvement=f"c{draw(st.integers(0, n_clusters - 1))}",
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    session.freeze_plan(
        plan=LearningPlan(session_id=str(session.id), edits=edits),
        rejected=[],
        tier_changes=[],
        downgrades=[],
    )
    task_ids = [t for c in clusters for t in c.task_ids]
    seed = 7
    session.choose_gate_tasks(seed=seed, task_ids=task_ids)
    model = session.student_model
    counter = iter(range(10, 10_000))

    def score_tree(tree: str) -> dict[str, TaskScore]:
        scores = [TaskScore(task_id=t, score=draw(SCORES)) for t in task_ids]
        session.record_scores(
            tree_sha=tree, seed=seed, student_model=model, scores=[s.model_dump(mode="json") for s in scores]
        )
        return {s.task_id: s for s in scores}

    head, tree = _sha(1), _sha(2)
    readings = {tree: score_tree(tree)}
    verdicts = []
    for edit in edits:
        session.route_edit(edit_id=edit.id, route="apply")
        session.validate_edit(edit_id=edit.id, ok=True, reason="")
        session.start_apply(edit_id=edit.id, pre_sha=head, pre_tree=tree)
        commit, new_tree = _sha(next(counter)), _sha(next(counter))
        session.record_apply(
            edit_id=edit.id, commit_sha=commit, tree_sha=new_tree, changed_files=["config.toml"]
        )
        readings[new_tree] = score_tree(new_tree)
        before, after = (
            snapshot(
                scores=readings[t], task_ids=task_ids, clusters=clusters, benchmark_version="v", tree_sha=t
            )
            for t in (tree, new_tree)
        )
        decision = evaluate_gate(
            before=before,
            after=after,
            target_cluster=edit.expected_improvement,
            max_regression=eps,
            min_improvement=min_imp,
        )
        session.record_gate(
            edit_id=edit.id,
            before=before,
            after=after,
            delta=decision.delta,
            cluster_deltas=dict(decision.cluster_deltas),
            accepted=decision.accepted,
            reason=decision.reason,
        )
        verdicts.append(decision.accepted)
        if decision.accepted:
            head, tree = commit, new_tree
        else:
            revert = _sha(next(counter))
            session.revert_edit(edit_id=edit.id, revert_sha=revert, tree_sha=tree)
            head = revert
    session.complete(git_post=head)
    return session, verdicts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gated_histories())
def test_the_recorded_policy_flips_nothing_and_redecides_every_gate(
    drawn: tuple[Session, list[bool]],
) -> None:
    session, verdicts = drawn
    result = regate_events(session.pending_events)
    assert [g.recorded_accepted for g in result.gates] == verdicts
    assert all(g.redecidable and g.scores_from == "tasks_scored" for g in result.gates)
    assert result.flips == 0 and not any(g.flipped for g in result.gates)
    assert [g.whatif_accepted for g in result.gates] == verdicts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gated_histories(), POLICY, POLICY)
def test_another_policy_flips_exactly_where_the_gate_rule_decides_otherwise(
    drawn: tuple[Session, list[bool]], eps: float, min_imp: float
) -> None:
    session, verdicts = drawn
    result = regate_events(session.pending_events, max_regression=eps, min_improvement=min_imp)
    assert result.policy.max_regression == eps and result.policy.min_improvement == min_imp
    for gate, recorded in zip(result.gates, verdicts, strict=True):
        clusters_before = {c.cluster_id: c.before for c in gate.clusters if c.before is not None}
        clusters_after = {c.cluster_id: c.after for c in gate.clusters if c.after is not None}
        target = gate.target_cluster
        improved = clusters_after[target] - clusters_before[target]
        worst = min([clusters_after[c] - clusters_before[c] for c in clusters_before if c != target] or [0.0])
        expected = improved > min_imp + 1e-9 and worst >= -eps - 1e-9
        assert gate.whatif_accepted == expected
        assert gate.flipped == (expected != recorded)
    assert result.flips == sum(g.flipped for g in result.gates)
    # Every gate after the first flip of the session says it assumes the recorded history.
    first = next((i for i, g in enumerate(result.gates) if g.flipped), None)
    for i, gate in enumerate(result.gates):
        assert gate.after_a_flip == (first is not None and i > first)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(event_histories(min_steps=5, max_steps=40))
def test_any_generated_history_with_gates_flips_nothing_under_its_recorded_policy(session: Session) -> None:
    """Histories the aggregate accepts, whose gates hold arbitrary snapshots and verdicts: a gate whose
    recorded readings do not reproduce its verdict is not re-decidable (and says why), never a flip."""
    events = session.pending_events
    gated = [e for e in events if type(e).__name__ == "GateEvaluated"]
    assume(gated)  # about one generated history in five has a gate
    result = regate_events(events)
    assert result.flips == 0
    assert [g.version for g in result.gates] == [e.originator_version for e in gated]
    for gate in result.gates:
        assert gate.redecidable or gate.why_not
        assert not gate.flipped


def _flip_both_ways() -> Session:
    """Two gates: e0 accepted (+0.5 on c0), e1 rejected (c1 +0.5 but c0 −0.25 beyond ε=0.01)."""
    config = Settings().model_dump(mode="json")
    session = Session.start(
        trigger=Trigger(kind=TriggerKind.ON_DEMAND),
        autonomy_mode=AutonomyMode.AUTO,
        settings=config,
        workspace="/ws",
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head=_sha(1), git_tree=_sha(2))
    session.begin_diagnosis()
    clusters = [
        FailureCluster(id=c, task_ids=[f"{c}-t"], student_failure_rate=0.5, teacher_success_rate=0.5)
        for c in ("c0", "c1")
    ]
    session.submit_diagnosis(markdown="d", clusters=clusters)
    op = EditOp.SET_MODEL_PARAM
    edits = [
        Edit(
            id=f"e{i}",
            pillar=OP_PILLAR[op],
            op=op,
            payload={"model": "m", "param": "temperature", "value": 0.5},
            expected_improvement=f"c{i}",
        )
        for i in range(2)
    ]
    session.freeze_plan(
        plan=LearningPlan(session_id=str(session.id), edits=edits),
        rejected=[],
        tier_changes=[],
        downgrades=[],
    )
    session.choose_gate_tasks(seed=1, task_ids=["c0-t", "c1-t"])
    trees: dict[str, dict[str, float]] = {
        _sha(2): {"c0-t": 0.25, "c1-t": 0.25},
        _sha(4): {"c0-t": 0.75, "c1-t": 0.25},
        _sha(6): {"c0-t": 0.5, "c1-t": 0.75},
    }
    model = session.student_model

    def reading(tree: str) -> Any:
        scores = {t: TaskScore(task_id=t, score=s) for t, s in trees[tree].items()}
        return snapshot(
            scores=scores, task_ids=list(scores), clusters=clusters, benchmark_version="v", tree_sha=tree
        )

    for tree, scores in trees.items():
        session.record_scores(
            tree_sha=tree,
            seed=1,
            student_model=model,
            scores=[{"task_id": t, "score": s} for t, s in scores.items()],
        )
    for edit, (pre, post), accepted in ((edits[0], (2, 4), True), (edits[1], (4, 6), False)):
        session.route_edit(edit_id=edit.id, route="apply")
        session.validate_edit(edit_id=edit.id, ok=True, reason="")
        session.start_apply(edit_id=edit.id, pre_sha=_sha(pre - 1), pre_tree=_sha(pre))
        session.record_apply(
            edit_id=edit.id, commit_sha=_sha(post - 1), tree_sha=_sha(post), changed_files=["x"]
        )
        decision = evaluate_gate(
            before=reading(_sha(pre)),
            after=reading(_sha(post)),
            target_cluster=edit.expected_improvement,
            max_regression=0.01,
            min_improvement=0.0,
        )
        assert decision.accepted is accepted
        session.record_gate(
            edit_id=edit.id,
            before=reading(_sha(pre)),
            after=reading(_sha(post)),
            delta=decision.delta,
            cluster_deltas=dict(decision.cluster_deltas),
            accepted=decision.accepted,
            reason=decision.reason,
        )
    session.revert_edit(edit_id="e1", revert_sha=_sha(99), tree_sha=_sha(4))
    session.complete(git_post=_sha(99))
    return session


def test_a_looser_epsilon_flips_the_rejection_and_says_it_was_reverted() -> None:
    result = regate_events(_flip_both_ways().pending_events, max_regression=0.3)
    first, second = result.gates
    assert not first.flipped and second.flipped and second.whatif_accepted
    assert [c.cluster_id for c in second.clusters] == ["c1", "c0"]  # target first
    assert (second.clusters[1].before, second.clusters[1].after) == (0.75, 0.5)
    assert any("reverted" in c and _sha(99)[:10] in c for c in second.caveats)
    assert result.flips == 1


def test_a_higher_bar_flips_the_acceptance_and_marks_the_later_gates() -> None:
    result = regate_events(_flip_both_ways().pending_events, min_improvement=0.6)
    first, second = result.gates
    assert first.flipped and first.whatif_accepted is False
    assert any("kept" in c and "still applied" in c for c in first.caveats)
    assert second.after_a_flip and not second.flipped
    assert any("earlier gate" in c for c in second.caveats)


def test_a_gate_without_cluster_scores_cannot_be_redecided() -> None:
    """A hand-made gate (no TasksScored for its trees, snapshots without per-cluster scores)."""
    session = _flip_both_ways()
    events = session.pending_events
    stripped = []
    for event in events:
        if type(event).__name__ == "TasksScored":  # as if no task score had been recorded
            event = event.__class__(**{**event.__dict__, "scores": []})
        if type(event).__name__ == "GateEvaluated":
            event = event.__class__(
                **{
                    **event.__dict__,
                    "before": {**event.before, "cluster_scores": {}},
                    "after": {**event.after, "cluster_scores": {}},
                }
            )
        stripped.append(event)
    result = regate_events(stripped, max_regression=0.5)
    assert all(not g.redecidable and g.scores_from == "none" for g in result.gates)
    assert all("per-cluster" in (g.why_not or "") for g in result.gates)
    assert result.flips == 0


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, -math.inf])
def test_a_policy_no_gate_could_run_under_is_refused(bad: float) -> None:
    events = _flip_both_ways().pending_events
    with pytest.raises(InvalidPolicy):
        regate_events(events, max_regression=bad)
    with pytest.raises(InvalidPolicy):
        regate_events(events, min_improvement=bad)


def test_a_damaged_session_never_hides_the_others() -> None:
    from distill_es.app.audit.regate import regate_sessions
    from distill_es.domain.errors import DamagedSession

    good = _flip_both_ways()
    events = good.pending_events

    def events_of(sid: str) -> list[Any]:
        if sid == "bad":
            raise DamagedSession("bad", "its events do not chain at position 3")
        return events

    report = regate_sessions(events_of, ["bad", str(good.id)], max_regression=0.3)
    assert [s.session_id for s in report.sessions] == [str(good.id)]
    assert report.skipped_sessions[0].startswith("bad: ")
    assert (report.gates, report.redecided, report.flips) == (2, 2, 1)
    assert report.limits and [g.edit_id for g in report.flipped] == ["e1"]
