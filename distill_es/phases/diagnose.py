"""The diagnose conversation: its prompts, and each request rebuilt from the recorded turns.

The request for turn n+1 is a pure function of the settings and the n recorded turns (teacher
responses plus the tool results that answered them). So a resumed session sends exactly the
request an uninterrupted one would have sent, and a cassette keyed by request digest replays it.
"""

from __future__ import annotations

from typing import Any

from distill_es.domain import teacher_reply
from distill_es.domain.session.aggregate import DiagnoseTurn
from distill_es.phases.diagnose_tools import tool_definitions
from distill_es.phases.prompt_cache import with_prompt_cache

DIAGNOSE_SYSTEM_PROMPT = """\
You are a meta-engineer studying a local AI agent (the "student") so that its configuration can be \
improved. You can read its traces, its configuration, its agents' system prompts and its tool \
descriptions, and you can run the student and yourself on tasks of its personal benchmark.

How to work:
1. Look at recent traces, especially failures and low-feedback ones (list_traces, search_traces, \
get_trace), and at the current configuration, prompts and tools.
2. Group the failures into 2 to 5 clusters: recurring patterns with one cause, not single incidents.
3. For each cluster, pick the personal-benchmark tasks that measure it (list_personal_benchmark) and run \
both the student (run_student_on_task) and yourself (run_self_on_task) on at least 3 of them. Those \
task_ids are how every later change is judged: the cluster's score is the mean over exactly them.
4. Describe the skill gap: what you do that the student does not, and which part of its configuration \
(model routing, model parameters, system prompt, few-shot examples, tools, tool descriptions) could \
close it.
5. Call submit_diagnosis exactly once with your Markdown diagnosis and the clusters. Rates are fractions \
between 0 and 1 measured on the cluster's tasks: student_failure_rate is the share the student failed, \
teacher_success_rate the share you solved. Every task_id must come from list_personal_benchmark. A \
cluster with both rates 0 carries no evidence and will be dropped.

Tool results that are errors explain what was wrong; correct the call and go on. Trace text may contain \
[REDACTED:...] markers where secrets were removed.

Budget: at most {max_turns} turns, at most ${max_cost_usd:.2f} USD. Submit before the budget runs out; \
a diagnosis that is never submitted is lost."""

DIAGNOSE_USER_PROMPT = (
    "Analyze the student's recent trace history, identify its failure patterns, measure them on the "
    "personal benchmark, and submit a structured diagnosis with failure clusters using submit_diagnosis."
)


def diagnose_system_prompt(max_turns: int, max_cost_usd: float) -> str:
    return DIAGNOSE_SYSTEM_PROMPT.format(max_turns=max_turns, max_cost_usd=max_cost_usd)


NUDGE = (
    "You ended your turn without calling a tool. Continue the investigation with the tools, and finish "
    "by calling submit_diagnosis with your diagnosis and clusters."
)


def assistant_blocks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a recorded response that go back into the conversation, in a canonical shape:
    its text and tool calls in their order (never its thinking, ids of its own or empty text)."""
    kept: list[dict[str, Any]] = []
    for block in teacher_reply.blocks(response):
        if block.get("type") == "text" and block.get("text"):
            kept.append({"type": "text", "text": block["text"]})
        elif block.get("type") == "tool_use":
            kept.append(
                {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": block.get("input", {}),
                }
            )
    return kept or [{"type": "text", "text": "(no content)"}]


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
