"""Calls to outside endpoints, retried by us: bounded backoff, bounded rate-limit waits, and failures
that end as `EndpointUnavailable` (an interruption) or `RequestRefused` (this request is bad) — never
as a result.

The SDKs have retry loops of their own, but the anthropic one waits as long as any `retry-after`
says (an hour, silently) and neither can tell anyone it is waiting. So our clients run with
`max_retries=0` and every call goes through `call_with_retries`, which:

- retries connection errors, timeouts, 408/409/429/5xx and bodies that are not the protocol's
  (`MalformedResponse`, JSON that does not parse) with exponential backoff, `max_retries` times;
- honours `retry-after`/`retry-after-ms` (of a 429 or a 5xx) only up to `max_rate_limit_wait_seconds`
  in all for the call; a server asking for longer interrupts at once (resume later) instead of
  freezing the session for an hour;
- tells `on_wait` before every wait, so the progress line can say "waiting N s (rate limited)";
- raises `RequestRefused` for 400/413/422 (the endpoint works; this request cannot succeed) and
  `EndpointUnavailable` for everything else (401/403/404 too: a wrong key, URL or model is fixed
  outside, then the session resumed).
"""

from __future__ import annotations

import email.utils
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from distill_es.domain.errors import EndpointUnavailable, RequestRefused

T = TypeVar("T")

REFUSAL_STATUSES = frozenset({400, 413, 422})  # the request itself is bad: retrying cannot help
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
MAX_ERROR_CHARS = 300  # of an endpoint's error text, in messages and events


class MalformedResponse(ValueError):
    """A 200 whose body is not what the protocol promises (not JSON, no choices, no content)."""


@dataclass(frozen=True)
class Wait:
    """One wait before a retry, for progress displays."""

    role: str  # teacher | judge | student
    endpoint: str
    seconds: float
    reason: str  # "rate limited" | "retrying after <error class>"
    attempt: int  # the attempt that failed (1-based)


WaitObserver = Callable[[Wait], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_rate_limit_wait_seconds: float = 180.0

    @classmethod
    def from_settings(cls, network: Any, max_retries: int | None = None) -> RetryPolicy:
        """From a `NetworkSettings` (`max_retries` overrides its own, for the student)."""
        return cls(
            max_retries=network.max_retries if max_retries is None else max_retries,
            backoff_seconds=network.backoff_seconds,
            max_backoff_seconds=network.max_backoff_seconds,
            max_rate_limit_wait_seconds=network.max_rate_limit_wait_seconds,
        )

    def backoff(self, retry: int) -> float:
        return min(self.backoff_seconds * 2.0**retry, self.max_backoff_seconds)


def endpoint_of(exc: BaseException | None, fallback: str) -> str:
    """scheme://host:port/path of the request that failed (never credentials or a query string)."""
    request = getattr(exc, "request", None) if exc is not None else None
    url = getattr(request, "url", None)
    return safe_url(str(url)) if url is not None else safe_url(fallback)


def safe_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    if not parts.scheme or not host:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _sdk_errors(name: str) -> tuple[type[BaseException], ...]:
    """`name` from each SDK already imported (an exception from an SDK means its module is loaded)."""
    found = []
    for module in ("anthropic", "openai"):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            found.append(getattr(loaded, name))
    return tuple(found)


def status_of(exc: BaseException) -> int | None:
    status_errors = _sdk_errors("APIStatusError")
    if status_errors and isinstance(exc, status_errors):
        return int(exc.status_code)  # type: ignore[attr-defined]
    return None


def is_transport_failure(exc: BaseException) -> bool:
    """Connection refused, timeout, a response that could not be read as the protocol says."""
    transport = _sdk_errors("APIConnectionError") + _sdk_errors("APIResponseValidationError")
    return isinstance(exc, (*transport, MalformedResponse, json.JSONDecodeError))


def retry_after_seconds(exc: BaseException) -> float | None:
    """What the server asked us to wait (retry-after-ms, retry-after seconds or date), if anything."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        return max(0.0, float(headers.get("retry-after-ms")) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"


def _unavailable(role: str, where: str, exc: Exception, attempts: int, note: str = "") -> EndpointUnavailable:
    name, text = type(exc).__name__, describe(exc) + note
    return EndpointUnavailable(role=role, endpoint=where, error_class=name, error=text, attempts=attempts)


def call_with_retries(
    call: Callable[[], T],
    *,
    role: str,
    endpoint: str,
    policy: RetryPolicy,
    on_wait: WaitObserver | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """`call()`, retried as the module says. `endpoint` names it in errors when the failure does not
    carry its own URL; `should_stop` lets a batch give up early once another call was interrupted."""
    attempt, retries, rate_limited = 0, 0, 0.0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            status = status_of(exc)
            where = endpoint_of(exc, endpoint)
            if status in REFUSAL_STATUSES:
                error = f"{type(exc).__name__}: {describe(exc)}"
                raise RequestRefused(role=role, endpoint=where, status=status, error=error) from exc
            retryable = is_transport_failure(exc) or status in RETRY_STATUSES or (status or 0) >= 500
            if status is None and not retryable:
                raise  # not an endpoint failure (a bug, a missing key): not ours to classify
            stop = should_stop is not None and should_stop()
            if not retryable or stop or retries >= policy.max_retries:
                raise _unavailable(role, where, exc, attempt) from exc
            asked = retry_after_seconds(exc)
            wait = policy.backoff(retries)
            retries += 1
            if asked is not None:  # the server says when to come back: no sooner, and not for long
                if rate_limited + asked > policy.max_rate_limit_wait_seconds:
                    note = (
                        f" (asked to wait {asked:g} s, beyond [network] max_rate_limit_wait_seconds = "
                        f"{policy.max_rate_limit_wait_seconds:g})"
                    )
                    raise _unavailable(role, where, exc, attempt, note) from exc
                rate_limited += asked
                wait = asked
            reason = "rate limited" if status == 429 else f"retrying after {type(exc).__name__}"
            if on_wait is not None:
                on_wait(Wait(role=role, endpoint=where, seconds=wait, reason=reason, attempt=attempt))
            sleep(wait)
