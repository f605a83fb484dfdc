"""The diagnose toolbox: executes the teacher's tool calls against the workspace files, the traces,
the student and the judge.

The engine performs the teacher calls and records every result; this adapter turns one tool call into
the text that goes back to the teacher (plus the student/self runs the engine must record). What the
tools are, how their input is validated and how their results are shaped is pure phase logic
(`phases/diagnose_inputs.py`, `phases/diagnose_results.py`); this module only fetches. Fixes to the
reference (spec search §4.3, §11.12, §11.14):
- `execute` never raises but `SessionInterrupted`: bad input, unknown tools and failing ports become
  `is_error` results, while an endpoint that is down (student, judge, teacher) interrupts the step;
- feedback filters are applied before the limit; `list_available_tools` says which agents use a tool;
- every file is read only inside the workspace, as edits are written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_es.domain.errors import DistillError, InvalidEdit, SessionInterrupted
from distill_es.domain.layout import CONFIG_FILE, DESCRIPTIONS_FILE, prompt_path
from distill_es.domain.scrub import scrub
from distill_es.phases import diagnose_results as results
from distill_es.phases.diagnose_inputs import (
    AgentNameArgs,
    CompareArgs,
    GetTraceArgs,
    ListBenchmarkArgs,
    ListTracesArgs,
    NoArgs,
    SearchTracesArgs,
    TaskIdArgs,
    ToolNameArgs,
    tool_args,
)
from distill_es.phases.teacher_protocol import (
    SelfRun,
    ToolError,
    ToolLimits,
    ToolOutcome,
    error_outcome,
    finished,
    short_repr,
    tool_json,
)
from distill_es.ports import BenchmarkTask, Judge, StudentRunner, TraceSource
from distill_es.workspace.files import read_inside


def _read_file(home: Path, relative: str) -> str | None:
    """A workspace file's text (None when absent), read only inside the workspace, like writes."""
    try:
        return read_inside(home, relative)
    except InvalidEdit:  # where it points is none of the teacher's business
        raise ToolError(
            f"refused to read {relative}: it resolves outside the workspace (or into engine files)"
        ) from None
    except DistillError as exc:  # a directory, bad UTF-8
        raise ToolError(f"cannot read {relative}: {exc}") from None


def _read_toml(home: Path, relative: str) -> dict[str, Any] | None:
    text = _read_file(home, relative)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ToolError(f"{relative} is not valid TOML: {exc}") from None


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
        # One handler per runnable tool of `diagnose_inputs.INPUT_MODELS` (a test checks they match).
        self.handlers: dict[str, Callable[[Any], ToolOutcome]] = {
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
            args = tool_args(name, tool_input)
            outcome = self.handlers[name](args)
        except ToolError as exc:
            outcome = error_outcome(str(exc))
        except SessionInterrupted:
            # A dead student, judge or teacher is not an answer to give the teacher: the step stops
            # and is resumed once the endpoint is back, so the teacher never diagnoses an outage.
            raise
        except Exception as exc:  # a failing port must not end the phase: the teacher hears about it
            outcome = error_outcome(f"tool {name!r} failed: {type(exc).__name__}: {exc}")
        return finished(outcome, self.limits)

    def _task(self, task_id: str) -> BenchmarkTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise ToolError(
                f"task {short_repr(task_id)} is not in the personal benchmark; "
                "use list_personal_benchmark to see the task ids"
            )
        return task

    # traces

    def _list_traces(self, args: ListTracesArgs) -> ToolOutcome:
        limit = results.list_limit(args, self.limits)
        fetch = max(self.traces.count(), limit) if results.feedback_filtered(args) else limit
        found = self.traces.list(limit=fetch, agent=args.agent, outcome=args.outcome)
        return results.listed_traces(found, args, self.limits)

    def _get_trace(self, args: GetTraceArgs) -> ToolOutcome:
        trace = self.traces.get(args.trace_id)
        if trace is None:
            raise ToolError(f"trace {short_repr(args.trace_id)} not found")
        return results.trace_detail(trace, self.limits)

    def _search_traces(self, args: SearchTracesArgs) -> ToolOutcome:
        limit = results.search_limit(args, self.limits)
        try:
            found = self.traces.search(args.query, limit=limit)
        except Exception as exc:
            raise results.search_failed(exc) from None
        return results.searched_traces(found, limit, self.limits)

    # workspace files

    def _agents(self) -> dict[str, dict[str, Any]]:
        return results.agents_of(_read_toml(self.home, CONFIG_FILE))

    def _agents_using(self) -> dict[str, list[str]]:
        return results.agents_using(self._agents())

    def _descriptions(self) -> dict[str, Any]:
        return _read_toml(self.home, DESCRIPTIONS_FILE) or {}

    def _get_current_config(self, _: NoArgs) -> ToolOutcome:
        text = _read_file(self.home, CONFIG_FILE)
        if text is None:
            return ToolOutcome(content="No config.toml found.")
        return ToolOutcome(content=scrub(text))

    def _get_agent_prompt(self, args: AgentNameArgs) -> ToolOutcome:
        text = _read_file(self.home, prompt_path(args.agent_name))
        if text is not None:
            return ToolOutcome(content=scrub(text))
        agents = self._agents()
        if args.agent_name in agents:
            return ToolOutcome(content=f"Agent {args.agent_name!r} has no system_prompt.md override.")
        prompts = {p.parent.name for p in (self.home / "agents").glob("*/system_prompt.md")}
        raise results.unknown_agent(args.agent_name, agents, prompts)

    def _get_tool_description(self, args: ToolNameArgs) -> ToolOutcome:
        return results.tool_description(args.tool_name, self._descriptions(), self._agents_using())

    def _list_available_tools(self, _: NoArgs) -> ToolOutcome:
        return results.available_tools(self._descriptions(), self._agents_using(), self.limits)

    # benchmark and runs

    def _list_personal_benchmark(self, args: ListBenchmarkArgs) -> ToolOutcome:
        return results.benchmark_listing(self.benchmark, args, self.limits)

    def _judge(self, task: BenchmarkTask, output: str) -> dict[str, Any]:
        try:
            verdict = self.judge.score(task, output)
        except SessionInterrupted:
            raise
        except Exception as exc:
            return results.judge_failed(exc)
        return results.judged(verdict)

    def _run_student_on_task(self, args: TaskIdArgs) -> ToolOutcome:
        task = self._task(args.task_id)
        result = self.student.run(task)
        body = results.student_run(task, result)
        body.update(results.UNANSWERED if result.error else self._judge(task, result.output))
        return ToolOutcome(content=tool_json(body), student_result=result)

    def _run_self_on_task(self, args: TaskIdArgs) -> ToolOutcome:
        task = self._task(args.task_id)
        run = self.self_run(scrub(task.query))
        body = results.self_run(task, run)
        body.update(self._judge(task, run.output))
        return ToolOutcome(content=tool_json(body), self_run=run)

    def _compare_outputs(self, args: CompareArgs) -> ToolOutcome:
        task = self._task(args.task_id)
        student, teacher = self._judge(task, args.student_output), self._judge(task, args.teacher_output)
        return results.comparison(task, student, teacher)
