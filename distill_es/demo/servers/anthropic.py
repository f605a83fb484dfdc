"""`ScriptedAnthropicServer`: the Messages API served from a script, with the API's prompt caching."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from distill_es.demo.servers.derive import request_id, sha, tokens
from distill_es.demo.servers.json_http import (
    MALFORMED,
    MALFORMED_BODY,
    FailureQueue,
    InjectedFailures,
    Json,
    JsonHTTPServer,
)
from distill_es.demo.servers.replies import text_reply
from distill_es.domain.chain import canonical_json

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

AnthropicScript = Sequence[Json | str] | Callable[[Json], Json | str]


class ScriptedAnthropicServer(InjectedFailures, JsonHTTPServer):
    """`POST /v1/messages`, answered from `script`: a list of replies consumed in order, or a callable
    `(request) -> reply`. A reply is a full Message dict, a compact one (`text_reply`, `tool_use_reply`,
    `tool_uses_reply`) or a plain string; the server fills id, model, stop_reason and usage.

    `GET /v1/models` lists `models` (free: `distill-es doctor` asks it).

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
        models: Sequence[str] = ("claude-opus-4-6",),
        port: int = 0,
    ) -> None:
        self.script = script
        self.models = list(models)
        self.min_cacheable_tokens = min_cacheable_tokens
        self.retry_after_ms = retry_after_ms
        self.served = 0
        self.errors: list[str] = []
        self._failures = FailureQueue()
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

    def _error(
        self, status: int, message: str, retry: bool, extra: Mapping[str, str] | None = None
    ) -> tuple[int, Json, dict[str, str]]:
        headers = {"x-should-retry": "true" if retry else "false"}
        if retry:
            headers.update(extra or {"retry-after-ms": str(self.retry_after_ms)})
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return status, {"type": "error", "error": {"type": kind, "message": message}}, headers

    def handle(self, method: str, path: str, body: Json | None) -> tuple[int, Json, dict[str, str]]:
        if method == "GET" and path == "/v1/models":  # free: what `distill-es doctor` asks
            return 200, self._models(), {}
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

    def _models(self) -> Json:
        """The models list, as the API pages it: the models this server answers as."""
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in self.models
        ]
        return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}

    @staticmethod
    def _validate(body: Json | None) -> str | None:
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
        if missing:
            return f"missing required fields: {', '.join(missing)}"
        if body.get("stream"):
            return "ScriptedAnthropicServer does not stream"
        if (n := canonical_json(body).count('"cache_control":')) > 4:
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
        rid = request_id(request)
        content = reply.get("content", [])
        for i, block in enumerate(content):
            if block.get("type") == "tool_use" and not block.get("id"):
                block["id"] = "toolu_" + sha(f"{rid}:{i}")[:24]
        if callable(self.script):
            with self._lock:
                self.served += 1
        has_tool = any(b.get("type") == "tool_use" for b in content)
        return {
            "id": reply.get("id") or "msg_" + rid[:24],
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
        sizes = [tokens(b) for b, _ in blocks]
        rest = {k: v for k, v in request.items() if k not in {"tools", "system", "messages"}}
        total = tokens(rest) + sum(sizes)

        digests, running = [], sha(str(request.get("model")))
        for block, _ in blocks:
            running = sha(running + canonical_json(block))
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
            "output_tokens": tokens(content),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        }
