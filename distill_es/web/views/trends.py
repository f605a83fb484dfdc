"""Trends across the workspace's sessions: benchmark score per cluster (after each session, else
before) and the teacher spend, per session and cumulative, oldest first."""

from __future__ import annotations

from typing import Any

from distill_es.web import charts
from distill_es.web.reads import AuditReader


def context(reader: AuditReader) -> dict[str, Any]:
    sessions = [s for s in reversed(reader.sessions()) if s.get("status") != "damaged"]
    labels = [f"{i + 1}" for i in range(len(sessions))]
    snapshots = [s.get("benchmark_after") or s.get("benchmark_before") or {} for s in sessions]
    clusters = list(dict.fromkeys(c for snap in snapshots for c in snap.get("cluster_scores", {})))
    per_cluster: dict[str, list[float | None]] = {
        c: [snap.get("cluster_scores", {}).get(c) for snap in snapshots] for c in clusters
    }
    per_cluster["overall"] = [snap.get("overall_score") for snap in snapshots]
    spend, total = [], 0.0
    for s in sessions:
        total += float(s.get("teacher_cost_usd") or 0.0)
        spend.append(total)
    rows = [
        {"n": label, "session": s, "snapshot": snap, "cumulative": cum}
        for label, s, snap, cum in zip(labels, sessions, snapshots, spend, strict=True)
    ]
    return {
        "rows": rows,
        "clusters": clusters,
        "score_chart": charts.lines(labels, per_cluster, top=1.0),
        "spend_chart": charts.lines(
            labels,
            {
                "per session": [float(s.get("teacher_cost_usd") or 0.0) for s in sessions],
                "cumulative": spend,
            },
            fmt=".4f",
        ),
    }
