"""The diagnose conversation, rebuilt from recorded turns.

The request for turn n+1 is a pure function of the settings and the n recorded turns (teacher
responses plus the tool results that answered them). So a resumed session sends exactly the
request an uninterrupted one would have sent, and a cassette keyed by request digest replays it.
"""

from __future__ import annotations

from typing import Any

from distill_es.adapters.teacher import with_prompt_cache
from distill_es.domain.session.records import DiagnoseTurn
from distill_es.phases.diagnose_tools import DIAGNOSE_USER_PROMPT, diagnose_system_prompt, tool_definitions

NUDGE = (
    "You ended your turn without calling a tool. Continue the investigation with the tools, and finish "
    "by calling submit_diagnosis with your diagnosis and clusters."
)


def assistant_blocks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a recorded response that go back into the conversation, in a canonical shape."""
    blocks: list[dict[str, Any]] = []
    for block in response.get("content", []):
        if block.get("type") == "text" and block.get("text"):
            blocks.append({"type": "text", "text": block["text"]})
        elif block.get("type") == "tool_use":
            blocks.append(
                {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": block.get("input", {}),
                }
            )
    return blocks or [{"type": "text", "text": "(no content)"}]


def conversation(turns: list[DiagnoseTurn]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": DIAGNOSE_USER_PROMPT}]
    for turn in turns:
        messages.append({"role": "assistant", "content": assistant_blocks(turn.response)})
        uses = turn.tool_uses()
        if not uses:
            messages.append({"role": "user", "content": NUDGE})
            continue
        results = []
        for use in uses:
            recorded = turn.results.get(use["id"])
            if recorded is None:  # the phase ended on an earlier call of this turn
                continue
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": use["id"],
                    "content": recorded.content,
                    "is_error": recorded.is_error,
                }
            )
        messages.append({"role": "user", "content": results})
    return messages


def diagnose_request(settings: dict[str, Any], turns: list[DiagnoseTurn]) -> dict[str, Any]:
    """Params for `messages.create` for the next diagnose turn."""
    teacher, session = settings["teacher"], settings["session"]
    params: dict[str, Any] = {
        "model": teacher["model"],
        "max_tokens": int(teacher["max_tokens"]),
        "system": diagnose_system_prompt(int(session["max_turns"]), float(session["max_cost_usd"])),
        "tools": tool_definitions(),
        "messages": conversation(turns),
    }
    return with_prompt_cache(params) if teacher.get("prompt_caching", True) else params
