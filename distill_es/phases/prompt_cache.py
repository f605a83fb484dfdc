"""Prompt-cache breakpoints on a Messages request: where they go and how many.

Pure request shaping: the markers are part of the request, so they are part of its digest (cassettes,
resume) and must be placed the same way every time for the same conversation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CACHE_CONTROL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4  # the Messages API refuses more


def _blocks(params: dict[str, Any]) -> Iterator[Any]:
    """Every place a cache breakpoint can sit: tool definitions, system blocks, message content blocks
    (and the blocks inside a tool result)."""
    yield from params.get("tools") or []
    if isinstance(params.get("system"), list):
        yield from params["system"]
    for message in params.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            yield block
            inner = block.get("content") if isinstance(block, dict) else None
            if isinstance(inner, list):
                yield from inner


def _count_breakpoints(params: dict[str, Any]) -> int:
    return sum(1 for block in _blocks(params) if isinstance(block, dict) and "cache_control" in block)


def _cacheable(block: Any) -> bool:
    # Empty text and thinking blocks cannot carry cache_control.
    if not isinstance(block, dict) or block.get("type") in {"thinking", "redacted_thinking"}:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def _last_copied(blocks: list[Any]) -> list[Any]:
    """`blocks` with its last block copied, so marking that copy leaves the caller's list alone."""
    return [*blocks[:-1], dict(blocks[-1])]


def with_prompt_cache(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with prompt-cache breakpoints; `params` itself is not touched.

    Breakpoints, in prefix order: the last tool definition and the system prompt (the stable prefix of a
    tool loop), then the last content block of the last user message (the conversation so far, read back
    on the next turn). Existing breakpoints are kept and counted; never more than 4 in all.

    Copy on write: only the lists and blocks on the way to a breakpoint are copied, the rest of the
    conversation is shared with `params` (a long diagnose loop is thousands of blocks, sent as is).
    """
    out = dict(params)
    budget = MAX_CACHE_BREAKPOINTS - _count_breakpoints(out)
    if budget <= 0:
        return out

    targets: list[dict[str, Any]] = []
    if out.get("tools"):
        out["tools"] = _last_copied(list(out["tools"]))
        targets.append(out["tools"][-1])
    system = out.get("system")
    if isinstance(system, str) and system:
        out["system"] = [{"type": "text", "text": system}]
        targets.append(out["system"][-1])
    elif isinstance(system, list | tuple) and system:
        out["system"] = _last_copied(list(system))
        targets.append(out["system"][-1])
    messages = list(out.get("messages") or [])
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if users:
        last = messages[users[-1]] = dict(messages[users[-1]])
        content = last.get("content")
        if isinstance(content, str):
            last["content"] = [{"type": "text", "text": content}]
        elif isinstance(content, list | tuple) and content:
            last["content"] = _last_copied(list(content))
        if last.get("content"):
            targets.append(last["content"][-1])
        out["messages"] = messages

    for block in targets:
        if budget <= 0:
            break
        if _cacheable(block) and "cache_control" not in block:
            block["cache_control"] = dict(CACHE_CONTROL)
            budget -= 1
    return out
