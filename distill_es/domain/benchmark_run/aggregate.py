"""`BenchmarkRun`: the tree a run scored, where each score came from, and the result, as events.

Commands decide with the rulebook (`lifecycle`) and the rules (`rules`), then record one event;
`evolve` only assigns. `distill_es.app.benchmark_run` drives it.
"""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain import chain
from distill_es.domain.benchmark_run import rules
from distill_es.domain.benchmark_run.events import (
    BenchmarkRunFailed,
    BenchmarkRunFinished,
    BenchmarkRunStarted,
    BenchmarkTasksScored,
)
from distill_es.domain.benchmark_run.lifecycle import decide
from distill_es.domain.benchmark_run.views import BenchmarkRunView, GroupScore
from distill_es.domain.errors import DistillError


class BenchmarkRun(chain.ChainedRecording, Aggregate):
    @classmethod
    def begin(
        cls,
        *,
        run_id: UUID,
        workspace: str,
        ref: str | None,
        tree_sha: str,
        student_model: str,
        benchmark_version: str,
        task_ids: list[str],
        grouping: str,
        grouping_source: str | None,
        groups: dict[str, list[str]],
        min_score: float | None,
    ) -> BenchmarkRun:
        if not task_ids:
            raise DistillError("a benchmark run needs at least one task")
        return cls._create_chained(
            BenchmarkRunStarted,
            run_id,
            workspace=workspace,
            ref=ref,
            tree_sha=tree_sha,
            student_model=student_model,
            benchmark_version=benchmark_version,
            task_ids=list(task_ids),
            grouping=grouping,
            grouping_source=grouping_source,
            groups={gid: list(ids) for gid, ids in groups.items()},
            min_score=min_score,
        )

    def __init__(self) -> None:
        pass  # state is assigned by evolve(BenchmarkRunStarted), like every other event

    # --- facts the rules read ----------------------------------------------------------------------
    @property
    def unscored(self) -> list[str]:
        return [t for t in self.task_ids if t not in self.scores]

    # --- commands: decide, then record ------------------------------------------------------------
    def record_scores(self, *, source: str, scores: list[dict[str, Any]]) -> None:
        if not scores:
            return
        ids = [str(s["task_id"]) for s in scores]
        self._decide("record_scores", task_ids=ids)
        if len(set(ids)) != len(ids):
            raise DistillError(f"benchmark run {self.id}: a task is scored twice in one batch")
        self._record(BenchmarkTasksScored, source=source, scores=scores)

    def finish(self) -> None:
        self._decide("finish")
        values = {t: float(self.scores[t]["score"]) for t in self.task_ids}
        overall, group_scores = rules.summarize(values, self.task_ids, self.groups)
        self._record(
            BenchmarkRunFinished,
            overall_score=overall,
            group_scores=group_scores,
            passed=rules.passes(overall, self.min_score),
        )

    def fail(self, *, error: str) -> None:
        self._decide("fail")
        self._record(BenchmarkRunFailed, error=error)

    def _decide(self, command: str, **data: Any) -> None:
        decide(self.status, self.unscored, command, data, str(self.id))

    # --- evolve: assignments only -----------------------------------------------------------------
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__} on a benchmark run")

    @evolve.register
    def _(self, e: BenchmarkRunStarted) -> None:
        self.status = "running"
        self.started = e
        self.task_ids = list(e.task_ids)
        self.groups = {gid: list(ids) for gid, ids in e.groups.items()}
        self.min_score = e.min_score
        self.scores: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}  # task id -> where its score came from
        self.finished: BenchmarkRunFinished | None = None
        self.error: str | None = None
        self.ended_at = None
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: BenchmarkTasksScored) -> None:
        for score in e.scores:
            self.scores[str(score["task_id"])] = score
            self.sources[str(score["task_id"])] = e.source
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: BenchmarkRunFinished) -> None:
        self.status, self.finished, self.ended_at = "finished", e, e.timestamp
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: BenchmarkRunFailed) -> None:
        self.status, self.error, self.ended_at = "failed", e.error, e.timestamp
        self.last_digest = e.digest

    # --- view --------------------------------------------------------------------------------------
    def view(self) -> BenchmarkRunView:
        s, f = self.started, self.finished
        group_scores = f.group_scores if f is not None else {}
        reused = [src for src in self.sources.values() if src != "scored"]
        return BenchmarkRunView(
            id=str(self.id),
            workspace=s.workspace,
            status=self.status,
            ref=s.ref,
            tree_sha=s.tree_sha,
            student_model=s.student_model,
            benchmark_version=s.benchmark_version,
            grouping=s.grouping,
            grouping_source=s.grouping_source,
            groups=[
                GroupScore(group=gid, task_ids=ids, score=group_scores.get(gid))
                for gid, ids in self.groups.items()
            ],
            task_count=len(self.task_ids),
            scored=len(self.sources) - len(reused),
            reused=len(reused),
            reused_from=sorted(set(reused)),
            overall_score=f.overall_score if f is not None else None,
            min_score=self.min_score,
            passed=f.passed if f is not None else None,
            error=self.error,
            started_at=s.timestamp,
            finished_at=self.ended_at,
            version=self.version,
        )


BenchmarkRun.TOPIC = "distill_es.BenchmarkRun"  # stable aggregate topic, as Session's and Loop's
register_topic(BenchmarkRun.TOPIC, BenchmarkRun)
