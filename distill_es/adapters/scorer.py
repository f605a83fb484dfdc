"""Scores benchmark tasks on the workspace as it is now: run the student, judge each answer."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from distill_es.ports import BenchmarkTask, Judge, StudentResult, StudentRunner, TaskScore

MAX_OUTPUT_CHARS = 4_000  # stored per task; the judge still sees the whole answer


class StudentScorer:
    """`Scorer`: results in the order of `tasks`. A student that could not answer scores 0.0 with the
    error recorded. Judge errors propagate: a broken judge must not look like a weaker student."""

    def __init__(self, student: StudentRunner, judge: Judge, judge_concurrency: int = 4) -> None:
        self.student, self.judge = student, judge
        self.judge_concurrency = max(1, judge_concurrency)

    def _one(self, pair: tuple[BenchmarkTask, StudentResult]) -> TaskScore:
        task, result = pair
        common = {
            "task_id": task.task_id,
            "output": result.output[:MAX_OUTPUT_CHARS],
            "model": result.model,
            "latency_seconds": result.latency_seconds,
        }
        if result.error is not None:
            return TaskScore(score=0.0, error=result.error, **common)
        verdict = self.judge.score(task, result.output)
        return TaskScore(score=verdict.score, **common)

    def score(self, tasks: Sequence[BenchmarkTask]) -> list[TaskScore]:
        if not tasks:
            return []
        results = self.student.run_many(tasks)
        if len(results) != len(tasks):
            raise RuntimeError(f"the student returned {len(results)} results for {len(tasks)} tasks")
        pairs = list(zip(tasks, results, strict=True))
        for task, result in pairs:
            if result.task_id != task.task_id:
                raise RuntimeError(
                    f"the student answered {result.task_id!r} in the place of {task.task_id!r}"
                )
        workers = min(self.judge_concurrency, len(pairs))
        if workers == 1:
            return [self._one(p) for p in pairs]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            return list(pool.map(self._one, pairs))
