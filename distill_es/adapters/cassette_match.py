"""How a cassette matches a live request to a recorded one, and how it says where they part.

The one rule (documented in docs/engine.md, "Cassettes"): a request is matched on `normalised(request)`,
applied alike to the recorded and the live request. It keeps everything that determines the teacher's
answer and masks what is measured afresh on every run:

- a tool result whose text is a JSON object or array (every diagnose tool answers so) is decoded, so
  the rule reaches inside it and a divergence is named down to the field;
- the value of every key in `VOLATILE_KEYS`, at any depth (tool results included), is replaced by
  `VOLATILE`. Today that is `latency_seconds`: the student's wall-clock time on a task, which the
  teacher is told (as OpenJarvis's `run_student_on_task` does) but which differs on every run.

Ids are not masked: the tool_use ids in a request are the ones the teacher's own (recorded) replies
chose, so a replay reproduces them exactly, and matching on them keeps each tool result tied to its
call. Timestamps in requests (a trace's `started_at`) are recorded data, not the clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from distill_es.adapters.teacher import jsonable
from distill_es.domain.chain import canonical_json

VOLATILE_KEYS = frozenset({"latency_seconds"})
VOLATILE = "<volatile>"
ABSENT = "<absent>"


def _decoded(text: str) -> Any:
    # Only whole JSON objects or arrays: a tool answering plain text (a prompt, config.toml) stays text.
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict | list) else text


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: VOLATILE if k in VOLATILE_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, str):
        return {**block, "content": _decoded(content)}
    if isinstance(content, list):
        parts = [
            {**part, "text": _decoded(part["text"])}
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
        return {**block, "content": parts}
    return block


def _decode_tool_results(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "tool_result":
            return _tool_result(value)
        return {k: _decode_tool_results(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tool_results(v) for v in value]
    return value


def normalised(request: Any) -> Any:
    """The request as it is matched: tool results decoded, volatile values masked (see the module)."""
    return _masked(_decode_tool_results(jsonable(request)))


def match_digest(request: Any) -> str:
    """sha256 hex of the canonical JSON of `normalised(request)`: equal for requests that match."""
    return hashlib.sha256(canonical_json(normalised(request)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Divergence:
    """The first place two (normalised) requests differ: its JSON path and the value on each side."""

    path: str
    recorded: Any
    now: Any

    def describe(self, width: int = 160) -> str:
        recorded, now, at = _windowed(_shown(self.recorded), _shown(self.now), width)
        where = f" (the values differ from character {at})" if at else ""
        return f"{self.path}{where}: recorded {recorded} vs now {now}"


def divergence(recorded: Any, now: Any, path: str = "") -> Divergence | None:
    """The first difference between two JSON values, keys in sorted order and lists by index."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in sorted(set(recorded) | set(now)):
            sub = f"{path}.{key}" if path else key
            if key not in recorded or key not in now:
                return Divergence(sub, recorded.get(key, ABSENT), now.get(key, ABSENT))
            found = divergence(recorded[key], now[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(now, list):
        for i in range(max(len(recorded), len(now))):
            if i >= len(recorded) or i >= len(now):
                return Divergence(
                    f"{path}[{i}]",
                    recorded[i] if i < len(recorded) else ABSENT,
                    now[i] if i < len(now) else ABSENT,
                )
            found = divergence(recorded[i], now[i], f"{path}[{i}]")
            if found is not None:
                return found
        return None
    same = type(recorded) is type(now) and recorded == now
    return None if same else Divergence(path or "<root>", recorded, now)


def first_difference(a: Any, b: Any) -> str | None:
    """The path of the first place two JSON values differ (`messages[3].content[0].text`), or None."""
    found = divergence(a, b)
    return None if found is None else found.path


def _shown(value: Any) -> str:
    return value if value in (ABSENT, VOLATILE) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _windowed(a: str, b: str, width: int) -> tuple[str, str, int]:
    """Both texts cut to `width` characters around where they first differ (same start in both), so
    the difference is always shown; `…` marks what was cut. Also: that offset when the texts were cut."""
    if len(a) <= width and len(b) <= width:
        return a, b, 0
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, common - width // 3)

    def cut(text: str) -> str:
        piece = text[start : start + width]
        return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")

    return cut(a), cut(b), common
