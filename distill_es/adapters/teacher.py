"""The frontier teacher: the Anthropic client, request digests, response records, usage counts.

Prompt-cache breakpoints are request shaping, in `phases/prompt_cache.py`.

The digest identifies a request across processes (cassettes, resume), so it is a sha256 over canonical
JSON — never Python's `hash()`, which is salted per process (reference defect §11.5).
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from distill_es.domain.chain import canonical_json
from distill_es.domain.errors import InvalidTeacherOutput

if TYPE_CHECKING:
    import anthropic

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def default_teacher(max_retries: int = 0) -> anthropic.Anthropic:
    """The real client. The SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself. Its own retries
    are off: the engine retries teacher and judge calls itself (`adapters.retry`), with bounded
    rate-limit waits it can report, where the SDK would sleep as long as any `retry-after` says.

    One client per process and environment: a worker opens an engine per session, and building a
    client (its TLS context) costs more than resuming the session; the client is thread-safe."""
    env = tuple(os.environ.get(name) for name in _CLIENT_ENV)
    return _client(env, max_retries)


_CLIENT_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")


@functools.lru_cache(maxsize=8)
def _client(_env: tuple[str | None, ...], max_retries: int) -> anthropic.Anthropic:
    import anthropic  # here, not at module level: the digest helpers stay cheap to import

    return anthropic.Anthropic(max_retries=max_retries)  # reads the environment `_env` was taken from


def _is_sentinel(value: Any) -> bool:
    # anthropic.NOT_GIVEN / omit mean "not passed"; they must not change the digest.
    return type(value).__name__ in {"NotGiven", "Omit"}


def jsonable(value: Any) -> Any:
    """Plain JSON data for `value` (pydantic models dumped, tuples as lists, sentinels dropped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not _is_sentinel(v)}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"request parameter of type {type(value).__name__} is not JSON data: {value!r}")


def request_digest(params: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the request parameters, stable across processes.

    The same canonical JSON as the event digests (`domain.chain`), NaN refused included: a request is
    built from recorded turns, and no recorded event can hold a NaN."""
    return hashlib.sha256(canonical_json(jsonable(params)).encode("utf-8")).hexdigest()


def response_to_dict(message: Any) -> dict[str, Any]:
    """JSON-safe dict of a Message (what cassettes and events store)."""
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    return jsonable(dict(message))


# A reply's token counts are hostile numbers: the largest context window is 1M tokens, so a count
# beyond ten times that is a broken or forged reply, never a bill.
MAX_TOKENS_PER_CALL = 10_000_000
# The Messages API always reports these two; the cache counts are documented as nullable.
REQUIRED_USAGE_KEYS = ("input_tokens", "output_tokens")


def usage_of(message: Any) -> dict[str, int]:
    """The four token counts of a Message (or its dict), validated at the boundary.

    Each count must be an int (not a bool, float or string) in 0..MAX_TOKENS_PER_CALL; the cache
    counts may be null or missing (0). Anything else raises `InvalidTeacherOutput` naming the field.
    """
    usage = message.get("usage") if isinstance(message, dict) else getattr(message, "usage", None)
    if isinstance(usage, BaseModel):
        usage = usage.model_dump(warnings=False)  # the hostile values are checked below
    if not isinstance(usage, dict):
        raise InvalidTeacherOutput(f"the reply's usage is {_shown(usage)}, not an object of token counts")
    return {key: token_count(key, usage.get(key)) for key in USAGE_KEYS}


def token_count(key: str, value: Any) -> int:
    """One usage count, checked: an int in 0..MAX_TOKENS_PER_CALL (a nullable cache count: None is 0)."""
    if value is None and key not in REQUIRED_USAGE_KEYS:
        return 0
    if type(value) is not int:  # bool is an int subclass: `true` tokens is not a count
        raise InvalidTeacherOutput(f"usage.{key} is {_shown(value)}, not a whole number of tokens")
    if not 0 <= value <= MAX_TOKENS_PER_CALL:
        raise InvalidTeacherOutput(
            f"usage.{key} is {_shown(value)}, outside 0..{MAX_TOKENS_PER_CALL:,} tokens"
        )
    return value


def _shown(value: Any) -> str:
    """A short repr of a hostile value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
