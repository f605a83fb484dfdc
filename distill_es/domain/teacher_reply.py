"""The teacher's reply as recorded (an Anthropic Messages response as a dict): the names of the tools
the engine defines, and the one way to read text and tool calls out of a reply.

A reply is hostile data: any block may be missing fields or not be a dict at all, so every reader
here skips what it cannot read instead of raising.
"""

from __future__ import annotations

from typing import Any

SUBMIT_DIAGNOSIS = "submit_diagnosis"
SUBMIT_PLAN = "submit_plan"


def blocks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The reply's content blocks that are objects (anything else is skipped)."""
    content = response.get("content") if isinstance(response, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def text_of(response: dict[str, Any]) -> str:
    """The reply's text blocks joined, as the teacher wrote them."""
    return "".join(
        b["text"] for b in blocks(response) if b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def tool_uses(response: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    """The reply's tool_use blocks, in order (only those calling `name`, when given)."""
    return [
        b for b in blocks(response) if b.get("type") == "tool_use" and (name is None or b.get("name") == name)
    ]


def tool_input(response: dict[str, Any], name: str) -> Any | None:
    """The input of the reply's first call of tool `name`, or None when it made no such call."""
    calls = tool_uses(response, name)
    return calls[0].get("input") if calls else None


def tokens_of(response: dict[str, Any]) -> int:
    """The reply's tokens, read and written (cache reads and writes included); 0 when unreported."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return 0
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(n for key in keys if isinstance(n := usage.get(key), int) and not isinstance(n, bool))
