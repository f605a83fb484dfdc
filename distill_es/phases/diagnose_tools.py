"""The diagnose toolbox: tool definitions, their execution, and the parse of `submit_diagnosis`.

Pure phase logic: the engine performs the teacher calls and records every result; this module only
turns a tool call into the text that goes back to the teacher (plus the student/self runs the engine
must record). Fixes to the reference (spec search §4.3, §11.12, §11.14):
- `execute` never raises but `SessionInterrupted`: bad input, unknown tools and failing ports become
  `is_error` results, while an endpoint that is down (student, judge, teacher) interrupts the step;
- feedback filters are applied before the limit; `list_available_tools` says which agents use a tool;
- every trace, prompt and config text is scrubbed of secrets before it is sent;
- `parse_diagnosis` validates rates in [0, 1] (a 5 is an error, not 0.05) and task ids against the
  benchmark, and its message tells the teacher what shape to send instead.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill_es.domain.errors import DistillError, InvalidEdit, InvalidTeacherOutput, SessionInterrupted
from distill_es.domain.layout import CONFIG_FILE, DESCRIPTIONS_FILE, prompt_path
from distill_es.domain.payloads import SafeName
from distill_es.domain.scrub import scrub, scrub_obj
from distill_es.domain.teacher_reply import SUBMIT_DIAGNOSIS
from distill_es.domain.vocabulary import FailureCluster, Value
from distill_es.ports import BenchmarkTask, Judge, StudentResult, StudentRunner, TraceRecord, TraceSource
from distill_es.workspace.files import read_inside

MAX_CLUSTERS = 20


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


class ToolOutcome(Value):
    content: str  # what goes back to the teacher as the tool_result
    is_error: bool = False
    student_result: StudentResult | None = None  # for the engine's records
    self_run: SelfRun | None = None


class Diagnosis(Value):
    markdown: str
    clusters: list[FailureCluster]


# --- tool inputs --------------------------------------------------------------------------------


class _Input(BaseModel):
    # strict: "5" is not an int and true is not a number; unknown keys are refused
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _NoInput(_Input):
    pass


class _ListTraces(_Input):
    limit: int = Field(default=20, ge=1)
    agent: str | None = None
    outcome: Literal["success", "failure"] | None = None
    min_feedback: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_feedback: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)


class _GetTrace(_Input):
    trace_id: str = Field(min_length=1)


class _SearchTraces(_Input):
    query: str = Field(min_length=1, max_length=1_000)
    limit: int = Field(default=20, ge=1)


class _AgentName(_Input):
    agent_name: SafeName


class _ToolName(_Input):
    tool_name: str = Field(min_length=1, max_length=200)


class _ListBenchmark(_Input):
    limit: int = Field(default=50, ge=1)
    category: str | None = None


class _TaskId(_Input):
    task_id: str = Field(min_length=1)


class _Compare(_Input):
    task_id: str = Field(min_length=1)
    student_output: str = Field(max_length=100_000)
    teacher_output: str = Field(max_length=100_000)


class _ClusterInput(_Input):
    id: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    sample_trace_ids: list[str] = Field(default_factory=list, max_length=500)
    task_ids: list[str] = Field(default_factory=list, max_length=1_000)
    student_failure_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    teacher_success_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    skill_gap: str = Field(default="", max_length=20_000)


class _DiagnosisInput(_Input):
    diagnosis_markdown: str = Field(max_length=200_000)
    clusters: list[_ClusterInput] = Field(max_length=MAX_CLUSTERS)


INPUT_MODELS: dict[str, type[_Input]] = {
    "list_traces": _ListTraces,
    "get_trace": _GetTrace,
    "search_traces": _SearchTraces,
    "get_current_config": _NoInput,
    "get_agent_prompt": _AgentName,
    "get_tool_description": _ToolName,
    "list_available_tools": _NoInput,
    "list_personal_benchmark": _ListBenchmark,
    "run_student_on_task": _TaskId,
    "run_self_on_task": _TaskId,
    "compare_outputs": _Compare,
    SUBMIT_DIAGNOSIS: _DiagnosisInput,
}


# --- tool definitions (their JSON is part of a hashed request: keep them deterministic) ----------


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

_EXPECTED_DIAGNOSIS = (
    'Expected: {"diagnosis_markdown": "<markdown>", "clusters": [{"id": "<unique id>", "description": '
    '"...", "sample_trace_ids": ["..."], "task_ids": ["<benchmark task_id>", ...], '
    '"student_failure_rate": <number 0..1>, "teacher_success_rate": <number 0..1>, "skill_gap": "..."}]}. '
    "Rates are fractions between 0 and 1 (0.6, not 60)."
)


# --- helpers -------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _cut(text: str | None, limit: int) -> str | None:
    """A field excerpt with a marker saying how long it was."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated from {len(text)} chars]"


def truncate_result(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n...[truncated from {len(text)} chars]"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """Validation errors as `where: message (got value)`, the value only when it is short."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        got = err.get("input")
        shown = f" (got {_short_repr(got)})" if isinstance(got, str | int | float | bool) else ""
        parts.append(f"{where}: {err['msg']}{shown}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class _ToolError(Exception):
    """A message for the teacher; becomes an `is_error` outcome."""


def _as_object(tool_input: Any, what: str) -> dict[str, Any]:
    """The input as a dict: None is empty, a JSON string is parsed, anything else is refused."""
    if tool_input is None:
        return {}
    if isinstance(tool_input, str):
        try:
            tool_input = json.loads(tool_input) if tool_input.strip() else {}
        except (ValueError, RecursionError):
            raise _ToolError(f"{what} input is a string that is not JSON; send a JSON object") from None
        if tool_input is None:
            return {}
    if not isinstance(tool_input, dict):
        raise _ToolError(f"{what} input must be a JSON object, got {type(tool_input).__name__}")
    return tool_input


def _read_file(home: Path, relative: str) -> str | None:
    """A workspace file's text (None when absent), read only inside the workspace, like writes."""
    try:
        return read_inside(home, relative)
    except InvalidEdit:  # where it points is none of the teacher's business
        raise _ToolError(
            f"refused to read {relative}: it resolves outside the workspace (or into engine files)"
        ) from None
    except DistillError as exc:  # a directory, bad UTF-8
        raise _ToolError(f"cannot read {relative}: {exc}") from None


def _read_toml(home: Path, relative: str) -> dict[str, Any] | None:
    text = _read_file(home, relative)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _ToolError(f"{relative} is not valid TOML: {exc}") from None


# --- the toolbox --------------------------------------------------------------------------------


class Toolbox:
    """Executes the diagnose tools against the workspace and the ports."""

    def __init__(
        self,
        *,
        home: Path,
        traces: TraceSource,
        benchmark: list[BenchmarkTask],
        student: StudentRunner,
        judge: Judge,
        self_run: Callable[[str], SelfRun],
        limits: ToolLimits | None = None,
    ) -> None:
        self.home = Path(home)
        self.traces = traces
        self.benchmark = list(benchmark)
        self.student = student
        self.judge = judge
        self.self_run = self_run
        self.limits = limits or ToolLimits()
        self._tasks: dict[str, BenchmarkTask] = {}
        for task in self.benchmark:
            self._tasks.setdefault(task.task_id, task)
        self._handlers: dict[str, Callable[[Any], ToolOutcome]] = {
            "list_traces": self._list_traces,
            "get_trace": self._get_trace,
            "search_traces": self._search_traces,
            "get_current_config": self._get_current_config,
            "get_agent_prompt": self._get_agent_prompt,
            "get_tool_description": self._get_tool_description,
            "list_available_tools": self._list_available_tools,
            "list_personal_benchmark": self._list_personal_benchmark,
            "run_student_on_task": self._run_student_on_task,
            "run_self_on_task": self._run_self_on_task,
            "compare_outputs": self._compare_outputs,
        }

    def execute(self, name: str, tool_input: Any) -> ToolOutcome:
        """Run one tool call. Never raises: every failure is an `is_error` outcome for the teacher."""
        try:
            outcome = self._dispatch(name, tool_input)
        except _ToolError as exc:
            outcome = ToolOutcome(content=scrub(str(exc)), is_error=True)
        except SessionInterrupted:
            # A dead student, judge or teacher is not an answer to give the teacher: the step stops
            # and is resumed once the endpoint is back, so the teacher never diagnoses an outage.
            raise
        except Exception as exc:  # a failing port must not end the phase: the teacher hears about it
            outcome = ToolOutcome(
                content=scrub(f"tool {name!r} failed: {type(exc).__name__}: {exc}"), is_error=True
            )
        # Every tool's text passes here: one last scrub catches what a handler did not (names, ids,
        # categories, messages quoting files). Idempotent, so scrubbed fields are unchanged.
        outcome = outcome.model_copy(update={"content": scrub(outcome.content)})
        limit = self.limits.max_result_chars
        if len(outcome.content) > limit:
            outcome = outcome.model_copy(update={"content": truncate_result(outcome.content, limit)})
        return outcome

    def _dispatch(self, name: str, tool_input: Any) -> ToolOutcome:
        if name == SUBMIT_DIAGNOSIS:
            raise _ToolError(
                "submit_diagnosis ends the phase and is handled by the engine, not run as a tool"
            )
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            raise _ToolError(
                f"unknown tool {_short_repr(name)}; available tools: {', '.join(self._handlers)}"
            )
        data = _as_object(tool_input, name)
        try:
            args = INPUT_MODELS[name].model_validate(data)
        except ValidationError as exc:
            raise _ToolError(f"invalid input for {name}: {describe_errors(exc)}") from None
        return handler(args)

    def _task(self, task_id: str) -> BenchmarkTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise _ToolError(
                f"task {_short_repr(task_id)} is not in the personal benchmark; "
                "use list_personal_benchmark to see the task ids"
            )
        return task

    # traces

    def _trace_summary(self, trace: TraceRecord, query_chars: int) -> dict[str, Any]:
        return {
            "trace_id": trace.trace_id,
            "query": _cut(scrub(trace.query), query_chars),
            "agent": trace.agent,
            "model": trace.model,
            "outcome": trace.outcome,
            "feedback": trace.feedback,
            "query_class": trace.query_class,
            "started_at": trace.started_at,
        }

    def _list_traces(self, args: _ListTraces) -> ToolOutcome:
        limit = min(args.limit, self.limits.max_list_limit)
        filtered = args.min_feedback is not None or args.max_feedback is not None
        # Feedback filters come before the limit (the reference cut first and then filtered).
        fetch = max(self.traces.count(), limit) if filtered else limit
        found = self.traces.list(limit=fetch, agent=args.agent, outcome=args.outcome)
        if filtered:
            lo = args.min_feedback if args.min_feedback is not None else 0.0
            hi = args.max_feedback if args.max_feedback is not None else 1.0
            found = [t for t in found if t.feedback is not None and lo <= t.feedback <= hi]
        chosen = found[:limit]
        body = {
            "returned": len(chosen),
            "matching": len(found) if filtered else None,
            "traces": [self._trace_summary(t, self.limits.list_query_chars) for t in chosen],
        }
        return ToolOutcome(content=_json(body))

    def _get_trace(self, args: _GetTrace) -> ToolOutcome:
        trace = self.traces.get(args.trace_id)
        if trace is None:
            raise _ToolError(f"trace {_short_repr(args.trace_id)} not found")
        lim = self.limits
        steps = [
            _cut(scrub(step) if isinstance(step, str) else scrub(_json(scrub_obj(step))), lim.step_chars)
            for step in trace.steps[: lim.trace_steps]
        ]
        body = {
            **self._trace_summary(trace, lim.trace_query_chars),
            "result": _cut(scrub(trace.result), lim.trace_result_chars),
            "total_tokens": trace.total_tokens,
            "latency_seconds": trace.latency_seconds,
            "steps": steps,
            "step_count": len(trace.steps),
            "metadata": scrub_obj(trace.metadata),
        }
        return ToolOutcome(content=_json(body))

    def _search_traces(self, args: _SearchTraces) -> ToolOutcome:
        limit = min(args.limit, self.limits.max_search_limit)
        try:
            found = self.traces.search(args.query, limit=limit)
        except Exception as exc:
            raise _ToolError(
                f"search_traces failed: {type(exc).__name__}: {exc}. Try a simpler keyword query."
            ) from None
        traces = []
        for trace in found[:limit]:
            summary = self._trace_summary(trace, self.limits.search_query_chars)
            summary["result"] = _cut(scrub(trace.result), self.limits.search_result_chars)
            traces.append(summary)
        return ToolOutcome(content=_json({"returned": len(traces), "traces": traces}))

    # workspace files

    def _agents(self) -> dict[str, dict[str, Any]]:
        """config.toml's `[agent.<name>]` tables (`[agent] default = ...` is not an agent)."""
        agents = (_read_toml(self.home, CONFIG_FILE) or {}).get("agent", {})
        if not isinstance(agents, dict):
            return {}
        return {name: table for name, table in sorted(agents.items()) if isinstance(table, dict)}

    def _agents_using(self) -> dict[str, list[str]]:
        """tool name → agents whose `[agent.<name>] tools` enables it."""
        using: dict[str, list[str]] = {}
        for agent, table in self._agents().items():
            tools = table.get("tools", [])
            for tool in tools if isinstance(tools, list) else []:
                if isinstance(tool, str) and agent not in using.setdefault(tool, []):
                    using[tool].append(agent)
        return using

    def _descriptions(self) -> dict[str, Any]:
        return _read_toml(self.home, DESCRIPTIONS_FILE) or {}

    def _get_current_config(self, _: _NoInput) -> ToolOutcome:
        text = _read_file(self.home, CONFIG_FILE)
        if text is None:
            return ToolOutcome(content="No config.toml found.")
        return ToolOutcome(content=scrub(text))

    def _get_agent_prompt(self, args: _AgentName) -> ToolOutcome:
        text = _read_file(self.home, prompt_path(args.agent_name))
        if text is not None:
            return ToolOutcome(content=scrub(text))
        agents = self._agents()
        if args.agent_name in agents:
            return ToolOutcome(content=f"Agent {args.agent_name!r} has no system_prompt.md override.")
        prompts = {p.parent.name for p in (self.home / "agents").glob("*/system_prompt.md")}
        known = sorted(set(agents) | prompts)
        raise _ToolError(f"no agent {args.agent_name!r}; known agents: {', '.join(known) or 'none'}")

    def _get_tool_description(self, args: _ToolName) -> ToolOutcome:
        table = self._descriptions().get(args.tool_name)
        if isinstance(table, dict) and isinstance(table.get("description"), str):
            return ToolOutcome(content=scrub(table["description"]))
        if args.tool_name in self._agents_using() or isinstance(table, dict):
            return ToolOutcome(
                content=f"Tool {args.tool_name!r} has no description in tools/descriptions.toml."
            )
        known = sorted(set(self._descriptions()) | set(self._agents_using()))
        raise _ToolError(f"no tool {args.tool_name!r}; known tools: {', '.join(known) or 'none'}")

    def _list_available_tools(self, _: _NoInput) -> ToolOutcome:
        descriptions = self._descriptions()
        using = self._agents_using()
        tools = []
        for name in sorted(set(descriptions) | set(using)):
            table = descriptions.get(name)
            text = table.get("description") if isinstance(table, dict) else None
            tools.append(
                {
                    "name": name,
                    "description": _cut(scrub(text), self.limits.tool_description_chars)
                    if isinstance(text, str)
                    else None,
                    "agents": using.get(name, []),
                }
            )
        return ToolOutcome(content=_json({"tools": tools}))

    # benchmark and runs

    def _list_personal_benchmark(self, args: _ListBenchmark) -> ToolOutcome:
        tasks = [t for t in self.benchmark if args.category is None or t.category == args.category]
        limit = min(args.limit, self.limits.max_benchmark_limit)
        chars = self.limits.benchmark_text_chars
        rows = [
            {
                "task_id": t.task_id,
                "query": _cut(scrub(t.query), chars),
                "reference_answer": _cut(scrub(t.reference_answer), chars),
                "category": t.category,
                "query_class": t.query_class,
            }
            for t in tasks[:limit]
        ]
        return ToolOutcome(content=_json({"total": len(tasks), "returned": len(rows), "tasks": rows}))

    def _judge(self, task: BenchmarkTask, output: str) -> dict[str, Any]:
        try:
            verdict = self.judge.score(task, output)
        except SessionInterrupted:
            raise
        except Exception as exc:
            return {"score": None, "judge_error": scrub(f"{type(exc).__name__}: {exc}")}
        return {"score": verdict.score, "judge_reasoning": scrub(verdict.reasoning)}

    def _run_student_on_task(self, args: _TaskId) -> ToolOutcome:
        task = self._task(args.task_id)
        result = self.student.run(task)
        body: dict[str, Any] = {
            "task_id": task.task_id,
            "output": scrub(result.output),
            "error": scrub(result.error) if result.error else None,
            "model": result.model,
            "latency_seconds": result.latency_seconds,
            "tokens_used": result.tokens_used,
        }
        # A student that could not answer failed the task; there is nothing to judge.
        body.update({"score": 0.0} if result.error else self._judge(task, result.output))
        return ToolOutcome(content=_json(body), student_result=result)

    def _run_self_on_task(self, args: _TaskId) -> ToolOutcome:
        task = self._task(args.task_id)
        run = self.self_run(scrub(task.query))
        body: dict[str, Any] = {"task_id": task.task_id, "output": run.output, "cost_usd": run.cost_usd}
        body.update(self._judge(task, run.output))
        return ToolOutcome(content=_json(body), self_run=run)

    def _compare_outputs(self, args: _Compare) -> ToolOutcome:
        task = self._task(args.task_id)
        student, teacher = self._judge(task, args.student_output), self._judge(task, args.teacher_output)
        body = {
            "task_id": task.task_id,
            "student_score": student.get("score"),
            "teacher_score": teacher.get("score"),
            "student_reasoning": student.get("judge_reasoning", student.get("judge_error")),
            "teacher_reasoning": teacher.get("judge_reasoning", teacher.get("judge_error")),
        }
        return ToolOutcome(content=_json(body))


# --- submit_diagnosis ----------------------------------------------------------------------------


def parse_diagnosis(tool_input: Any, benchmark_ids: Collection[str]) -> Diagnosis:
    """The `submit_diagnosis` input as a `Diagnosis`; `InvalidTeacherOutput` says what to fix.

    Zero clusters is a valid parse: the engine decides that a session without clusters fails.
    """
    try:
        data = _as_object(tool_input, SUBMIT_DIAGNOSIS)
    except _ToolError as exc:
        raise InvalidTeacherOutput(f"{exc}. {_EXPECTED_DIAGNOSIS}") from None
    try:
        parsed = _DiagnosisInput.model_validate(data)
    except ValidationError as exc:
        raise InvalidTeacherOutput(
            f"submit_diagnosis input is invalid: {describe_errors(exc)}. {_EXPECTED_DIAGNOSIS}"
        ) from None

    problems: list[str] = []
    seen: set[str] = set()
    known = set(benchmark_ids)
    for cluster in parsed.clusters:
        if cluster.id in seen:
            problems.append(f"cluster id {cluster.id!r} is used more than once (ids must be unique)")
        seen.add(cluster.id)
        unknown = [t for t in dict.fromkeys(cluster.task_ids) if t not in known]
        if unknown:
            names = ", ".join(repr(t) for t in unknown[:10]) + (" …" if len(unknown) > 10 else "")
            problems.append(
                f"cluster {cluster.id!r} names task ids that are not in the personal benchmark: {names} "
                "(use list_personal_benchmark for the task ids)"
            )
    if problems:
        raise InvalidTeacherOutput("submit_diagnosis input is invalid: " + "; ".join(problems))

    clusters = [
        FailureCluster(**{**cluster.model_dump(), "task_ids": list(dict.fromkeys(cluster.task_ids))})
        for cluster in parsed.clusters
    ]
    return Diagnosis(markdown=parsed.diagnosis_markdown, clusters=clusters)


# --- prompts -------------------------------------------------------------------------------------

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


def tool_definitions() -> list[dict[str, Any]]:
    """A fresh deep copy, so a caller adding cache markers cannot change the module's definitions."""
    return json.loads(json.dumps(TOOL_DEFINITIONS))


__all__ = [
    "DIAGNOSE_SYSTEM_PROMPT",
    "DIAGNOSE_USER_PROMPT",
    "SUBMIT_DIAGNOSIS",
    "TOOL_DEFINITIONS",
    "Diagnosis",
    "SelfRun",
    "ToolLimits",
    "ToolOutcome",
    "Toolbox",
    "diagnose_system_prompt",
    "parse_diagnosis",
    "tool_definitions",
]
