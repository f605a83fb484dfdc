"""In-process scripted fakes for the engine's ports: no sockets, no threads, deterministic.

- `ScriptedTeacher(script)`: `teacher.messages.create(**params)` returns a real `anthropic.types.Message`,
  completed exactly as `ScriptedAnthropicServer` completes it over HTTP (ids derived from the request,
  usage from its size, prompt-cache reads and writes), so a session run on either reaches the same log.
- `ScriptedStudent(answers)`: a `StudentRunner` answering from a dict or a function.
- `ScriptedJudge(scores)`: a `Judge` scoring from a dict or a function.

    teacher = ScriptedTeacher(world.teacher_reply)        # or a list of replies, consumed in order
    engine = Engine.open(home, teacher=teacher, student=ScriptedStudent({"m1": "51"}, default="?"))
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anthropic
from anthropic.types import Message

from distill_es.demo.servers.anthropic import AnthropicScript, ScriptedAnthropicServer
from distill_es.demo.servers.json_http import Json
from distill_es.ports import BenchmarkTask, JudgeVerdict, ResultObserver, StudentResult, run_in_turn

# Keyword arguments of `messages.create` that the SDK sends as headers or options, not in the body.
_CLIENT_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout", "betas"})


class _Completer(ScriptedAnthropicServer):
    """The scripted server's validation, script and completion logic, without its HTTP server.

    Shared rather than copied so that the in-process and the HTTP teacher can never drift apart."""

    def __init__(self, script: AnthropicScript, min_cacheable_tokens: int) -> None:
        # Deliberately not calling super().__init__(): that binds a socket and starts a thread.
        self.script = script
        self.min_cacheable_tokens = min_cacheable_tokens
        self.served = 0
        self.errors: list[str] = []
        self.requests: list[Json] = []
        self._cache: set[str] = set()
        self._lock = threading.Lock()


def _status_error(status: int, message: str) -> anthropic.APIStatusError:
    """The SDK's own exception for `status`, as `anthropic.Anthropic` would raise it."""
    try:
        import httpx2 as httpx  # what recent anthropic SDKs are built on; any such Response will do
    except ImportError:  # pragma: no cover - older SDKs
        import httpx  # type: ignore[no-redef]

    kind = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
        status, "api_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": message}}
    request = httpx.Request("POST", "https://scripted.invalid/v1/messages")
    response = httpx.Response(status, json=body, request=request)
    classes: dict[int, type[anthropic.APIStatusError]] = {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        404: anthropic.NotFoundError,
        409: anthropic.ConflictError,
        422: anthropic.UnprocessableEntityError,
        429: anthropic.RateLimitError,
        529: getattr(anthropic, "OverloadedError", anthropic.InternalServerError),
    }
    cls = classes.get(status) or (
        anthropic.InternalServerError if status >= 500 else anthropic.APIStatusError
    )
    return cls(message, response=response, body=body)


class _Messages:
    def __init__(self, teacher: ScriptedTeacher) -> None:
        self._teacher = teacher

    def create(self, **params: Any) -> Message:
        return self._teacher._create(params)


class ScriptedTeacher:
    """A teacher shaped like `anthropic.Anthropic()`, answering from `script`.

    `script` is a list of replies consumed in order, or `(request) -> reply`; a reply is a full Message
    dict, a compact one (`text_reply`, `tool_use_reply`, `tool_uses_reply`) or a plain string.
    `requests` holds every request body received, in order. A request the server would refuse (or a
    script that is exhausted or raises) raises `anthropic.BadRequestError` with the server's message,
    also kept in `errors`. `fail_next(status, count)` makes the next calls raise the SDK's error for
    that status; there is no SDK here to retry them, so the engine sees each one.
    """

    def __init__(self, script: AnthropicScript, *, min_cacheable_tokens: int = 0) -> None:
        self._completer = _Completer(script, min_cacheable_tokens)
        self._failures: list[int] = []
        self.messages = _Messages(self)

    @property
    def requests(self) -> list[Json]:
        return self._completer.requests

    @property
    def errors(self) -> list[str]:
        return self._completer.errors

    @property
    def served(self) -> int:
        return self._completer.served

    def fail_next(self, status: int = 529, count: int = 1) -> None:
        self._failures += [status] * count

    def _create(self, params: Mapping[str, Any]) -> Message:
        body = self._body(params)
        completer = self._completer
        with completer._lock:
            completer.requests.append(body)
            status = self._failures.pop(0) if self._failures else None
        if status is not None:
            raise _status_error(status, f"injected failure {status}")
        problem = completer._validate(body)
        if problem is None:
            try:
                reply = completer._next_reply(body)
            except Exception as exc:  # a broken script is the test's bug: say so plainly
                problem = f"ScriptedTeacher: {type(exc).__name__}: {exc}"
        if problem is not None:
            with completer._lock:
                completer.errors.append(problem)
            raise _status_error(400, problem)
        return Message.model_validate(completer._complete(body, reply))

    @staticmethod
    def _body(params: Mapping[str, Any]) -> Json:
        """The JSON body the SDK would send: client options dropped, `extra_body` merged, unset values
        (`anthropic.NOT_GIVEN`) left out, everything else as JSON."""
        body: Json = {}
        for key, value in params.items():
            if key in _CLIENT_OPTIONS or type(value).__name__ in {"NotGiven", "Omit"}:
                continue
            if key == "extra_body":
                body.update(value or {})
            else:
                body[key] = value
        return json.loads(json.dumps(body, default=_jsonable))


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON: the SDK could not send it either")


# --- student and judge ---------------------------------------------------------------------------

StudentAnswer = str | StudentResult
StudentScript = Mapping[str, str] | Callable[[BenchmarkTask], StudentAnswer]


class ScriptedStudent:
    """A `StudentRunner`. `answers` maps a task id (or, failing that, the task's query) to the output,
    or is a function `(task) -> output` returning a string or a whole `StudentResult` (to script an
    error, a latency or a model name). A task without an answer gets `default`, or raises `LookupError`
    when there is none. `tasks` records every task run, in order."""

    def __init__(
        self, answers: StudentScript, *, model: str = "scripted-student", default: str | None = None
    ) -> None:
        self.answers, self.model, self.default = answers, model, default
        self.tasks: list[BenchmarkTask] = []
        self._lock = threading.Lock()

    def run(self, task: BenchmarkTask) -> StudentResult:
        with self._lock:
            self.tasks.append(task)
        if callable(self.answers):
            answer = self.answers(task)
        elif task.task_id in self.answers:
            answer = self.answers[task.task_id]
        elif task.query in self.answers:
            answer = self.answers[task.query]
        elif self.default is not None:
            answer = self.default
        else:
            raise LookupError(f"ScriptedStudent has no answer for task {task.task_id!r} ({task.query!r})")
        if isinstance(answer, StudentResult):
            return answer
        return StudentResult(task_id=task.task_id, output=answer, model=self.model)

    def run_many(
        self, tasks: Sequence[BenchmarkTask], on_result: ResultObserver | None = None
    ) -> list[StudentResult]:
        return run_in_turn(self.run, tasks, on_result)


JudgeScore = float | JudgeVerdict
JudgeScript = Mapping[str | tuple[str, str], JudgeScore] | Callable[[BenchmarkTask, str], JudgeScore]


class ScriptedJudge:
    """A `Judge`. `scores` maps `(task_id, output)` or a task id to a score in [0, 1] or a whole
    `JudgeVerdict`, or is a function `(task, output) -> score`. The exact `(task_id, output)` key wins
    over the task id; otherwise `default`, or `LookupError`. `calls` records `(task_id, output)` pairs
    (the scorer judges concurrently, so compare them as a multiset)."""

    def __init__(self, scores: JudgeScript, *, default: float | None = None) -> None:
        self.scores, self.default = scores, default
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def score(self, task: BenchmarkTask, output: str) -> JudgeVerdict:
        with self._lock:
            self.calls.append((task.task_id, output))
        if callable(self.scores):
            value = self.scores(task, output)
        elif (task.task_id, output) in self.scores:
            value = self.scores[(task.task_id, output)]
        elif task.task_id in self.scores:
            value = self.scores[task.task_id]
        elif self.default is not None:
            value = self.default
        else:
            raise LookupError(f"ScriptedJudge has no score for task {task.task_id!r} with output {output!r}")
        if isinstance(value, JudgeVerdict):
            return value
        return JudgeVerdict(score=float(value), reasoning="scripted")


__all__ = ["ScriptedJudge", "ScriptedStudent", "ScriptedTeacher"]
