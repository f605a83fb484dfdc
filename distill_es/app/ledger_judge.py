"""A judge whose teacher calls go on the session's cost ledger.

An LLM judge (one with `request` and `score_with_message`, like `TeacherJudge`) is wrapped so that
every call is retried like the teacher's, and kept until the step that made it records it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from distill_es.adapters.retry import RetryPolicy, WaitObserver, call_with_retries
from distill_es.adapters.teacher import request_digest, usage_of
from distill_es.app.teacher_calls import paid_call, teacher_endpoint
from distill_es.domain.errors import EndpointUnavailable
from distill_es.domain.session.react import Args
from distill_es.ports import BenchmarkTask


class LedgerJudge:
    """Wraps an LLM judge so that every teacher call it makes is handed to the step for the ledger."""

    def __init__(
        self,
        inner: Any,
        policy: RetryPolicy | None = None,
        on_wait: WaitObserver | None = None,
        pricing: Mapping[str, Any] | None = None,
    ) -> None:
        self.inner = inner
        self.pricing = pricing  # the [pricing] table its calls are priced under
        self.policy, self.on_wait = policy or RetryPolicy(), on_wait
        self._calls: list[tuple[str, dict[str, Any], Any]] = []
        self._lock = threading.Lock()
        self._down: EndpointUnavailable | None = None  # once the judge is down, the batch stops

    def score(self, task: BenchmarkTask, output: str) -> Any:
        if self._down is not None:
            raise self._down
        try:
            verdict, message = call_with_retries(
                lambda: self.inner.score_with_message(task, output),
                role="judge",
                endpoint=teacher_endpoint(getattr(self.inner, "teacher", None)),
                policy=self.policy,
                on_wait=self.on_wait,
                should_stop=lambda: self._down is not None,
            )
        except EndpointUnavailable as exc:
            self._down = exc
            raise
        usage_of(message)  # a reply whose token counts are invalid is a judge error, never a cost
        with self._lock:
            self._calls.append((task.task_id, self.inner.request(task, output), message))
        return verdict

    def drain(self) -> list[tuple[str, dict[str, Any], Any]]:
        """The calls made since the last drain, in a stable order (scoring runs concurrently)."""
        with self._lock:
            calls, self._calls = self._calls, []
            self._down = None  # the next step tries the judge again
        return sorted(calls, key=lambda call: (call[0], request_digest(call[1])))

    def paid_calls(self, version: int) -> tuple[Args, ...]:
        """The calls since the last drain as `record_teacher_call` arguments, keyed by the session
        version the step records them at (a redone step reuses the same keys)."""
        calls = self.drain()
        return tuple(
            paid_call(f"judge/{version}/{i}", "judge", params, message, usage_of(message), self.pricing)
            for i, (_, params, message) in enumerate(calls)
        )
