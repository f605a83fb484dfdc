"""The diagnose tools' argument models: what a teacher's tool call is validated against.

Strict models (no coercion, unknown keys refused) so a tool never runs on a guess; `tool_args` turns a
raw call into its model or a `ToolError` message the teacher can act on. The JSON schemas the teacher
is shown are in `diagnose_tools.py`; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill_es.domain.payloads import SafeName
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS
from distill_es.phases.teacher_protocol import ToolError, as_object, describe_errors, short_repr

MAX_CLUSTERS = 20


class ToolArgs(BaseModel):
    # strict: "5" is not an int and true is not a number; unknown keys are refused
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class NoArgs(ToolArgs):
    pass


class ListTracesArgs(ToolArgs):
    limit: int = Field(default=20, ge=1)
    agent: str | None = None
    outcome: Literal["success", "failure"] | None = None
    min_feedback: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_feedback: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)


class GetTraceArgs(ToolArgs):
    trace_id: str = Field(min_length=1)


class SearchTracesArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=1_000)
    limit: int = Field(default=20, ge=1)


class AgentNameArgs(ToolArgs):
    agent_name: SafeName


class ToolNameArgs(ToolArgs):
    tool_name: str = Field(min_length=1, max_length=200)


class ListBenchmarkArgs(ToolArgs):
    limit: int = Field(default=50, ge=1)
    category: str | None = None


class TaskIdArgs(ToolArgs):
    task_id: str = Field(min_length=1)


class CompareArgs(ToolArgs):
    task_id: str = Field(min_length=1)
    student_output: str = Field(max_length=100_000)
    teacher_output: str = Field(max_length=100_000)


class ClusterArgs(ToolArgs):
    id: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    sample_trace_ids: list[str] = Field(default_factory=list, max_length=500)
    task_ids: list[str] = Field(default_factory=list, max_length=1_000)
    student_failure_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    teacher_success_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    skill_gap: str = Field(default="", max_length=20_000)


class DiagnosisArgs(ToolArgs):
    diagnosis_markdown: str = Field(max_length=200_000)
    clusters: list[ClusterArgs] = Field(max_length=MAX_CLUSTERS)


# In the order of the tool definitions; the toolbox runs every tool here but submit_diagnosis.
INPUT_MODELS: dict[str, type[ToolArgs]] = {
    "list_traces": ListTracesArgs,
    "get_trace": GetTraceArgs,
    "search_traces": SearchTracesArgs,
    "get_current_config": NoArgs,
    "get_agent_prompt": AgentNameArgs,
    "get_tool_description": ToolNameArgs,
    "list_available_tools": NoArgs,
    "list_personal_benchmark": ListBenchmarkArgs,
    "run_student_on_task": TaskIdArgs,
    "run_self_on_task": TaskIdArgs,
    "compare_outputs": CompareArgs,
    SUBMIT_DIAGNOSIS: DiagnosisArgs,
}

RUNNABLE_TOOLS = tuple(name for name in INPUT_MODELS if name != SUBMIT_DIAGNOSIS)


def tool_args(name: Any, tool_input: Any) -> ToolArgs:
    """The validated arguments of a call of a runnable tool; `ToolError` says what is wrong."""
    if name == SUBMIT_DIAGNOSIS:
        raise ToolError("submit_diagnosis ends the phase and is handled by the engine, not run as a tool")
    if not isinstance(name, str) or name not in RUNNABLE_TOOLS:
        raise ToolError(f"unknown tool {short_repr(name)}; available tools: {', '.join(RUNNABLE_TOOLS)}")
    data = as_object(tool_input, name)
    try:
        return INPUT_MODELS[name].model_validate(data)
    except ValidationError as exc:
        raise ToolError(f"invalid input for {name}: {describe_errors(exc)}") from None
