"""Outside failures are interruptions, not results: a dead, failing or garbling student, judge or
teacher stops the step (recorded as `StepInterrupted`, state unchanged, nothing scored), and resuming
once the endpoint is back ends exactly where an uninterrupted run does. Real HTTP servers throughout."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.adapters.judge import TeacherJudge
from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.errors import EndpointUnavailable
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import MALFORMED, ScriptedAnthropicServer, ScriptedStudentServer
from tests.engine.conftest import outcome_of

FAST_NETWORK = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.02, "max_rate_limit_wait_seconds": 2}
SETTINGS = {"student": {"max_retries": 1, "timeout_seconds": 5}, "network": FAST_NETWORK}


def comparable(engine: Engine, sid: str) -> dict[str, Any]:
    """What an interruption must not change: the outcome (ids, shas and times aside)."""
    view = engine.get(sid)
    return {
        **outcome_of(view),
        "scores": sorted(
            (s["task_id"], s["score"], s["output"], s["error"])
            for e in engine.store.domain_events(sid)
            if isinstance(e, ev.TasksScored)
            for s in e.scores
        ),
        "interruption": view.interruption,
    }


def events_of(engine: Engine, sid: str, kind: type) -> list[Any]:
    return [e for e in engine.store.domain_events(sid) if isinstance(e, kind)]


def teacher_client(server: ScriptedAnthropicServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path_factory.mktemp("ref") / "ws", student_server.base_url)
        engine = Engine.open(home, teacher=teacher_client(teacher_server), settings=SETTINGS)
        session = engine.run_session(OnDemandTrigger())
        assert session.status == "awaiting_review"
        return comparable(engine, session.id)


class StudentAtScoring:
    """A student server with a hook on its n-th chat request after the first ScoreTree step began."""

    def __init__(self, home_factory: Callable[[str], Path], hook: Callable[[StudentAtScoring], None]) -> None:
        self.scoring_requests = 0
        self.scoring = False
        self.hook = hook
        self.server = ScriptedStudentServer(self.answer)
        self.home = home_factory(self.server.base_url)

    def answer(self, request: dict[str, Any]) -> str:
        if self.scoring:
            self.scoring_requests += 1
            if self.scoring_requests == 3:
                self.hook(self)
        return world.toy_answer(request)

    def on_step(self, _view: Any, step: Any) -> None:
        if step.kind == "ScoreTree":
            self.scoring = True


@pytest.fixture
def demo_home(tmp_path: Path) -> Callable[[str], Path]:
    return lambda url: world.create_demo_workspace(tmp_path / "ws", student_url=url)


@pytest.fixture
def teacher_server() -> Iterator[ScriptedAnthropicServer]:
    with ScriptedAnthropicServer(world.teacher_reply) as server:
        yield server


def _assert_interrupted_at_scoring(engine: Engine, sid: str, error_class: str) -> ev.StepInterrupted:
    view = engine.get(sid)
    assert view.status == "executing"  # where it was: resumable, not completed, not failed
    assert events_of(engine, sid, ev.TasksScored) == []  # nothing scored from failed calls
    assert events_of(engine, sid, ev.GateEvaluated) == []
    [interrupted] = events_of(engine, sid, ev.StepInterrupted)
    assert (interrupted.step, interrupted.role, interrupted.error_class) == (
        "ScoreTree",
        "student",
        error_class,
    )
    assert view.interruption and interrupted.endpoint in view.interruption
    [entry] = [e for e in engine.history(sid) if e["type"] == "StepInterrupted"]
    assert "resumable" in entry["what"] and interrupted.endpoint in entry["what"]
    return interrupted


def test_a_student_killed_mid_scoring_interrupts_and_resume_matches_an_uninterrupted_run(
    demo_home: Callable[[str], Path], teacher_server: ScriptedAnthropicServer, uninterrupted: dict[str, Any]
) -> None:
    # Before: the dead student's tasks scored 0.0, every edit was rejected by the gate, exit 0.
    world_ = StudentAtScoring(demo_home, lambda w: w.server.close())
    engine = Engine.open(
        world_.home, teacher=teacher_client(teacher_server), settings=SETTINGS, on_step=world_.on_step
    )
    sid = engine.start(OnDemandTrigger())
    with pytest.raises(EndpointUnavailable) as caught:
        engine.run(sid)
    port = world_.server.port
    assert caught.value.role == "student" and f"127.0.0.1:{port}" in str(caught.value)
    interrupted = _assert_interrupted_at_scoring(engine, sid, "APIConnectionError")
    assert interrupted.endpoint == f"http://127.0.0.1:{port}/v1/chat/completions"
    assert interrupted.attempts == 2  # [student] max_retries = 1

    with ScriptedStudentServer(world.toy_answer, port=port):  # the endpoint is back, same address
        resumed = Engine.open(world_.home, teacher=teacher_client(teacher_server), settings=SETTINGS)
        resumed.run(sid)
        assert comparable(resumed, sid) == uninterrupted


@pytest.mark.parametrize(
    ("status", "error_class"), [(503, "InternalServerError"), (MALFORMED, "JSONDecodeError")]
)
def test_a_failing_or_garbling_student_interrupts_and_resume_matches(
    status: int,
    error_class: str,
    demo_home: Callable[[str], Path],
    teacher_server: ScriptedAnthropicServer,
    uninterrupted: dict[str, Any],
) -> None:
    world_ = StudentAtScoring(demo_home, lambda w: w.server.fail_next(status, count=2))
    settings = {
        **SETTINGS,
        "student": {**SETTINGS["student"], "concurrency": 1},
    }  # the two failures: one task
    with world_.server:
        engine = Engine.open(
            world_.home, teacher=teacher_client(teacher_server), settings=settings, on_step=world_.on_step
        )
        sid = engine.start(OnDemandTrigger())
        with pytest.raises(EndpointUnavailable, match=error_class):
            engine.run(sid)
        _assert_interrupted_at_scoring(engine, sid, error_class)
        engine.run(sid)  # the server answers again: resume
        assert comparable(engine, sid) == uninterrupted


def test_a_dead_student_during_diagnosis_interrupts_instead_of_telling_the_teacher(
    demo_home: Callable[[str], Path], teacher_server: ScriptedAnthropicServer
) -> None:
    # Before: run_student_on_task answered the teacher {"error": "APIConnectionError ...", "score": 0.0}.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    home = demo_home(f"http://127.0.0.1:{port}/v1")
    engine = Engine.open(home, teacher=teacher_client(teacher_server), settings=SETTINGS)
    sid = engine.start(OnDemandTrigger())
    with pytest.raises(EndpointUnavailable):
        engine.run(sid)
    assert engine.get(sid).status == "diagnosing"
    [interrupted] = events_of(engine, sid, ev.StepInterrupted)
    assert (interrupted.step, interrupted.role) == ("RunTool", "student")
    results = events_of(engine, sid, ev.ToolCallCompleted)
    assert all(r.tool != "run_student_on_task" for r in results)  # no "error" result went to the teacher


def test_a_dead_teacher_interrupts_and_is_recorded(tmp_path: Path) -> None:
    with ScriptedStudentServer(world.toy_answer) as student_server:
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        teacher_server = ScriptedAnthropicServer(world.teacher_reply)
        teacher_server.close()
        engine = Engine.open(home, teacher=teacher_client(teacher_server), settings=SETTINGS)
        sid = engine.start(OnDemandTrigger())
        with pytest.raises(EndpointUnavailable, match="teacher endpoint"):
            engine.run(sid)
        [interrupted] = events_of(engine, sid, ev.StepInterrupted)
        assert (interrupted.step, interrupted.role, interrupted.attempts) == ("CallTeacher", "teacher", 4)
        assert engine.get(sid).status == "diagnosing" and engine.cost_ledger(sid) == []
        # A second interruption counts in a row; any progress clears it.
        with pytest.raises(EndpointUnavailable):
            engine.run(sid)
        assert "2 times in a row" in (engine.get(sid).interruption or "")
        with ScriptedAnthropicServer(world.teacher_reply, port=teacher_server.port):
            assert engine.run(sid).status == "awaiting_review"
        assert engine.get(sid).interruption is None


def test_a_long_teacher_rate_limit_interrupts_at_once_and_short_ones_are_reported(
    demo_home: Callable[[str], Path], teacher_server: ScriptedAnthropicServer
) -> None:
    # Before: `retry-after: 3600` made the SDK sleep for an hour without a word.
    waits: list[Any] = []
    with ScriptedStudentServer(world.toy_answer) as student_server:
        home = demo_home(student_server.base_url)
        engine = Engine.open(
            home, teacher=teacher_client(teacher_server), settings=SETTINGS, on_wait=waits.append
        )
        sid = engine.start(OnDemandTrigger())
        teacher_server.fail_next(429, headers={"retry-after": "3600"})
        with pytest.raises(EndpointUnavailable, match="asked to wait 3600 s"):
            engine.run(sid)
        assert waits == [] and teacher_server.failures_injected == 1
        [interrupted] = events_of(engine, sid, ev.StepInterrupted)
        assert interrupted.error_class == "RateLimitError"
        teacher_server.fail_next(429, headers={"retry-after": "0.1"})
        assert engine.run(sid).status == "awaiting_review"
    assert [(w.role, w.seconds, w.reason) for w in waits] == [("teacher", 0.1, "rate limited")]


def test_a_malformed_teacher_reply_is_retried_then_interrupts(
    demo_home: Callable[[str], Path], teacher_server: ScriptedAnthropicServer
) -> None:
    with ScriptedStudentServer(world.toy_answer) as student_server:
        engine = Engine.open(demo_home(student_server.base_url), teacher=teacher_client(teacher_server),
                             settings=SETTINGS)  # fmt: skip
        sid = engine.start(OnDemandTrigger())
        teacher_server.fail_next(MALFORMED, count=4)
        with pytest.raises(EndpointUnavailable, match="JSONDecodeError"):
            engine.run(sid)
        assert teacher_server.failures_injected == 4  # 1 + [network] max_retries
        teacher_server.fail_next(MALFORMED)  # one garbled reply, then good ones: just a retry
        assert engine.run(sid).status == "awaiting_review"


def judging_teacher(request: dict[str, Any]) -> dict[str, Any]:
    from .test_costs_and_scoring import judged_teacher

    return judged_teacher(request)


def test_a_dead_judge_interrupts_scoring_instead_of_failing_the_student(tmp_path: Path) -> None:
    with (
        ScriptedAnthropicServer(judging_teacher) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        client = teacher_client(teacher_server)
        judge = TeacherJudge(client, model="claude-haiku-4-5")
        steps: list[str] = []

        def on_step(_view: Any, step: Any) -> None:
            steps.append(step.kind)
            if step.kind == "ScoreTree" and steps.count("ScoreTree") == 1:
                teacher_server.fail_next(500, count=100)

        engine = Engine.open(home, teacher=client, judge=judge, settings=SETTINGS, on_step=on_step)
        sid = engine.start(OnDemandTrigger())
        with pytest.raises(EndpointUnavailable, match="judge endpoint"):
            engine.run(sid)
        [interrupted] = events_of(engine, sid, ev.StepInterrupted)
        assert (interrupted.step, interrupted.role) == ("ScoreTree", "judge")
        assert events_of(engine, sid, ev.TasksScored) == []
        teacher_server.clear_failures()  # the judge is back
        assert engine.run(sid).status == "awaiting_review"  # the same engine: the judge is tried again
