"""The in-process fakes speak the contract: real anthropic Messages like the HTTP server's, students
and judges from dicts or functions, and a whole engine session that ends where the HTTP one does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest
from anthropic.types import Message
from pydantic import ValidationError

from distill_es.adapters.student import build_chat_request
from distill_es.api import Engine
from distill_es.config.settings import StudentSettings
from distill_es.demo import world
from distill_es.domain.errors import SessionInterrupted
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import LearningSession, SessionStatus
from distill_es.ports import BenchmarkTask, Judge, JudgeVerdict, StudentResult, StudentRunner, Teacher
from distill_es.testing import ScriptedJudge, ScriptedStudent, ScriptedTeacher
from distill_es.testing.servers import (
    ScriptedAnthropicServer,
    ScriptedStudentServer,
    text_reply,
    tool_use_reply,
)

TOOLS = [
    {"name": "lookup", "description": "Look it up.", "input_schema": {"type": "object", "properties": {}}}
]
REQUESTS = [
    {"model": "claude-opus-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "claude-opus-4-6",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "You diagnose. " * 40, "cache_control": {"type": "ephemeral"}}],
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "look something up"}],
    },
    {  # the same cached prefix again: the usage must report a cache read, as the API does
        "model": "claude-opus-4-6",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "You diagnose. " * 40, "cache_control": {"type": "ephemeral"}}],
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "and something else"}],
    },
]
SCRIPT = [text_reply("hello"), tool_use_reply("lookup", {"q": "x"}, text="Looking."), "plain string reply"]

TASK = BenchmarkTask(task_id="m1", query="What is 17 * 3?", reference_answer="51")


def test_scripted_teacher_returns_the_messages_the_http_server_returns():
    teacher = ScriptedTeacher(list(SCRIPT))
    with ScriptedAnthropicServer(list(SCRIPT)) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
        over_http = [client.messages.create(**request) for request in REQUESTS]
    in_process = [teacher.messages.create(**request) for request in REQUESTS]

    assert all(isinstance(m, Message) for m in in_process)
    assert [m.model_dump() for m in in_process] == [m.model_dump() for m in over_http]
    assert in_process[1].content[1].type == "tool_use" and in_process[1].content[1].id.startswith("toolu_")
    assert in_process[1].stop_reason == "tool_use"
    assert in_process[2].usage.cache_read_input_tokens > 0
    assert teacher.requests == REQUESTS == server.requests
    assert isinstance(teacher, Teacher)


def test_ids_are_derived_from_the_request():
    one, two = ScriptedTeacher(world.teacher_reply), ScriptedTeacher(world.teacher_reply)
    first = one.messages.create(**REQUESTS[0])
    assert first.id == two.messages.create(**REQUESTS[0]).id
    assert first.id != one.messages.create(**{**REQUESTS[0], "max_tokens": 65}).id


def test_a_list_script_is_consumed_in_order_and_its_end_is_a_bad_request():
    teacher = ScriptedTeacher([text_reply("one")])
    assert teacher.messages.create(**REQUESTS[0]).content[0].text == "one"
    with pytest.raises(anthropic.BadRequestError) as refused:
        teacher.messages.create(**REQUESTS[0])
    assert "script exhausted" in str(refused.value)
    assert teacher.errors == [refused.value.api_message]
    assert len(teacher.requests) == 2


def test_requests_the_api_would_refuse_are_refused():
    teacher = ScriptedTeacher(world.teacher_reply)
    with pytest.raises(anthropic.BadRequestError, match="missing required fields: max_tokens"):
        teacher.messages.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError, match="does not stream"):
        teacher.messages.create(**REQUESTS[0], stream=True)


def test_client_options_and_unset_values_stay_out_of_the_request_body():
    teacher = ScriptedTeacher(lambda request: text_reply(str(sorted(request))))
    message = teacher.messages.create(
        **REQUESTS[0], timeout=5, extra_headers={"x": "y"}, temperature=anthropic.NOT_GIVEN,
        extra_body={"metadata": {"user_id": "u"}},
    )  # fmt: skip
    assert message.content[0].text == "['max_tokens', 'messages', 'metadata', 'model']"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (529, anthropic.InternalServerError),
        (429, anthropic.RateLimitError),
        (401, anthropic.AuthenticationError),
    ],
)
def test_injected_failures_raise_the_sdk_error_for_their_status(status: int, error: type[Exception]):
    teacher = ScriptedTeacher([text_reply("after the failure")])
    teacher.fail_next(status)
    with pytest.raises(error) as failed:
        teacher.messages.create(**REQUESTS[0])
    assert failed.value.status_code == status
    assert teacher.messages.create(**REQUESTS[0]).content[0].text == "after the failure"


def test_scripted_student_answers_by_task_id_then_query_then_default():
    student = ScriptedStudent({"m1": "51", "What is 2 + 2?": "4"}, default="no idea")
    other = BenchmarkTask(task_id="x9", query="What is 2 + 2?", reference_answer="4")
    unknown = BenchmarkTask(task_id="x10", query="?", reference_answer="")
    results = student.run_many([TASK, other, unknown])
    assert [(r.task_id, r.output) for r in results] == [("m1", "51"), ("x9", "4"), ("x10", "no idea")]
    assert {r.model for r in results} == {"scripted-student"}
    assert [t.task_id for t in student.tasks] == ["m1", "x9", "x10"]
    assert isinstance(student, StudentRunner)
    with pytest.raises(LookupError, match="no answer for task 'x10'"):
        ScriptedStudent({"m1": "51"}).run(unknown)


def test_scripted_student_from_a_function_may_return_whole_results():
    def answer(task: BenchmarkTask) -> str | StudentResult:
        if task.task_id == "down":
            return StudentResult(task_id=task.task_id, error="the endpoint timed out", model="m")
        return task.query.upper()

    student = ScriptedStudent(answer)
    down = BenchmarkTask(task_id="down", query="q", reference_answer="r")
    assert student.run(TASK).output == "WHAT IS 17 * 3?"
    assert student.run(down).error == "the endpoint timed out"


def test_scripted_judge_scores_by_exact_answer_then_task_then_default():
    judge = ScriptedJudge({("m1", "51"): 1.0, "m1": 0.25, "g1": JudgeVerdict(score=0.5, reasoning="half")})
    assert judge.score(TASK, "51").score == 1.0
    assert judge.score(TASK, "41").score == 0.25
    g1 = BenchmarkTask(task_id="g1", query="q", reference_answer="r")
    assert judge.score(g1, "anything") == JudgeVerdict(score=0.5, reasoning="half")
    assert judge.calls == [("m1", "51"), ("m1", "41"), ("g1", "anything")]
    assert isinstance(judge, Judge)
    other = BenchmarkTask(task_id="zz", query="q", reference_answer="r")
    with pytest.raises(LookupError, match="no score for task 'zz'"):
        judge.score(other, "x")
    assert ScriptedJudge({}, default=0.0).score(other, "x").score == 0.0
    assert (
        ScriptedJudge(lambda task, output: float(output == task.reference_answer)).score(TASK, "51").score
        == 1.0
    )
    with pytest.raises(ValidationError):  # a score outside [0, 1] is the script's bug, not a verdict
        ScriptedJudge({"m1": 1.5}).score(TASK, "51")


# --- whole sessions ------------------------------------------------------------------------------


def toy_student(home: Path) -> ScriptedStudent:
    """The demo world's student as a script: its answer depends on the workspace, as a real one's does."""

    def answer(task: BenchmarkTask) -> StudentResult:
        request = build_chat_request(home, task, StudentSettings())
        return StudentResult(task_id=task.task_id, output=world.toy_answer(request), model=request["model"])

    return ScriptedStudent(answer)


def summary(view: LearningSession) -> dict:
    """What a session reached, without what differs between runs (ids, times, commit shas)."""
    return {
        "status": view.status,
        "outcomes": [
            (o.edit_id, o.status, o.benchmark_delta, o.cluster_deltas, o.error) for o in view.edit_outcomes
        ],
        "before": view.benchmark_before.model_dump(exclude={"tree_sha", "captured_at"}),
        "after": view.benchmark_after.model_dump(exclude={"tree_sha", "captured_at"}),
        "student_calls": (view.student_calls_made, view.student_calls_reused),
    }


def test_a_session_on_the_fakes_ends_where_the_http_served_one_does(
    workspace_factory: Callable[..., Path],
):
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        http_home = workspace_factory(demo=True, student_url=student_server.base_url)
        client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
        http = Engine.open(http_home, teacher=client)
        try:
            over_http = http.run_session(OnDemandTrigger())
            http_types = [h["type"] for h in http.history(over_http.id)]
        finally:
            http.close()

    home = workspace_factory(demo=True)
    teacher = ScriptedTeacher(world.teacher_reply)
    engine = Engine.open(home, teacher=teacher, student=toy_student(home))
    try:
        in_process = engine.run_session(OnDemandTrigger())
        assert in_process.status == SessionStatus.AWAITING_REVIEW
        assert summary(in_process) == summary(over_http)
        assert [h["type"] for h in engine.history(in_process.id)] == http_types
        # The usage depends on the request size, and the HTTP student's latencies reach the teacher.
        assert in_process.teacher_cost_usd == pytest.approx(over_http.teacher_cost_usd, rel=0.02)
        assert len(teacher.requests) == len(teacher_server.requests) == 5
        assert [r.ok for r in engine.verify(in_process.id)] == [True]
    finally:
        engine.close()


def test_a_teacher_outage_interrupts_the_session_and_a_rerun_resumes_it(
    workspace_factory: Callable[..., Path],
):
    home = workspace_factory(demo=True)
    teacher = ScriptedTeacher(world.teacher_reply)
    teacher.fail_next(529, count=2)  # one retry, then the outage interrupts
    engine = Engine.open(home, teacher=teacher, student=toy_student(home), judge=ScriptedJudge(
        lambda task, output: float(output == task.reference_answer)),
        settings={"network": {"max_retries": 1, "backoff_seconds": 0.01}})  # fmt: skip
    try:
        sid = engine.start(OnDemandTrigger())
        with pytest.raises(SessionInterrupted, match=r"teacher endpoint .* failed after 2 attempts"):
            engine.run(sid)
        assert engine.get(sid).status == SessionStatus.DIAGNOSING
        resumed = engine.run(sid)
        assert Counter(o.status for o in resumed.edit_outcomes) == Counter(
            {"applied": 1, "rejected_by_gate": 1, "pending_review": 1}
        )
        # The failed request was asked again, identically; no teacher turn was recorded twice.
        assert teacher.requests[0] == teacher.requests[1] == teacher.requests[2]
        assert [h["type"] for h in engine.history(sid)].count("TeacherCallCompleted") == 5
    finally:
        engine.close()
