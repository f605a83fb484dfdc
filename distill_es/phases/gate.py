"""The benchmark gate: which tasks to score, snapshots of scores, and the keep-or-revert decision.

Fixes to the reference (spec search §6, §11.4-5):
- the seed is a sha256 digest of the session id, the same in every process (never `hash()`);
- the predicate is the documented one: the edit's *target* cluster must improve by more than
  `min_improvement`, and no other cluster may drop by more than ε; per-cluster deltas are returned;
- the caller passes the snapshot to compare against (the latest accepted one, so deltas are marginal).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping

from pydantic import Field

from distill_es.domain.vocabulary import BenchmarkSnapshot, FailureCluster, Value
from distill_es.ports import BenchmarkTask, TaskScore

# Scores are means of floats: a drop of exactly ε may come out as 0.010000000000000009.
TOLERANCE = 1e-9


class GateDecision(Value):
    accepted: bool
    reason: str
    delta: float  # overall score, after − before
    cluster_deltas: dict[str, float] = Field(default_factory=dict)  # every cluster in before ∪ after
    target_delta: float | None = None


def stable_seed(session_id: str) -> int:
    """A seed in [0, 2**31) that is the same for a session id in every process."""
    digest = hashlib.sha256(session_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


def choose_gate_tasks(
    *, seed: int, benchmark: list[BenchmarkTask], clusters: Iterable[FailureCluster], subsample_size: int
) -> list[str]:
    """Every task a cluster names, plus a seeded sample of the others up to `subsample_size` in all.

    Cluster tasks are never dropped, even when they alone exceed `subsample_size`. The result is in
    benchmark order, without duplicates.
    """
    order = list(dict.fromkeys(task.task_id for task in benchmark))
    named = {task_id for cluster in clusters for task_id in cluster.task_ids}
    cluster_tasks = [task_id for task_id in order if task_id in named]
    others = [task_id for task_id in order if task_id not in named]
    room = max(0, subsample_size - len(cluster_tasks))
    sampled = set(random.Random(seed).sample(others, min(room, len(others))))
    return [task_id for task_id in order if task_id in named or task_id in sampled]


def _mean(values: list[float]) -> float:
    return min(1.0, max(0.0, math.fsum(values) / len(values)))


def snapshot(
    *,
    scores: Mapping[str, TaskScore],
    task_ids: list[str],
    clusters: Iterable[FailureCluster],
    benchmark_version: str,
    tree_sha: str | None,
    elapsed_seconds: float = 0.0,
) -> BenchmarkSnapshot:
    """Overall = mean over `task_ids`; per cluster = mean over its own task ids.

    A cluster without tasks gets no score (the gate then cannot accept edits that target it).
    A task that should be scored but has no score is an error of the caller: `ValueError`.
    """
    clusters = list(clusters)
    needed = list(dict.fromkeys([*task_ids, *(t for c in clusters for t in c.task_ids)]))
    missing = [task_id for task_id in needed if task_id not in scores]
    if missing:
        raise ValueError(f"no score for task(s) {', '.join(missing[:10])}")
    unique_ids = list(dict.fromkeys(task_ids))
    overall = _mean([scores[t].score for t in unique_ids]) if unique_ids else 0.0
    cluster_scores = {
        cluster.id: _mean([scores[t].score for t in dict.fromkeys(cluster.task_ids)])
        for cluster in clusters
        if cluster.task_ids
    }
    return BenchmarkSnapshot(
        benchmark_version=benchmark_version,
        overall_score=overall,
        cluster_scores=cluster_scores,
        task_count=len(unique_ids),
        elapsed_seconds=elapsed_seconds,
        tree_sha=tree_sha,
    )


def evaluate_gate(
    *,
    before: BenchmarkSnapshot,
    after: BenchmarkSnapshot,
    target_cluster: str,
    max_regression: float,
    min_improvement: float,
) -> GateDecision:
    """Accept iff the target cluster improves by more than `min_improvement` and no other cluster
    drops by more than `max_regression` (ε; a drop of exactly ε passes). A cluster missing from
    `after` counts as a full regression."""
    old, new = before.cluster_scores, after.cluster_scores
    delta = after.overall_score - before.overall_score
    ids = list(dict.fromkeys([*old, *new]))
    cluster_deltas = {c: new.get(c, 0.0) - old.get(c, 0.0) for c in ids}

    def reject(reason: str, target_delta: float | None = None) -> GateDecision:
        return GateDecision(
            accepted=False,
            reason=reason,
            delta=delta,
            cluster_deltas=cluster_deltas,
            target_delta=target_delta,
        )

    if target_cluster not in old and target_cluster not in new:
        return reject(
            f"target cluster {target_cluster!r} has no score: it has no benchmark tasks, so the gate "
            "cannot measure the edit"
        )
    if target_cluster not in old or target_cluster not in new:
        side = "before" if target_cluster not in old else "after"
        return reject(f"target cluster {target_cluster!r} has no score {side} the edit")

    problems: list[str] = []
    target_delta = cluster_deltas[target_cluster]
    if not target_delta > min_improvement + TOLERANCE:
        problems.append(
            f"target cluster {target_cluster!r} did not improve by more than {min_improvement:.4f}: "
            f"{old[target_cluster]:.4f} → {new[target_cluster]:.4f} ({target_delta:+.4f})"
        )
    regressed = []
    for cluster_id in old:
        if cluster_id == target_cluster:
            continue
        if cluster_id not in new:
            regressed.append(f"{cluster_id!r} has no score after the edit (was {old[cluster_id]:.4f})")
        elif (drop := cluster_deltas[cluster_id]) < -max_regression - TOLERANCE:
            regressed.append(f"{cluster_id!r} {old[cluster_id]:.4f} → {new[cluster_id]:.4f} ({drop:+.4f})")
    if regressed:
        problems.append(f"regression beyond ε={max_regression:.4f}: " + "; ".join(regressed))
    if problems:
        return reject("; ".join(problems), target_delta)
    return GateDecision(
        accepted=True,
        reason=(
            f"target cluster {target_cluster!r} improved {old[target_cluster]:.4f} → "
            f"{new[target_cluster]:.4f} ({target_delta:+.4f} > {min_improvement:.4f}); no other cluster "
            f"dropped by more than ε={max_regression:.4f}"
        ),
        delta=delta,
        cluster_deltas=cluster_deltas,
        target_delta=target_delta,
    )
