from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill_es.domain.vocabulary import BenchmarkSnapshot, FailureCluster
from distill_es.phases.gate import (
    TOLERANCE,
    GateDecision,
    choose_gate_tasks,
    evaluate_gate,
    snapshot,
    stable_seed,
)
from distill_es.ports import BenchmarkTask, TaskScore

BENCH = [BenchmarkTask(task_id=f"t{i}", query=f"q{i}", reference_answer="a") for i in range(100)]


def cluster(cid: str, *task_ids: str) -> FailureCluster:
    return FailureCluster(id=cid, task_ids=list(task_ids), student_failure_rate=0.5, teacher_success_rate=1.0)


def snap(overall: float = 0.5, **clusters: float) -> BenchmarkSnapshot:
    return BenchmarkSnapshot(
        benchmark_version="v1", overall_score=overall, cluster_scores=clusters, task_count=10
    )


# --- seed and task choice ------------------------------------------------------------------------


def test_stable_seed_is_in_range_and_differs_by_session() -> None:
    seeds = {stable_seed(f"session-{i}") for i in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**31 for s in seeds)


def test_stable_seed_is_the_same_in_other_processes() -> None:
    code = "from distill_es.phases.gate import stable_seed; print(stable_seed('sess-42'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(salt), "PATH": ""},
        ).stdout.strip()
        for salt in (1, 2)
    }
    assert outputs == {str(stable_seed("sess-42"))}


def test_gate_tasks_keep_every_cluster_task_and_fill_with_a_seeded_sample() -> None:
    clusters = [cluster("a", "t90", "t5"), cluster("b", "t5", "t42", "missing")]
    chosen = choose_gate_tasks(seed=7, benchmark=BENCH, clusters=clusters, subsample_size=10)
    assert len(chosen) == 10
    assert {"t5", "t42", "t90"} <= set(chosen)
    assert chosen == sorted(chosen, key=lambda t: int(t[1:]))  # benchmark order
    assert chosen == choose_gate_tasks(seed=7, benchmark=BENCH, clusters=clusters, subsample_size=10)
    assert chosen != choose_gate_tasks(seed=8, benchmark=BENCH, clusters=clusters, subsample_size=10)


def test_cluster_tasks_are_never_dropped() -> None:
    clusters = [cluster("a", *[f"t{i}" for i in range(0, 40, 2)])]
    chosen = choose_gate_tasks(seed=1, benchmark=BENCH, clusters=clusters, subsample_size=5)
    assert chosen == [f"t{i}" for i in range(0, 40, 2)]


def test_small_benchmark_is_taken_whole() -> None:
    chosen = choose_gate_tasks(seed=1, benchmark=BENCH[:5], clusters=[], subsample_size=50)
    assert chosen == ["t0", "t1", "t2", "t3", "t4"]


# --- snapshot ------------------------------------------------------------------------------------


def scores(**values: float) -> dict[str, TaskScore]:
    return {k: TaskScore(task_id=k, score=v) for k, v in values.items()}


def test_snapshot_means() -> None:
    result = snapshot(
        scores=scores(t1=1.0, t2=0.0, t3=0.5, t4=1.0),
        task_ids=["t1", "t2", "t3", "t4"],
        clusters=[cluster("a", "t1", "t2"), cluster("b", "t3"), cluster("empty")],
        benchmark_version="v1",
        tree_sha="abc",
        elapsed_seconds=1.5,
    )
    assert result.overall_score == pytest.approx(0.625)
    assert result.cluster_scores == {"a": 0.5, "b": 0.5}  # a cluster without tasks gets no score
    assert result.task_count == 4 and result.tree_sha == "abc" and result.elapsed_seconds == 1.5


def test_snapshot_refuses_missing_scores() -> None:
    with pytest.raises(ValueError, match="t9"):
        snapshot(
            scores=scores(t1=1.0), task_ids=["t1", "t9"], clusters=[], benchmark_version="v", tree_sha=None
        )


# --- the gate ------------------------------------------------------------------------------------


def decide(
    before: BenchmarkSnapshot, after: BenchmarkSnapshot, target: str = "a", **kw: float
) -> GateDecision:
    return evaluate_gate(
        before=before,
        after=after,
        target_cluster=target,
        max_regression=kw.get("eps", 0.01),
        min_improvement=kw.get("min_improvement", 0.0),
    )


def test_accepts_when_target_improves_and_others_hold() -> None:
    decision = decide(snap(0.5, a=0.4, b=0.8), snap(0.55, a=0.6, b=0.8))
    assert decision.accepted
    assert decision.delta == pytest.approx(0.05)
    assert decision.cluster_deltas == pytest.approx({"a": 0.2, "b": 0.0})
    assert "'a'" in decision.reason and "0.4000 → 0.6000" in decision.reason


def test_overall_gain_without_target_gain_is_rejected() -> None:
    # The reference accepted on the overall delta alone (§11.4).
    decision = decide(snap(0.5, a=0.4, b=0.5), snap(0.7, a=0.4, b=0.9))
    assert not decision.accepted
    assert "target cluster 'a' did not improve" in decision.reason


def test_regression_elsewhere_is_rejected_with_numbers() -> None:
    decision = decide(snap(0.5, a=0.4, b=0.8), snap(0.6, a=0.9, b=0.7))
    assert not decision.accepted
    assert "'b' 0.8000 → 0.7000 (-0.1000)" in decision.reason and "ε=0.0100" in decision.reason


def test_drop_of_exactly_epsilon_passes_despite_float_noise() -> None:
    before, after = 0.83, 0.82
    assert after - before < -0.01  # -0.010000000000000009: the noise the tolerance absorbs
    assert decide(snap(a=0.4, b=before), snap(a=0.5, b=after)).accepted


def test_improvement_must_exceed_min_improvement() -> None:
    assert not decide(snap(a=0.4), snap(a=0.5), min_improvement=0.1).accepted
    assert decide(snap(a=0.4), snap(a=0.51), min_improvement=0.1).accepted
    assert not decide(snap(a=0.4), snap(a=0.4)).accepted


def test_missing_cluster_after_counts_as_regression() -> None:
    decision = decide(snap(a=0.4, b=0.005), snap(a=0.9))
    assert not decision.accepted and "'b' has no score after the edit" in decision.reason
    assert decision.cluster_deltas["b"] == pytest.approx(-0.005)


def test_target_without_tasks_is_rejected() -> None:
    decision = decide(snap(a=0.4), snap(a=0.9), target="ghost")
    assert not decision.accepted and "no benchmark tasks" in decision.reason


def test_cluster_deltas_cover_before_and_after() -> None:
    decision = decide(snap(a=0.4, b=0.5), snap(a=0.6, c=0.3))
    assert set(decision.cluster_deltas) == {"a", "b", "c"}


SCORE = st.floats(0, 1, allow_nan=False)


@given(
    st.dictionaries(st.sampled_from("abcde"), SCORE, min_size=1),
    st.dictionaries(st.sampled_from("abcde"), SCORE),
    st.sampled_from("abcdef"),
    st.floats(0, 0.2),
    st.floats(0, 0.2),
)
def test_gate_properties(
    before: dict[str, float], after: dict[str, float], target: str, eps: float, min_improvement: float
) -> None:
    decision = decide(snap(**before), snap(**after), target=target, eps=eps, min_improvement=min_improvement)
    assert set(decision.cluster_deltas) == set(before) | set(after)
    if decision.accepted:
        assert after[target] - before[target] > min_improvement
        for cid, old in before.items():
            if cid != target:
                assert cid in after and after[cid] - old >= -eps - TOLERANCE
    elif target in before and target in after:
        improved = after[target] - before[target] > min_improvement + TOLERANCE
        held = all(c in after and after[c] - v >= -eps - TOLERANCE for c, v in before.items() if c != target)
        assert not (improved and held)
