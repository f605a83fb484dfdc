"""The plan request: one forced `submit_plan` call, its tool schema and its prompts.

The system prompt is generated from `PAYLOAD_MODELS`, so it lists exactly the payload fields the
appliers validate, and it contains no unformatted `{{ }}` (a fix to the reference planner, spec
search §5). The request is part of a hashed call (cassettes, resume): it is deterministic.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from distill_es.domain.payloads import PAYLOAD_MODELS
from distill_es.domain.policy import assign_tier
from distill_es.domain.scrub import scrub
from distill_es.domain.teacher_reply import SUBMIT_PLAN
from distill_es.domain.vocabulary import OP_PILLAR, EditOp, EditPillar, EditRiskTier, FailureCluster
from distill_es.phases.clusters import surviving_clusters

_EDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "Unique id, e.g. 'edit_001'."},
        "pillar": {"type": "string", "enum": [p.value for p in EditPillar]},
        "op": {"type": "string", "enum": [op.value for op in EditOp]},
        "target": {"type": "string", "description": "What the edit touches, e.g. 'agent.simple'."},
        "payload": {"type": "object", "description": "The op's fields, as listed in the instructions."},
        "rationale": {"type": "string", "description": "Why this edit should close the cluster's gap."},
        "expected_improvement": {"type": "string", "description": "The id of the cluster it should improve."},
        "risk_tier": {
            "type": "string",
            "enum": [t.value for t in EditRiskTier],
            "description": "Advisory; the engine assigns the real tier.",
        },
        "references": {"type": "array", "items": {"type": "string"}, "description": "Trace or task ids."},
    },
    "required": ["id", "pillar", "op", "payload", "rationale", "expected_improvement"],
    "additionalProperties": False,
}

PLAN_TOOL: dict[str, Any] = {
    "name": SUBMIT_PLAN,
    "description": "Submit the learning plan: the edits to the student's configuration.",
    "input_schema": {
        "type": "object",
        "properties": {"edits": {"type": "array", "items": _EDIT_SCHEMA}},
        "required": ["edits"],
        "additionalProperties": False,
    },
}

_PLAN_TOOL_JSON = json.dumps(PLAN_TOOL)  # serialised once; each request decodes its own copy


def _schema_type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON-schema type as short prose: `string`, `list of {user: string, ...}`, `a | b`."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        fields = ", ".join(f"{n}: {_schema_type(s, defs)}" for n, s in target.get("properties", {}).items())
        return "{" + fields + "}"
    if "anyOf" in schema:
        return " | ".join(_schema_type(s, defs) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_grouped(schema.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {_grouped(schema['additionalProperties'], defs)}"
    return str(kind)


def _grouped(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    text = _schema_type(schema, defs)
    return f"({text})" if "anyOf" in schema else text


def _op_line(op: EditOp) -> str:
    schema = PAYLOAD_MODELS[op].model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, field in schema.get("properties", {}).items():
        text = f"{name}: {_schema_type(field, defs)}"
        if name not in required:
            text += (
                f" (optional, default {json.dumps(field['default'])})"
                if "default" in field
                else " (optional)"
            )
        fields.append(text)
    return (
        f"- `{op.value}` (pillar `{OP_PILLAR[op].value}`, tier `{assign_tier(op).value}`): "
        f"payload fields {'; '.join(fields)}"
    )


_PLAN_INTRO = """\
You are a meta-engineer. A diagnosis of a local AI agent (the "student") found failure clusters. \
Propose edits to the student's configuration that close the skill gap of each cluster: 1 to 3 edits \
per cluster, the smallest change that can work first.

Every edit is applied on its own and kept only if the benchmark score of its target cluster (the \
cluster's task_ids) rises and no other cluster drops by more than a small margin. So each edit names \
exactly one cluster in expected_improvement, and edits should not depend on each other.

Edit fields: id (unique, e.g. "edit_001"), pillar, op, target (e.g. "agent.simple", \
"models.qwen3", "tools.calc"), payload, rationale, expected_improvement (a cluster id from the list \
you are given), risk_tier (advisory: the engine assigns the real tier from the op), references (trace \
or task ids). Unknown fields are refused, and pillar must be the op's pillar.

Ops and their payloads (names that become paths may use letters, digits, '_', '-', '.'):"""

_PLAN_RULES = """\
Rules for prompt edits:
- patch_system_prompt's diff is a unified diff against the agent's current system prompt: hunk \
headers "@@ -start,count +start,count @@" with 1-based line numbers and exact counts, context lines \
starting with a space, removed lines with "-", added lines with "+". Every context and removed line \
must match the current prompt exactly, or the edit is rejected.
- A patch that changes more than half of the prompt's lines is turned into replace_system_prompt \
with the patched text; for a rewrite, use replace_system_prompt with the complete new prompt.
- Give the agent name in the payload ("agent").

Call submit_plan once with all the edits."""


@functools.cache  # 11 pydantic JSON schemas: the same text for the life of the process
def plan_system_prompt() -> str:
    """The planner's instructions; the op list is generated from the payload models."""
    ops = "\n".join(_op_line(op) for op in PAYLOAD_MODELS)
    return f"{_PLAN_INTRO}\n{ops}\n\n{_PLAN_RULES}"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def plan_user_prompt(
    diagnosis_markdown: str,
    clusters: Iterable[FailureCluster],
    current_prompts: Mapping[str, str] | None = None,
) -> str:
    """Diagnosis, the surviving clusters as JSON, and (optionally) the agents' current prompts."""
    kept, dropped = surviving_clusters(clusters)
    fields = {
        "id",
        "description",
        "sample_trace_ids",
        "task_ids",
        "student_failure_rate",
        "teacher_success_rate",
        "skill_gap",
    }
    cluster_json = json.dumps(
        [c.model_dump(mode="json", include=fields) for c in kept], indent=2, ensure_ascii=False
    )
    parts = [
        "## Diagnosis",
        diagnosis_markdown.strip() or "(empty)",
        "## Failure clusters",
        f"```json\n{cluster_json}\n```",
    ]
    if dropped:
        names = ", ".join(c.id for c in dropped)
        parts.append(f"Dropped for insufficient evidence (do not target them): {names}")
    for agent in sorted(current_prompts or {}):
        text = scrub((current_prompts or {})[agent])  # workspace file text: scrubbed like the tools
        fence = _fence(text)
        parts += [f"## Current system prompt of agent `{agent}`", f"{fence}\n{text.rstrip(chr(10))}\n{fence}"]
    parts.append(
        "Call submit_plan with your edits; every expected_improvement must be one of the cluster ids above."
    )
    return "\n\n".join(parts)


def build_plan_request(
    model: str,
    max_tokens: int,
    diagnosis_markdown: str,
    clusters: Iterable[FailureCluster],
    current_prompts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Parameters for `messages.create`: one forced `submit_plan` call."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": plan_system_prompt(),
        "messages": [
            {"role": "user", "content": plan_user_prompt(diagnosis_markdown, clusters, current_prompts)}
        ],
        "tools": [json.loads(_PLAN_TOOL_JSON)],  # a copy: callers may add cache markers
        "tool_choice": {"type": "tool", "name": SUBMIT_PLAN},
    }
