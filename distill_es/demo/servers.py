"""Real HTTP servers on 127.0.0.1 that speak the teacher's and the student's wire formats.

Tests point the real `anthropic.Anthropic` / `openai.OpenAI` clients at these, so retries, timeouts,
headers and response parsing are the SDKs' own. Everything a server returns is deterministic: ids are
derived from the request, token counts from its size.

    with ScriptedAnthropicServer([tool_use_reply("list_traces", {}), text_reply("done")]) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _tokens(value: Any) -> int:
    # A stand-in tokenizer: about four characters a token, at least one.
    return max(1, len(_canonical(value)) // 4)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must not keep the test process alive
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client opening 8 connections at once can have a
    # SYN dropped and retried a second later. Model servers listen with a deep backlog; so do these.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests, not errors


class JsonHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1, port 0, served from a daemon thread.

    Subclasses implement `handle(method, path, body) -> (status, json, headers)`; a `bytes` payload is
    sent as it is (a malformed body). Every JSON body received is appended to `.requests` (including
    the ones answered with an injected failure), its headers (lower-cased names) to `.headers` at the
    same index. `port` binds a given port (a server restarted where a dead one was); 0 picks one.
    """

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Json] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", port), self._handler_class())
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()  # wakes handlers sleeping in `_sleep`
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> JsonHTTPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._closed.wait(seconds)

    def handle(self, method: str, path: str, body: Json | None) -> tuple[int, Json, dict[str, str]]:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
            disable_nagle_algorithm = True  # else each response waits ~40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _dispatch(self, method: str) -> None:
                if server._closed.is_set():  # a kept-alive connection to a closed server: drop it
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Json | None = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError:
                        self._send(400, {"error": {"message": "body is not JSON"}}, {})
                        return
                    with server._lock:
                        server.requests.append(body)
                        server.headers.append({k.lower(): v for k, v in self.headers.items()})
                path = self.path.split("?", 1)[0]
                status, payload, headers = server.handle(method, path, body)
                if server._closed.is_set():  # closed meanwhile: a dead server answers nothing
                    self.close_connection = True
                    return
                self._send(status, payload, headers)

            def _send(self, status: int, payload: Json | bytes, headers: Mapping[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout); nothing to tell it

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_GET(self) -> None:
                self._dispatch("GET")

        return Handler


MALFORMED = 0  # a "status" for `fail_next`: a 200 whose body is not JSON (a proxy's error page)
MALFORMED_BODY = b"<html><body>502 Bad Gateway</body></html>"


class _FailureQueue:
    """Statuses (with extra headers) to answer the next requests with, in order."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.injected = 0

    def add(self, status: int, count: int, headers: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._pending += [(status, dict(headers or {}))] * count

    def clear(self) -> None:
        with self._lock:
            self._pending = []

    def take(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            if not self._pending:
                return None
            self.injected += 1
            return self._pending.pop(0)


# --- Anthropic Messages API -----------------------------------------------------------------------


def text_reply(text: str) -> Json:
    """A compact assistant reply with one text block."""
    return {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}


def tool_use_reply(
    name: str, input: Mapping[str, Any], id: str | None = None, text: str | None = None
) -> Json:
    """A compact reply calling one tool (the server fills a deterministic id when `id` is None)."""
    block: Json = {"type": "tool_use", "name": name, "input": dict(input)}
    if id is not None:
        block["id"] = id
    content = ([{"type": "text", "text": text}] if text else []) + [block]
    return {"content": content, "stop_reason": "tool_use"}


def tool_uses_reply(calls: Iterable[tuple[str, Mapping[str, Any]]], text: str | None = None) -> Json:
    """A compact reply calling several tools in one turn."""
    content = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "name": n, "input": dict(i)} for n, i in calls]
    return {"content": content, "stop_reason": "tool_use"}


def with_usage(reply: Json | str, usage: Any) -> Json:
    """`reply` served with exactly this `usage` block (e.g. a negative, string or null count)."""
    full = text_reply(reply) if isinstance(reply, str) else dict(reply)
    return {**full, "usage": usage}


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

AnthropicScript = Sequence[Json | str] | Callable[[Json], Json | str]


class ScriptedAnthropicServer(JsonHTTPServer):
    """`POST /v1/messages`, answered from `script`: a list of replies consumed in order, or a callable
    `(request) -> reply`. A reply is a full Message dict, a compact one (`text_reply`, `tool_use_reply`,
    `tool_uses_reply`) or a plain string; the server fills id, model, stop_reason and usage.

    Usage is computed from the request: blocks (tools, system, message content) cost about len/4
    tokens each. With `cache_control` breakpoints it reports cache writes and reads as the API does:
    the prefix up to each breakpoint is written to an in-memory cache; a later request reads the
    longest prefix it has seen (looking back up to 20 blocks from each breakpoint); the rest up to the
    last breakpoint is a write; what follows is plain input.
    """

    LOOKBACK_BLOCKS = 20

    def __init__(
        self,
        script: AnthropicScript,
        *,
        min_cacheable_tokens: int = 0,
        retry_after_ms: int = 5,
        port: int = 0,
    ) -> None:
        self.script = script
        self.min_cacheable_tokens = min_cacheable_tokens
        self.retry_after_ms = retry_after_ms
        self.served = 0
        self.errors: list[str] = []
        self._failures = _FailureQueue()
        self._cache: set[str] = set()
        super().__init__(port)

    @property
    def base_url(self) -> str:
        return self.root_url  # the SDK appends /v1/messages

    def fail_next(self, status: int = 529, count: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next `count` requests with `status` (retried: 429/5xx/529), `headers` replacing
        the default `retry-after-ms` (e.g. `{"retry-after": "3600"}`); `MALFORMED`: a 200 that is not
        JSON."""
        self._failures.add(status, count, headers)

    @property
    def failures_injected(self) -> int:
        return self._failures.injected

    def clear_failures(self) -> None:
        """Answer normally again: drop the failures `fail_next` queued and not yet served."""
        self._failures.clear()

    def _error(
        self, status: int, message: str, retry: bool, extra: Mapping[str, str] | None = None
    ) -> tuple[int, Json, dict[str, str]]:
        headers = {"x-should-retry": "true" if retry else "false"}
        if retry:
            headers.update(extra or {"retry-after-ms": str(self.retry_after_ms)})
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return status, {"type": "error", "error": {"type": kind, "message": message}}, headers

    def handle(self, method: str, path: str, body: Json | None) -> tuple[int, Json, dict[str, str]]:
        if method != "POST" or path != "/v1/messages":
            return self._error(404, f"no route {method} {path}", retry=False)
        if (failure := self._failures.take()) is not None:
            status, extra = failure
            if status == MALFORMED:
                return 200, MALFORMED_BODY, {}  # type: ignore[return-value]
            return self._error(status, f"injected failure {status}", retry=True, extra=extra)
        problem = self._validate(body)
        if problem:
            with self._lock:
                self.errors.append(problem)
            return self._error(400, problem, retry=False)
        assert body is not None
        try:
            reply = self._next_reply(body)
        except Exception as exc:  # a broken script is the test's bug: say so, don't retry
            message = f"ScriptedAnthropicServer: {type(exc).__name__}: {exc}"
            with self._lock:
                self.errors.append(message)
            return self._error(400, message, retry=False)
        return 200, self._complete(body, reply), {}

    @staticmethod
    def _validate(body: Json | None) -> str | None:
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            return f"missing required fields: {', '.join(missing)}"
        if body.get("stream"):
            return "ScriptedAnthropicServer does not stream"
        if (n := _canonical(body).count('"cache_control":')) > 4:
            return f"A maximum of 4 blocks with cache_control may be provided. Found {n}."
        return None

    def _next_reply(self, body: Json) -> Json | str:
        if callable(self.script):
            return self.script(body)
        with self._lock:
            index = self.served
            self.served += 1
        if index >= len(self.script):
            raise IndexError(f"script exhausted: request {index + 1} but only {len(self.script)} replies")
        return self.script[index]

    def _complete(self, request: Json, reply: Json | str) -> Json:
        reply = text_reply(reply) if isinstance(reply, str) else json.loads(json.dumps(reply))
        request_id = _sha(_canonical(request))
        content = reply.get("content", [])
        for i, block in enumerate(content):
            if block.get("type") == "tool_use" and not block.get("id"):
                block["id"] = "toolu_" + _sha(f"{request_id}:{i}")[:24]
        if callable(self.script):
            with self._lock:
                self.served += 1
        has_tool = any(b.get("type") == "tool_use" for b in content)
        return {
            "id": reply.get("id") or "msg_" + request_id[:24],
            "type": "message",
            "role": "assistant",
            "model": reply.get("model") or request["model"],
            "content": content,
            "stop_reason": reply.get("stop_reason") or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None,
            # A reply that carries "usage" is served with exactly that block, however hostile.
            "usage": reply["usage"] if "usage" in reply else self._usage(request, content),
        }

    # -- usage and prompt caching ------------------------------------------------------------------

    @staticmethod
    def _blocks(request: Json) -> list[tuple[Any, bool]]:
        """(block without its cache_control, has a breakpoint) in cache-prefix order."""

        def strip(block: Any) -> tuple[Any, bool]:
            if isinstance(block, dict) and "cache_control" in block:
                return {k: v for k, v in block.items() if k != "cache_control"}, True
            return block, False

        def parts(content: Any) -> list[Any]:
            # A string is shorthand for one text block: the same prefix either way.
            return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])

        blocks = [strip(tool) for tool in request.get("tools") or []]
        blocks += [strip(b) for b in parts(request.get("system"))]
        for m, message in enumerate(request.get("messages") or []):
            for i, part in enumerate(parts(message.get("content"))):
                block, marked = strip(part)
                blocks.append(
                    ({"message": m, "role": message.get("role"), "part": i, "block": block}, marked)
                )
        return blocks

    def _usage(self, request: Json, content: list[Json]) -> Json:
        blocks = self._blocks(request)
        sizes = [_tokens(b) for b, _ in blocks]
        rest = {k: v for k, v in request.items() if k not in {"tools", "system", "messages"}}
        total = _tokens(rest) + sum(sizes)

        digests, running = [], _sha(str(request.get("model")))
        for block, _ in blocks:
            running = _sha(running + _canonical(block))
            digests.append(running)
        breakpoints = [
            i
            for i, (_, marked) in enumerate(blocks)
            if marked and sum(sizes[: i + 1]) >= self.min_cacheable_tokens
        ]
        read = write = 0
        if breakpoints:
            with self._lock:
                hit = max(
                    (
                        p
                        for bp in breakpoints
                        for p in range(bp, max(-1, bp - self.LOOKBACK_BLOCKS - 1), -1)
                        if digests[p] in self._cache
                    ),
                    default=-1,
                )
                self._cache.update(digests[bp] for bp in breakpoints)
            cached = sum(sizes[: breakpoints[-1] + 1])
            read = sum(sizes[: hit + 1])
            write = cached - read
            total -= cached
        return {
            "input_tokens": total,
            "output_tokens": _tokens(content),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }


# --- OpenAI-compatible chat completions ----------------------------------------------------------


def last_user_text(request: Json) -> str:
    """The text of the last user message of a chat-completions request."""
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or ""
    return ""


class ScriptedStudentServer(JsonHTTPServer):
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
        self._failures = _FailureQueue()
        self._failures.add(fail_status, fail_first)
        super().__init__(port)

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"  # the SDK appends /chat/completions

    def fail_next(self, status: int = 500, count: int = 1, headers: Mapping[str, str] | None = None) -> None:
        """As `ScriptedAnthropicServer.fail_next` (`MALFORMED`: a 200 that is not JSON)."""
        self._failures.add(status, count, headers)

    @property
    def failures_injected(self) -> int:
        return self._failures.injected

    def clear_failures(self) -> None:
        """Answer normally again: drop the failures `fail_next` queued and not yet served."""
        self._failures.clear()

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
        prompt, completion = _tokens(body.get("messages") or []), _tokens(text)
        with self._lock:
            self.completed += 1
        return (
            200,
            {
                "id": "chatcmpl-" + _sha(_canonical(body))[:24],
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


__all__ = [
    "MALFORMED",
    "JsonHTTPServer",
    "ScriptedAnthropicServer",
    "ScriptedStudentServer",
    "last_user_text",
    "text_reply",
    "tool_use_reply",
    "tool_uses_reply",
    "with_usage",
]
