"""`ScriptedStudentServer`: OpenAI-compatible chat completions, as Ollama / vLLM / llama.cpp serve them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from distill_es.demo.servers.derive import request_id, tokens
from distill_es.demo.servers.json_http import (
    MALFORMED,
    MALFORMED_BODY,
    FailureQueue,
    InjectedFailures,
    Json,
    JsonHTTPServer,
)


def last_user_text(request: Json) -> str:
    """The text of the last user message of a chat-completions request."""
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or ""
    return ""


class ScriptedStudentServer(InjectedFailures, JsonHTTPServer):
    """`POST /v1/chat/completions` and `GET /v1/models`, like Ollama / vLLM / llama.cpp serve them.

    `answer` is `(request) -> str` or a dict from the last user message to the answer (`default`
    otherwise). Every request waits `latency` seconds (requests overlap: one thread each) and, with
    `hang_seconds`, hangs that much longer (cut short by `close()`), to exercise client timeouts.
    `fail_first` requests are answered with `fail_status`; an `answer` that raises gives a 400.
    `peak_concurrency` is the most requests ever in flight at once.
    """

    def __init__(
        self,
        answer: Callable[[Json], str] | Mapping[str, str],
        *,
        latency: float = 0.0,
        hang_seconds: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        models: Sequence[str] = ("test-model",),
        default: str = "",
        retry_after_ms: int = 5,
        port: int = 0,
    ) -> None:
        self.answer = answer
        self.latency, self.hang_seconds = latency, hang_seconds
        self.models, self.default, self.retry_after_ms = list(models), default, retry_after_ms
        self.in_flight = self.peak_concurrency = self.completed = 0
        self._failures = FailureQueue()
        self._failures.add(fail_status, fail_first)
        super().__init__(port)

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"  # the SDK appends /chat/completions

    def fail_next(self, status: int = 500, count: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """As `ScriptedAnthropicServer.fail_next` (`MALFORMED`: a 200 that is not JSON)."""
        self._failures.add(status, count, headers)

    def handle(self, method: str, path: str, body: Json | None) -> tuple[int, Json, dict[str, str]]:
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.models]
            return 200, {"object": "list", "data": data}, {}
        if method != "POST" or path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}, {}
        with self._lock:
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        try:
            return self._chat(body or {})
        finally:
            with self._lock:
                self.in_flight -= 1

    def _chat(self, body: Json) -> tuple[int, Json, dict[str, str]]:
        if (failure := self._failures.take()) is not None:
            status, extra = failure
            if status == MALFORMED:
                return 200, MALFORMED_BODY, {}  # type: ignore[return-value]
            error = {"error": {"message": f"injected failure {status}", "type": "server_error", "code": None}}
            return status, error, extra or {"retry-after-ms": str(self.retry_after_ms)}
        self._sleep(self.latency)
        self._sleep(self.hang_seconds)
        try:
            text = (
                self.answer(body)
                if callable(self.answer)
                else self.answer.get(last_user_text(body), self.default)
            )
        except Exception as exc:  # a failing answer function: a clear 400, not retried
            error = {
                "error": {"message": f"ScriptedStudentServer: {type(exc).__name__}: {exc}", "type": "invalid"}
            }
            return 400, error, {"x-should-retry": "false"}
        prompt, completion = tokens(body.get("messages") or []), tokens(text)
        with self._lock:
            self.completed += 1
        return (
            200,
            {
                "id": "chatcmpl-" + request_id(body)[:24],
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
            {},
        )
