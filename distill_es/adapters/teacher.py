"""The frontier teacher: the Anthropic client, request digests, prompt caching, response records.

The digest identifies a request across processes (cassettes, resume), so it is a sha256 over canonical
JSON — never Python's `hash()`, which is salted per process (reference defect §11.5).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import anthropic

CACHE_CONTROL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4  # the Messages API refuses more
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def default_teacher(max_retries: int = 2) -> anthropic.Anthropic:
    """The real client. The SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself and retries
    connection errors, 408/409/429 and 5xx (529 overloaded included) with backoff."""
    import anthropic  # here, not at module level: the digest helpers stay cheap to import

    return anthropic.Anthropic(max_retries=max_retries)


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


def canonical_json(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_digest(params: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the request parameters, stable across processes."""
    return hashlib.sha256(canonical_json(params).encode("utf-8")).hexdigest()


def _count_breakpoints(value: Any) -> int:
    if isinstance(value, dict):
        return int("cache_control" in value) + sum(_count_breakpoints(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_breakpoints(v) for v in value)
    return 0


def _cacheable(block: Any) -> bool:
    # Empty text and thinking blocks cannot carry cache_control.
    if not isinstance(block, dict) or block.get("type") in {"thinking", "redacted_thinking"}:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def with_prompt_cache(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of `params` with prompt-cache breakpoints; `params` itself is not touched.

    Breakpoints, in prefix order: the last tool definition and the system prompt (the stable prefix of a
    tool loop), then the last content block of the last user message (the conversation so far, read back
    on the next turn). Existing breakpoints are kept and counted; never more than 4 in all.
    """
    out = copy.deepcopy(jsonable(params))
    budget = MAX_CACHE_BREAKPOINTS - _count_breakpoints(out)
    if budget <= 0:
        return out

    targets: list[dict[str, Any]] = []
    if out.get("tools"):
        targets.append(out["tools"][-1])
    system = out.get("system")
    if isinstance(system, str) and system:
        out["system"] = [{"type": "text", "text": system}]
        targets.append(out["system"][-1])
    elif isinstance(system, list) and system:
        targets.append(system[-1])
    users = [m for m in out.get("messages", []) if m.get("role") == "user"]
    if users:
        last = users[-1]
        if isinstance(last.get("content"), str):
            last["content"] = [{"type": "text", "text": last["content"]}]
        if last.get("content"):
            targets.append(last["content"][-1])

    for block in targets:
        if budget <= 0:
            break
        if _cacheable(block) and "cache_control" not in block:
            block["cache_control"] = dict(CACHE_CONTROL)
            budget -= 1
    return out


def response_to_dict(message: Any) -> dict[str, Any]:
    """JSON-safe dict of a Message (what cassettes and events store)."""
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    return jsonable(dict(message))


def usage_of(message: Any) -> dict[str, int]:
    """The four token counts of a Message (or its dict), as ints; None and missing count as 0."""
    usage = message.get("usage") if isinstance(message, dict) else getattr(message, "usage", None)
    if isinstance(usage, BaseModel):
        usage = usage.model_dump()
    usage = usage or {}
    return {key: int(usage.get(key) or 0) for key in USAGE_KEYS}
