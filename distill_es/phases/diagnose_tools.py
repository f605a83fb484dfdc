"""The diagnose tools as the teacher is shown them: one JSON-schema definition per tool, in a fixed order.

Their JSON is part of every hashed diagnose request (cassettes, resume): any change here changes every
request digest, so the table is deterministic and edited only on purpose. The argument models that
validate the calls are in `diagnose_inputs.py`.
"""

from __future__ import annotations

import json
from typing import Any

from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _integer(description: str, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "default": default, "description": description}


def _fraction(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": description}


def _string_list(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_CLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": _string("Short unique id, e.g. 'math-units'. Edits name it in expected_improvement."),
        "description": _string("What goes wrong, in a sentence or two."),
        "sample_trace_ids": _string_list("Ids of traces that show the failure."),
        "task_ids": _string_list(
            "Ids of personal-benchmark tasks that measure this cluster; the gate scores the cluster "
            "over exactly these tasks. Must exist in list_personal_benchmark."
        ),
        "student_failure_rate": _fraction("Fraction (0 to 1) of this cluster's tasks the student failed."),
        "teacher_success_rate": _fraction("Fraction (0 to 1) of this cluster's tasks you solved."),
        "skill_gap": _string("What the student lacks that you have, and what might close the gap."),
    },
    "required": [
        "id",
        "description",
        "task_ids",
        "student_failure_rate",
        "teacher_success_rate",
        "skill_gap",
    ],
    "additionalProperties": False,
}

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    _tool(
        "list_traces",
        "List recent student traces (newest first) with id, query excerpt, agent, model, outcome and "
        "feedback. Filters are applied before the limit.",
        {
            "limit": _integer("Maximum number of traces to return (at most 50).", 20),
            "agent": _string("Only traces of this agent."),
            "outcome": {
                "type": "string",
                "enum": ["success", "failure"],
                "description": "Only this outcome.",
            },
            "min_feedback": _fraction("Only traces with feedback >= this (traces without feedback drop)."),
            "max_feedback": _fraction("Only traces with feedback <= this (traces without feedback drop)."),
        },
        [],
    ),
    _tool(
        "get_trace",
        "Full detail of one trace: query, result, steps, tokens, latency.",
        {"trace_id": _string("The trace id.")},
        ["trace_id"],
    ),
    _tool(
        "search_traces",
        "Full-text search over trace queries and results.",
        {
            "query": _string("Keywords to search for."),
            "limit": _integer("Maximum number of traces to return (at most 20).", 20),
        },
        ["query"],
    ),
    _tool("get_current_config", "The student's config.toml (agents, tools, models, routing).", {}, []),
    _tool(
        "get_agent_prompt",
        "The system prompt of an agent (agents/<agent_name>/system_prompt.md).",
        {"agent_name": _string("The agent's name, as in config.toml [agent.<name>].")},
        ["agent_name"],
    ),
    _tool(
        "get_tool_description",
        "The description the student sees for a tool (tools/descriptions.toml).",
        {"tool_name": _string("The tool's name.")},
        ["tool_name"],
    ),
    _tool(
        "list_available_tools",
        "Every known tool with its description and the agents that currently enable it.",
        {},
        [],
    ),
    _tool(
        "list_personal_benchmark",
        "The personal benchmark tasks (task_id, query, reference answer, category).",
        {
            "limit": _integer("Maximum number of tasks to return.", 50),
            "category": _string("Only tasks of this category."),
        },
        [],
    ),
    _tool(
        "run_student_on_task",
        "Run the student, as currently configured, on one benchmark task; returns its output and score.",
        {"task_id": _string("A task_id from list_personal_benchmark.")},
        ["task_id"],
    ),
    _tool(
        "run_self_on_task",
        "Answer one benchmark task yourself (a separate call, charged to the budget); returns your "
        "output and its score.",
        {"task_id": _string("A task_id from list_personal_benchmark.")},
        ["task_id"],
    ),
    _tool(
        "compare_outputs",
        "Score a student output and a teacher output for the same task with the judge.",
        {
            "task_id": _string("A task_id from list_personal_benchmark."),
            "student_output": _string("The student's answer."),
            "teacher_output": _string("Your answer."),
        },
        ["task_id", "student_output", "teacher_output"],
    ),
    _tool(
        SUBMIT_DIAGNOSIS,
        "Submit the final diagnosis. This ends the diagnose phase; call it exactly once.",
        {
            "diagnosis_markdown": _string("The full diagnosis in Markdown."),
            "clusters": {"type": "array", "items": _CLUSTER_SCHEMA, "description": "The failure clusters."},
        },
        ["diagnosis_markdown", "clusters"],
    ),
]


_TOOL_DEFINITIONS_JSON = json.dumps(TOOL_DEFINITIONS)  # serialised once per process


def tool_definitions() -> list[dict[str, Any]]:
    """A fresh deep copy, so a caller adding cache markers cannot change the module's definitions."""
    return json.loads(_TOOL_DEFINITIONS_JSON)
