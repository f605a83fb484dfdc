"""Compact teacher replies for scripts: the server (or `ScriptedTeacher`) completes them into Messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from distill_es.demo.servers.json_http import Json


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
