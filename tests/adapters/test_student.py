from __future__ import annotations

import json
import socket
import time

import pytest

from distill_es.adapters.retry import Wait
from distill_es.adapters.student import OpenAIStudent, build_chat_request
from distill_es.config.settings import NetworkSettings, StudentSettings
from distill_es.domain.errors import EndpointUnavailable, WorkspaceError
from distill_es.ports import BenchmarkTask, StudentRunner
from distill_es.testing.servers import MALFORMED, ScriptedStudentServer, last_user_text

TASK = BenchmarkTask(task_id="t1", query="What is 6*7?", reference_answer="42")
MATH = BenchmarkTask(task_id="t2", query="Integrate x dx", reference_answer="x^2/2", query_class="math")


def _settings(server: ScriptedStudentServer | None = None, **kw) -> StudentSettings:
    base = {
        "base_url": server.base_url if server else "http://127.0.0.1:9/v1",
        "max_retries": 0,
        "timeout_seconds": 5,
    }
    return StudentSettings(**{**base, **kw})


def test_request_is_built_from_the_workspace(student_home):
    request = build_chat_request(student_home, TASK, StudentSettings())
    system, *shots, user = request["messages"]
    assert system["role"] == "system"
    assert system["content"] == (
        "You are a careful helper.\n\nTools available:\n"
        "- calculator: Evaluates arithmetic expressions.\n- web_search: Searches the web."
    )
    assert "shell" not in system["content"]  # described, but not enabled for this agent
    assert shots == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert user == {"role": "user", "content": "What is 6*7?"}
    assert request["model"] == "qwen3:8b"
    assert request["temperature"] == 0.2  # the agent's value over the model's 0.7
    assert request["max_tokens"] == 512
    assert request["extra_body"] == {"top_k": 20}
    assert "max_turns" not in request and "class" not in request


def test_model_routing_and_override(student_home):
    routed = build_chat_request(student_home, MATH, StudentSettings())
    assert routed["model"] == "qwen3:32b" and routed["max_tokens"] == 1024
    assert build_chat_request(student_home, MATH, StudentSettings(model="llama3")).get("model") == "llama3"


def test_missing_pieces_are_optional_but_a_model_is_not(tmp_path):
    request = build_chat_request(tmp_path, TASK, StudentSettings(model="m"))
    assert request == {"model": "m", "messages": [{"role": "user", "content": "What is 6*7?"}]}
    with pytest.raises(WorkspaceError, match="no student model"):
        build_chat_request(tmp_path, TASK, StudentSettings())


def test_corrupt_workspace_files_name_the_file(student_home):
    (student_home / "agents" / "helper" / "few_shot.json").write_text('[{"user": "x"}]', encoding="utf-8")
    with pytest.raises(WorkspaceError, match=r"few_shot\.json: item 0"):
        build_chat_request(student_home, TASK, StudentSettings())
    (student_home / "config.toml").write_text("[agent\n", encoding="utf-8")
    with pytest.raises(WorkspaceError, match=r"config\.toml: not valid TOML"):
        build_chat_request(student_home, TASK, StudentSettings())


def test_run_sends_the_workspace_request_through_the_real_client(student_home, monkeypatch):
    monkeypatch.setenv("STUDENT_KEY", "secret-123")
    with ScriptedStudentServer({"What is 6*7?": "<think>6 times 7</think>\n42"}) as server:
        student = OpenAIStudent(student_home, _settings(server, api_key_env="STUDENT_KEY"))
        assert isinstance(student, StudentRunner)
        result = student.run(TASK)
        body, headers = server.requests[0], server.headers[0]
    assert result.error is None
    assert result.output == "42"  # reasoning block stripped
    assert result.model == "qwen3:8b" and result.tokens_used > 0 and result.latency_seconds > 0
    expected = build_chat_request(student_home, TASK, StudentSettings())
    extra = expected.pop("extra_body")
    assert body == {**expected, **extra}
    assert headers["authorization"] == "Bearer secret-123"


def test_each_call_reads_the_workspace_again(student_home):
    with ScriptedStudentServer(lambda r: r["messages"][0]["content"][:10]) as server:
        student = OpenAIStudent(student_home, _settings(server))
        assert student.run(TASK).output == "You are a "
        (student_home / "agents" / "helper" / "system_prompt.md").write_text(
            "Answer tersely.", encoding="utf-8"
        )
        config = student_home / "config.toml"
        config.write_text(
            config.read_text(encoding="utf-8").replace("temperature = 0.2", "temperature = 0.0")
        )
        assert student.run(TASK).output == "Answer ter"
        assert [r["temperature"] for r in server.requests] == [0.2, 0.0]


def test_retries_500_and_429_then_succeeds(student_home):
    with ScriptedStudentServer(lambda r: "42", fail_first=2, fail_status=500) as server:
        server.fail_next(429)
        result = OpenAIStudent(student_home, _settings(server, max_retries=3)).run(TASK)
        assert result.error is None and result.output == "42"
        assert server.failures_injected == 3 and len(server.requests) == 4


FAST = NetworkSettings(backoff_seconds=0.01, max_backoff_seconds=0.02, max_rate_limit_wait_seconds=1)


def _unreachable_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    return f"http://127.0.0.1:{port}/v1"


def test_a_5xx_after_retries_interrupts_and_names_the_endpoint(student_home):
    # Before: the 503 became StudentResult.error, which the scorer turned into a 0.0 score.
    with ScriptedStudentServer(lambda r: "42", fail_first=5, fail_status=503) as server:
        student = OpenAIStudent(student_home, _settings(server, max_retries=1), network=FAST)
        with pytest.raises(EndpointUnavailable) as caught:
            student.run(TASK)
        assert len(server.requests) == 2
    failure = caught.value
    assert (failure.role, failure.attempts, failure.error_class) == ("student", 2, "InternalServerError")
    assert failure.endpoint == f"{server.base_url}/chat/completions"
    assert "503" in str(failure) and server.base_url in str(failure)


def test_a_timeout_interrupts(student_home):
    with ScriptedStudentServer(lambda r: "42", hang_seconds=30) as server:
        started = time.monotonic()
        with pytest.raises(EndpointUnavailable, match="Timeout"):
            OpenAIStudent(student_home, _settings(server, timeout_seconds=0.3), network=FAST).run(TASK)
        assert time.monotonic() - started < 3


def test_an_unreachable_endpoint_interrupts(student_home):
    url = _unreachable_url()
    settings = StudentSettings(base_url=url, max_retries=2)
    waits: list[Wait] = []
    with pytest.raises(EndpointUnavailable, match="APIConnectionError") as caught:
        OpenAIStudent(student_home, settings, network=FAST, on_wait=waits.append).run(TASK)
    assert caught.value.attempts == 3 and caught.value.endpoint.startswith(url)
    assert [w.reason for w in waits] == ["retrying after APIConnectionError"] * 2


def test_a_request_the_endpoint_refuses_stays_a_per_task_error(student_home):
    # 400 (e.g. a context too long for this task): the endpoint works, this one request cannot succeed.
    with ScriptedStudentServer(lambda r: "42") as server:
        server.fail_next(400)
        result = OpenAIStudent(student_home, _settings(server, max_retries=3), network=FAST).run(TASK)
        assert len(server.requests) == 1  # not retried
    assert result.output == "" and "refused the request (400)" in (result.error or "")


def test_a_long_rate_limit_interrupts_at_once_instead_of_waiting(student_home):
    # Before: the SDK slept as long as retry-after said (an hour), silently.
    with ScriptedStudentServer(lambda r: "42") as server:
        server.fail_next(429, headers={"retry-after": "3600"})
        student = OpenAIStudent(student_home, _settings(server, max_retries=3), network=FAST)
        started = time.monotonic()
        with pytest.raises(EndpointUnavailable, match="asked to wait 3600 s") as caught:
            student.run(TASK)
        assert time.monotonic() - started < 5 and len(server.requests) == 1
    assert caught.value.error_class == "RateLimitError"


def test_a_short_rate_limit_is_waited_and_reported(student_home):
    with ScriptedStudentServer(lambda r: "42") as server:
        server.fail_next(429, headers={"retry-after": "0.2"})
        waits: list[Wait] = []
        student = OpenAIStudent(
            student_home, _settings(server, max_retries=3), network=FAST, on_wait=waits.append
        )
        assert student.run(TASK).output == "42"
    assert [(w.role, w.seconds, w.reason) for w in waits] == [("student", 0.2, "rate limited")]


def test_a_dead_endpoint_stops_the_whole_batch(student_home):
    tasks = [BenchmarkTask(task_id=f"t{i}", query=f"q{i}", reference_answer="") for i in range(6)]
    heard: list[int] = []
    settings = StudentSettings(base_url=_unreachable_url(), max_retries=1, concurrency=2)
    with pytest.raises(EndpointUnavailable):
        OpenAIStudent(student_home, settings, network=FAST).run_many(
            tasks, on_result=lambda i, r: heard.append(i)
        )
    assert heard == []


def test_run_many_overlaps_and_keeps_task_order(student_home):
    tasks = [BenchmarkTask(task_id=f"t{i}", query=f"q{i}", reference_answer="") for i in range(8)]

    def answer(request):
        # Later tasks answer sooner, so completion order is the reverse of task order.
        n = int(last_user_text(request)[1:])
        time.sleep(0.03 * (8 - n))
        return f"a{n}"

    with ScriptedStudentServer(answer, latency=0.2) as server:
        student = OpenAIStudent(student_home, _settings(server, concurrency=8))
        started = time.monotonic()
        results = student.run_many(tasks)
        elapsed = time.monotonic() - started
        peak = server.peak_concurrency
    assert [r.task_id for r in results] == [t.task_id for t in tasks]
    assert [r.output for r in results] == [f"a{i}" for i in range(8)]
    assert peak > 1
    assert elapsed < 0.2 * 8 / 2  # serial would take over 1.6 s + the stagger
    assert student.run_many([]) == []


def test_run_many_respects_the_concurrency_limit(student_home):
    tasks = [BenchmarkTask(task_id=f"t{i}", query=f"q{i}", reference_answer="") for i in range(6)]
    with ScriptedStudentServer(lambda r: "x", latency=0.1) as server:
        OpenAIStudent(student_home, _settings(server, concurrency=2)).run_many(tasks)
        assert server.peak_concurrency == 2


def test_few_shot_file_must_be_json(student_home):
    (student_home / "agents" / "helper" / "few_shot.json").write_text(
        json.dumps({"user": "x"}), encoding="utf-8"
    )
    with pytest.raises(WorkspaceError, match="expected a list"):
        build_chat_request(student_home, TASK, StudentSettings())


class _OddStudentServer(ScriptedStudentServer):
    """Answers every chat completion with the given body, whatever was asked."""

    def __init__(self, body: object) -> None:
        self.body = body
        super().__init__(lambda r: "")

    def _chat(self, body):  # type: ignore[no-untyped-def]
        return 200, self.body, {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"choices": []}, "the chat completion has no choices"),
        ({"id": "x"}, "malformed chat completion: KeyError('choices')"),
        ({"choices": [{"index": 0}]}, "malformed chat completion: KeyError('message')"),
        ({"choices": "nope"}, "malformed chat completion"),
    ],
)
def test_a_malformed_completion_interrupts_after_retries(student_home, body, expected):
    # Before: recorded as the task's error and scored 0.0 — a broken server looked like a wrong student.
    with _OddStudentServer(body) as server:
        with pytest.raises(EndpointUnavailable, match="MalformedResponse") as caught:
            OpenAIStudent(student_home, _settings(server, max_retries=1), network=FAST).run(TASK)
        assert len(server.requests) == 2
    assert expected in caught.value.error


def test_a_body_that_is_not_json_interrupts(student_home):
    with ScriptedStudentServer(lambda r: "42") as server:
        server.fail_next(MALFORMED, count=5)
        with pytest.raises(EndpointUnavailable, match="JSONDecodeError"):
            OpenAIStudent(student_home, _settings(server, max_retries=1), network=FAST).run(TASK)


def test_a_malformed_body_then_a_good_one_is_just_a_retry(student_home):
    with ScriptedStudentServer(lambda r: "42") as server:
        server.fail_next(MALFORMED)
        assert (
            OpenAIStudent(student_home, _settings(server, max_retries=1), network=FAST).run(TASK).output
            == "42"
        )


def test_usage_and_answer_are_read_from_the_completion(student_home):
    body = {"choices": [{"message": {"content": "42"}}], "usage": {"total_tokens": 17}}
    with _OddStudentServer(body) as server:
        result = OpenAIStudent(student_home, _settings(server)).run(TASK)
    assert (result.output, result.tokens_used, result.error) == ("42", 17, None)
