"""The benchmark run's event catalogue: explicit stable topics, JSON-only payloads, chained digests."""

from __future__ import annotations

from typing import Any

from distill_es.domain import chain


class BenchmarkRunEvent(chain.ChainedEvent):
    """Base of every non-initial benchmark run event."""


class BenchmarkRunStarted(chain.ChainedCreated):
    TOPIC = "distill_es.BenchmarkRunStarted.v1"
    workspace: str
    ref: str | None  # the git ref asked for; None: the working tree's managed files
    tree_sha: str  # the full tree sha scored (the key of the score cache, as in sessions)
    student_model: str  # [student] model of the settings ("" when config.toml routes)
    benchmark_version: str
    task_ids: list[str]  # every benchmark task, in benchmark order
    grouping: str  # "clusters" (of the session named by grouping_source) | "categories"
    grouping_source: str | None
    groups: dict[str, list[str]]  # group id -> its task ids
    min_score: float | None


class BenchmarkTasksScored(BenchmarkRunEvent):
    """Scores of some of the run's tasks: fresh from the student (`source` "scored") or reused from the
    score cache (`source` "session:<id>" or "benchmark_run:<id>", which recorded them for this tree)."""

    TOPIC = "distill_es.BenchmarkTasksScored.v1"
    source: str
    scores: list[dict[str, Any]]  # TaskScore


class BenchmarkRunFinished(BenchmarkRunEvent):
    TOPIC = "distill_es.BenchmarkRunFinished.v1"
    overall_score: float
    group_scores: dict[str, float]
    passed: bool | None  # None without a min_score


class BenchmarkRunFailed(BenchmarkRunEvent):
    TOPIC = "distill_es.BenchmarkRunFailed.v1"
    error: str
