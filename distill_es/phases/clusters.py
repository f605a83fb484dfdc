"""Which failure clusters carry evidence: a cluster with both rates 0 measured nothing.

The plan request shows the teacher only the surviving clusters, and freezing accepts only edits that
target one; dropped clusters stay in the plan, marked.
"""

from __future__ import annotations

from collections.abc import Iterable

from distill_es.domain.vocabulary import FailureCluster

DROPPED_PREFIX = "dropped: insufficient evidence"


def surviving_clusters(
    clusters: Iterable[FailureCluster],
) -> tuple[list[FailureCluster], list[FailureCluster]]:
    """(kept, dropped): a cluster with both rates 0 measured nothing and is dropped.

    Dropped clusters stay in the plan, their skill gap prefixed so a reader sees why.
    """
    kept: list[FailureCluster] = []
    dropped: list[FailureCluster] = []
    for cluster in clusters:
        if cluster.has_evidence:
            kept.append(cluster)
            continue
        gap = cluster.skill_gap
        if not gap.startswith(DROPPED_PREFIX):
            gap = f"{DROPPED_PREFIX} (original: {gap})"[:20_000]
        dropped.append(cluster.model_copy(update={"skill_gap": gap, "addressed_by_edit_ids": []}))
    return kept, dropped
