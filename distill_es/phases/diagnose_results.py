"""The bodies of the diagnose tools' results, shaped from the values the toolbox fetched.

Every trace, prompt, config and benchmark text is scrubbed of secrets and cut to the limits before it
goes back to the teacher. Pure: `adapters/diagnose_toolbox.py` reads the files and calls the ports,
then hands what it got to these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distill_es.domain.scrub import scrub, scrub_obj
from distill_es.phases.diagnose_inputs import ListBenchmarkArgs, ListTracesArgs, SearchTracesArgs
from distill_es.phases.teacher_protocol import SelfRun, ToolError, ToolLimits, ToolOutcome, cut, tool_json
from distill_es.ports import BenchmarkTask, JudgeVerdict, StudentResult, TraceRecord

# --- traces --------------------------------------------------------------------------------------


def trace_summary(trace: TraceRecord, query_chars: int) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "query": cut(scrub(trace.query), query_chars),
        "agent": trace.agent,
        "model": trace.model,
        "outcome": trace.outcome,
        "feedback": trace.feedback,
        "query_class": trace.query_class,
        "started_at": trace.started_at,
    }


def list_limit(args: ListTracesArgs, limits: ToolLimits) -> int:
    return min(args.limit, limits.max_list_limit)


def feedback_filtered(args: ListTracesArgs) -> bool:
    """Feedback filters come before the limit (the reference cut first and then filtered), so a
    filtered listing fetches every trace."""
    return args.min_feedback is not None or args.max_feedback is not None


def listed_traces(found: list[TraceRecord], args: ListTracesArgs, limits: ToolLimits) -> ToolOutcome:
    limit = list_limit(args, limits)
    filtered = feedback_filtered(args)
    if filtered:
        lo = args.min_feedback if args.min_feedback is not None else 0.0
        hi = args.max_feedback if args.max_feedback is not None else 1.0
        found = [t for t in found if t.feedback is not None and lo <= t.feedback <= hi]
    chosen = found[:limit]
    body = {
        "returned": len(chosen),
        "matching": len(found) if filtered else None,
        "traces": [trace_summary(t, limits.list_query_chars) for t in chosen],
    }
    return ToolOutcome(content=tool_json(body))


def trace_detail(trace: TraceRecord, limits: ToolLimits) -> ToolOutcome:
    steps = [
        cut(scrub(step) if isinstance(step, str) else scrub(tool_json(scrub_obj(step))), limits.step_chars)
        for step in trace.steps[: limits.trace_steps]
    ]
    body = {
        **trace_summary(trace, limits.trace_query_chars),
        "result": cut(scrub(trace.result), limits.trace_result_chars),
        "total_tokens": trace.total_tokens,
        "latency_seconds": trace.latency_seconds,
        "steps": steps,
        "step_count": len(trace.steps),
        "metadata": scrub_obj(trace.metadata),
    }
    return ToolOutcome(content=tool_json(body))


def search_limit(args: SearchTracesArgs, limits: ToolLimits) -> int:
    return min(args.limit, limits.max_search_limit)


def search_failed(exc: Exception) -> ToolError:
    return ToolError(f"search_traces failed: {type(exc).__name__}: {exc}. Try a simpler keyword query.")


def searched_traces(found: list[TraceRecord], limit: int, limits: ToolLimits) -> ToolOutcome:
    traces = []
    for trace in found[:limit]:
        summary = trace_summary(trace, limits.search_query_chars)
        summary["result"] = cut(scrub(trace.result), limits.search_result_chars)
        traces.append(summary)
    return ToolOutcome(content=tool_json({"returned": len(traces), "traces": traces}))


# --- configuration -------------------------------------------------------------------------------


def agents_of(config: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """config.toml's `[agent.<name>]` tables (`[agent] default = ...` is not an agent)."""
    agents = (config or {}).get("agent", {})
    if not isinstance(agents, dict):
        return {}
    return {name: table for name, table in sorted(agents.items()) if isinstance(table, dict)}


def agents_using(agents: Mapping[str, dict[str, Any]]) -> dict[str, list[str]]:
    """tool name → agents whose `[agent.<name>] tools` enables it."""
    using: dict[str, list[str]] = {}
    for agent, table in agents.items():
        tools = table.get("tools", [])
        for tool in tools if isinstance(tools, list) else []:
            if isinstance(tool, str) and agent not in using.setdefault(tool, []):
                using[tool].append(agent)
    return using


def unknown_agent(agent_name: str, agents: Mapping[str, Any], prompt_agents: set[str]) -> ToolError:
    known = sorted(set(agents) | prompt_agents)
    return ToolError(f"no agent {agent_name!r}; known agents: {', '.join(known) or 'none'}")


def tool_description(
    tool_name: str, descriptions: Mapping[str, Any], using: Mapping[str, list[str]]
) -> ToolOutcome:
    table = descriptions.get(tool_name)
    if isinstance(table, dict) and isinstance(table.get("description"), str):
        return ToolOutcome(content=scrub(table["description"]))
    if tool_name in using or isinstance(table, dict):
        return ToolOutcome(content=f"Tool {tool_name!r} has no description in tools/descriptions.toml.")
    known = sorted(set(descriptions) | set(using))
    raise ToolError(f"no tool {tool_name!r}; known tools: {', '.join(known) or 'none'}")


def available_tools(
    descriptions: Mapping[str, Any], using: Mapping[str, list[str]], limits: ToolLimits
) -> ToolOutcome:
    tools = []
    for name in sorted(set(descriptions) | set(using)):
        table = descriptions.get(name)
        text = table.get("description") if isinstance(table, dict) else None
        shown = cut(scrub(text), limits.tool_description_chars) if isinstance(text, str) else None
        tools.append({"name": name, "description": shown, "agents": using.get(name, [])})
    return ToolOutcome(content=tool_json({"tools": tools}))


# --- benchmark and runs --------------------------------------------------------------------------


def benchmark_listing(tasks: list[BenchmarkTask], args: ListBenchmarkArgs, limits: ToolLimits) -> ToolOutcome:
    tasks = [t for t in tasks if args.category is None or t.category == args.category]
    limit = min(args.limit, limits.max_benchmark_limit)
    chars = limits.benchmark_text_chars
    rows = [
        {
            "task_id": t.task_id,
            "query": cut(scrub(t.query), chars),
            "reference_answer": cut(scrub(t.reference_answer), chars),
            "category": t.category,
            "query_class": t.query_class,
        }
        for t in tasks[:limit]
    ]
    return ToolOutcome(content=tool_json({"total": len(tasks), "returned": len(rows), "tasks": rows}))


def judged(verdict: JudgeVerdict) -> dict[str, Any]:
    return {"score": verdict.score, "judge_reasoning": scrub(verdict.reasoning)}


def judge_failed(exc: Exception) -> dict[str, Any]:
    return {"score": None, "judge_error": scrub(f"{type(exc).__name__}: {exc}")}


def student_run(task: BenchmarkTask, result: StudentResult) -> dict[str, Any]:
    """The student's answer; the caller adds the judge's fields (`UNANSWERED` when it could not answer)."""
    return {
        "task_id": task.task_id,
        "output": scrub(result.output),
        "error": scrub(result.error) if result.error else None,
        "model": result.model,
        "latency_seconds": result.latency_seconds,
        "tokens_used": result.tokens_used,
    }


# A student that could not answer failed the task; there is nothing to judge.
UNANSWERED = {"score": 0.0}


def self_run(task: BenchmarkTask, run: SelfRun) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "output": run.output,
        "cost_usd": run.cost_usd,
        "tokens_used": run.tokens_used,
    }


def comparison(task: BenchmarkTask, student: dict[str, Any], teacher: dict[str, Any]) -> ToolOutcome:
    body = {
        "task_id": task.task_id,
        "student_score": student.get("score"),
        "teacher_score": teacher.get("score"),
        "student_reasoning": student.get("judge_reasoning", student.get("judge_error")),
        "teacher_reasoning": teacher.get("judge_reasoning", teacher.get("judge_error")),
    }
    return ToolOutcome(content=tool_json(body))
