from __future__ import annotations

import threading
import time

import pytest

from distill_es.adapters.judge import MatchJudge
from distill_es.adapters.scorer import MAX_OUTPUT_CHARS, StudentScorer
from distill_es.adapters.student import OpenAIStudent
from distill_es.config.settings import StudentSettings
from distill_es.ports import BenchmarkTask, JudgeVerdict, Scorer, StudentResult
from distill_es.testing.servers import ScriptedStudentServer, last_user_text

TASKS = [
    BenchmarkTask(task_id="capital", query="Capital of France?", reference_answer="Paris"),
    BenchmarkTask(task_id="sum", query="2+2?", reference_answer="4"),
    BenchmarkTask(task_id="long", query="Write a lot", reference_answer="needle"),
    BenchmarkTask(task_id="broken", query="fail please", reference_answer="x"),
]


def answer(request):
    query = last_user_text(request)
    if query == "fail please":
        raise RuntimeError("boom")  # the test server answers 400: not retried
    return {"Capital of France?": "It is Paris.", "2+2?": "5", "Write a lot": "word " * 2000 + "needle"}[
        query
    ]


@pytest.fixture
def scorer(student_home):
    with ScriptedStudentServer(answer, latency=0.02) as server:
        settings = StudentSettings(base_url=server.base_url, max_retries=0, timeout_seconds=5)
        yield StudentScorer(OpenAIStudent(student_home, settings), MatchJudge())


def test_scores_in_task_order_with_errors_and_truncation(scorer):
    assert isinstance(scorer, Scorer)
    scores = scorer.score(TASKS)
    assert [s.task_id for s in scores] == ["capital", "sum", "long", "broken"]
    assert [s.score for s in scores] == [1.0, 0.0, 1.0, 0.0]
    assert scores[0].output == "It is Paris." and scores[0].model == "qwen3:8b"
    assert len(scores[2].output) == MAX_OUTPUT_CHARS  # stored truncated; judged on the whole answer
    assert "BadRequestError" in scores[3].error and "boom" in scores[3].error
    assert scores[3].score == 0.0 and scores[3].output == ""
    assert all(s.error is None for s in scores[:3])
    assert scorer.score([]) == []


def test_every_task_is_reported_once_as_it_is_scored(scorer):
    seen: list[tuple[int, str, float]] = []
    scores = scorer.score(TASKS, on_scored=lambda i, s: seen.append((i, s.task_id, s.score)))
    assert sorted(seen) == [(i, s.task_id, s.score) for i, s in enumerate(scores)]


class _BatchOnlyStudent:
    """A runner written before `on_result` existed: answers the whole batch at once."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def run(self, task: BenchmarkTask) -> StudentResult:
        return StudentResult(task_id=task.task_id, output=task.reference_answer, model="m")

    def run_many(self, tasks):  # type: ignore[no-untyped-def]
        self.batches.append([t.task_id for t in tasks])
        return [self.run(t) for t in tasks]


def test_a_runner_without_on_result_still_scores_and_reports():
    student = _BatchOnlyStudent()
    seen: list[int] = []
    scores = StudentScorer(student, MatchJudge()).score(TASKS, on_scored=lambda i, _: seen.append(i))
    assert [s.score for s in scores] == [1.0] * 4 and sorted(seen) == [0, 1, 2, 3]
    assert student.batches == [[t.task_id for t in TASKS]]


def test_answers_are_judged_while_the_student_is_still_running():
    """The judge sees the first answer before the student has answered the last task."""
    student_done = threading.Event()
    judged_early: list[bool] = []

    class SlowStudent(_BatchOnlyStudent):
        def run_many(self, tasks, on_result=None):  # type: ignore[no-untyped-def]
            results = []
            for index, task in enumerate(tasks):
                results.append(self.run(task))
                on_result(index, results[-1])
                time.sleep(0.05)
            student_done.set()
            return results

    class NotingJudge(MatchJudge):
        def score(self, task, output):  # type: ignore[no-untyped-def]
            judged_early.append(not student_done.is_set())
            return super().score(task, output)

    scores = StudentScorer(SlowStudent(), NotingJudge()).score(TASKS)
    assert [s.score for s in scores] == [1.0] * 4
    assert judged_early[0] is True


def test_a_judge_error_propagates_and_is_not_reported_as_a_score():
    class BrokenJudge:
        def score(self, task, output):  # type: ignore[no-untyped-def]
            if task.task_id == "sum":
                raise RuntimeError("judge is down")
            return JudgeVerdict(score=1.0)

    seen: list[str] = []
    with pytest.raises(RuntimeError, match="judge is down"):
        StudentScorer(_BatchOnlyStudent(), BrokenJudge()).score(
            TASKS, on_scored=lambda _, s: seen.append(s.task_id)
        )
    assert "sum" not in seen


def test_an_answer_to_the_wrong_task_is_refused():
    class Confused(_BatchOnlyStudent):
        def run_many(self, tasks):  # type: ignore[no-untyped-def]
            return [self.run(t) for t in reversed(tasks)]

    with pytest.raises(RuntimeError, match="in the place of"):
        StudentScorer(Confused(), MatchJudge()).score(TASKS)
