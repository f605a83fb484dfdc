"""The benchmark run's rules, pure: how tasks are grouped and how a tree's scores add up.

Groups are the failure clusters of the latest diagnosis when there is one (each names the tasks that
measure it, as in the gate), else the tasks' `category` ("uncategorized" for tasks without one).
Scores are means, as in the gate: overall over every task, per group over its own tasks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from distill_es.domain.vocabulary import FailureCluster

UNCATEGORIZED = "uncategorized"


def group_tasks(
    tasks: Iterable[tuple[str, str | None]], clusters: Iterable[FailureCluster] = ()
) -> tuple[str, dict[str, list[str]]]:
    """("clusters" | "categories", group id -> task ids) for (task_id, category) pairs in benchmark
    order. Clusters whose tasks are all gone from the benchmark are left out."""
    order = [task_id for task_id, _ in tasks]
    known = set(order)
    by_cluster = {c.id: [t for t in dict.fromkeys(c.task_ids) if t in known] for c in clusters if c.task_ids}
    by_cluster = {cid: ids for cid, ids in by_cluster.items() if ids}
    if by_cluster:
        return "clusters", by_cluster
    by_category: dict[str, list[str]] = {}
    for task_id, category in tasks:
        by_category.setdefault(category or UNCATEGORIZED, []).append(task_id)
    return "categories", by_category


def mean(values: list[float]) -> float:
    return min(1.0, max(0.0, math.fsum(values) / len(values))) if values else 0.0


def summarize(
    scores: Mapping[str, float], task_ids: list[str], groups: Mapping[str, list[str]]
) -> tuple[float, dict[str, float]]:
    """(overall, per group) from the scores of every task."""
    overall = mean([scores[t] for t in task_ids])
    return overall, {gid: mean([scores[t] for t in ids]) for gid, ids in groups.items()}


def passes(overall: float, min_score: float | None) -> bool | None:
    """None without a threshold; a score equal to the threshold passes."""
    return None if min_score is None else overall >= min_score - 1e-9


def deltas(
    before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """group -> (before, after, after − before) over the groups of either side."""
    ids = list(dict.fromkeys([*before, *after]))
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for gid in ids:
        b, a = before.get(gid), after.get(gid)
        out[gid] = (b, a, None if a is None or b is None else a - b)
    return out
