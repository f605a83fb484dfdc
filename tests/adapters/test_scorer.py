from __future__ import annotations

import pytest

from distill_es.adapters.judge import MatchJudge
from distill_es.adapters.scorer import MAX_OUTPUT_CHARS, StudentScorer
from distill_es.adapters.student import OpenAIStudent
from distill_es.ports import BenchmarkTask, Scorer
from distill_es.settings import StudentSettings
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
