"""The benchmark run's read model, and the comparison of two runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from distill_es.domain.vocabulary import Value


class GroupScore(Value):
    group: str
    task_ids: list[str]
    score: float | None = None  # None until the run has finished


class BenchmarkRunView(Value):
    id: str
    workspace: str
    status: str  # running | finished | failed
    ref: str | None
    tree_sha: str
    student_model: str
    benchmark_version: str
    grouping: str  # clusters | categories
    grouping_source: str | None = None
    groups: list[GroupScore] = Field(default_factory=list)
    task_count: int
    scored: int  # tasks scored fresh by the student in this run
    reused: int  # tasks whose scores came from the score cache
    reused_from: list[str] = Field(default_factory=list)  # session:<id> | benchmark_run:<id>
    overall_score: float | None = None
    min_score: float | None = None
    passed: bool | None = None
    error: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    version: int = 0


class GroupDelta(Value):
    group: str
    before: float | None
    after: float | None
    delta: float | None


class BenchmarkComparison(Value):
    before: BenchmarkRunView
    after: BenchmarkRunView
    overall_delta: float | None
    groups: list[GroupDelta]
