"""What goes back to the teacher from a tool call: the outcome value, its size limits, and the helpers
that shape every tool's text (JSON bodies, excerpts, error messages the teacher can act on).

Pure: the adapters that execute tools (`adapters/diagnose_toolbox.py`) build their results with these,
so every result is scrubbed and cut the same way whoever produced it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, ValidationError

from distill_es.domain.scrub import scrub
from distill_es.domain.vocabulary import Value
from distill_es.ports import StudentResult


class ToolLimits(Value):
    """Size limits of what goes back to the teacher (the reference's numbers, §4.3)."""

    max_result_chars: int = 20_000
    default_list_limit: int = 20
    max_list_limit: int = 50
    max_search_limit: int = 20
    list_query_chars: int = 200
    trace_query_chars: int = 2_000
    trace_result_chars: int = 6_000
    trace_steps: int = 20
    step_chars: int = 200
    search_query_chars: int = 300
    search_result_chars: int = 1_500
    default_benchmark_limit: int = 50
    max_benchmark_limit: int = 500
    benchmark_text_chars: int = 500
    tool_description_chars: int = 500


class SelfRun(Value):
    """The teacher answering a benchmark task itself; the engine performs and records the call."""

    output: str = ""
    cost_usd: float = Field(default=0.0, ge=0.0)
    tokens_used: int = Field(default=0, ge=0)  # read and written, as the reply's usage reports them


class ToolOutcome(Value):
    content: str  # what goes back to the teacher as the tool_result
    is_error: bool = False
    student_result: StudentResult | None = None  # for the engine's records
    self_run: SelfRun | None = None


class ToolError(Exception):
    """A message for the teacher; becomes an `is_error` outcome."""


def tool_json(value: Any) -> str:
    """A tool result body as the teacher reads it (not canonical: key order is the body's own)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def cut(text: str | None, limit: int) -> str | None:
    """A field excerpt with a marker saying how long it was."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated from {len(text)} chars]"


def truncate_result(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n...[truncated from {len(text)} chars]"


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """Validation errors as `where: message (got value)`, the value only when it is short."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        got = err.get("input")
        shown = f" (got {short_repr(got)})" if isinstance(got, str | int | float | bool) else ""
        parts.append(f"{where}: {err['msg']}{shown}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def as_object(tool_input: Any, what: str) -> dict[str, Any]:
    """The input as a dict: None is empty, a JSON string is parsed, anything else is refused."""
    if tool_input is None:
        return {}
    if isinstance(tool_input, str):
        try:
            tool_input = json.loads(tool_input) if tool_input.strip() else {}
        except (ValueError, RecursionError):
            raise ToolError(f"{what} input is a string that is not JSON; send a JSON object") from None
        if tool_input is None:
            return {}
    if not isinstance(tool_input, dict):
        raise ToolError(f"{what} input must be a JSON object, got {type(tool_input).__name__}")
    return tool_input


def error_outcome(message: str) -> ToolOutcome:
    return ToolOutcome(content=scrub(message), is_error=True)


def finished(outcome: ToolOutcome, limits: ToolLimits) -> ToolOutcome:
    """The outcome as it is sent: scrubbed once more and cut to the size limit.

    Every tool's text passes here: one last scrub catches what a handler did not (names, ids,
    categories, messages quoting files). Idempotent, so scrubbed fields are unchanged."""
    outcome = outcome.model_copy(update={"content": scrub(outcome.content)})
    limit = limits.max_result_chars
    if len(outcome.content) > limit:
        outcome = outcome.model_copy(update={"content": truncate_result(outcome.content, limit)})
    return outcome
