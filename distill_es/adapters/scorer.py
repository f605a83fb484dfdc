"""Scores benchmark tasks on the workspace as it is now: run the student, judge each answer."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from distill_es.ports import (
    BenchmarkTask,
    Judge,
    ScoreObserver,
    StudentResult,
    StudentRunner,
    TaskScore,
    accepts_keyword,
)

MAX_OUTPUT_CHARS = 4_000  # stored per task; the judge still sees the whole answer


class StudentScorer:
    """`Scorer`: results in the order of `tasks`. A student whose endpoint refused the one request
    (400/413/422: e.g. a context too long for this task) scores 0.0 with the error recorded. An endpoint
    that is down (`EndpointUnavailable`, after the adapter's retries) propagates, and so do judge
    errors: nothing of the batch is scored, because a dead student or a broken judge must not look
    like a weaker student.

    Each answer goes to the judge as soon as it arrives (when the runner reports answers as they come),
    so judging overlaps the student's slower calls, and `on_scored` hears of every task as it is
    scored, which is what the live progress display counts."""

    def __init__(self, student: StudentRunner, judge: Judge, judge_concurrency: int = 4) -> None:
        self.student, self.judge = student, judge
        self.judge_concurrency = max(1, judge_concurrency)
        self._streams = accepts_keyword(student.run_many, "on_result")

    def _judged(self, task: BenchmarkTask, result: StudentResult) -> TaskScore:
        if result.task_id != task.task_id:
            raise RuntimeError(f"the student answered {result.task_id!r} in the place of {task.task_id!r}")
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

    def score(
        self, tasks: Sequence[BenchmarkTask], on_scored: ScoreObserver | None = None
    ) -> list[TaskScore]:
        if not tasks:
            return []
        futures: dict[int, Future[TaskScore]] = {}
        workers = min(self.judge_concurrency, len(tasks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as judges:

            def judge(index: int, result: StudentResult) -> None:
                if index in futures or not 0 <= index < len(tasks):
                    raise RuntimeError(f"the student reported task index {index} out of place")
                future = judges.submit(self._judged, tasks[index], result)
                if on_scored is not None:
                    future.add_done_callback(lambda done: _report(on_scored, index, done))
                futures[index] = future

            if self._streams:
                results = self.student.run_many(tasks, on_result=judge)
            else:
                results = self.student.run_many(tasks)
            if len(results) != len(tasks):
                raise RuntimeError(f"the student returned {len(results)} results for {len(tasks)} tasks")
            for index, result in enumerate(results):  # a runner that did not report as it went
                if index not in futures:
                    judge(index, result)
            return [futures[index].result() for index in range(len(tasks))]


def _report(on_scored: ScoreObserver, index: int, done: Future[TaskScore]) -> None:
    if done.exception() is None:  # a judge error is raised to the caller by `score`, not reported
        on_scored(index, done.result())
