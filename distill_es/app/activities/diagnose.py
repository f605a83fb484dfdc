"""The steps of a session before its plan: readiness, the teacher's diagnosis turns and their tools."""

from __future__ import annotations

from distill_es.adapters.benchmark import load_benchmark
from distill_es.adapters.diagnose_toolbox import Toolbox
from distill_es.app.activities.context import StepContext
from distill_es.app.activities.teacher import call_teacher
from distill_es.domain import teacher_reply
from distill_es.domain.errors import DistillError, InvalidTeacherOutput
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Done, Outcome, Refused, no_benchmark_error
from distill_es.phases.diagnose import diagnose_request
from distill_es.phases.diagnosis import parse_diagnosis
from distill_es.phases.plan_request import build_plan_request
from distill_es.phases.teacher_protocol import SelfRun

SELF_RUN_MAX_TOKENS = 2048


def check_readiness(ctx: StepContext, session: Session, _: steps.CheckReadiness) -> Outcome:
    """Counts the traces and reads git's HEAD and tree (reads only)."""
    workspace = ctx.adapters.workspace
    return Done(
        {
            "trace_count": ctx.adapters.traces.count(),
            "min_traces": int(session.settings["session"]["min_traces"]),
            "git_head": workspace.head_sha(),
            "git_tree": workspace.tree_sha(),
        }
    )


def begin_diagnosis(ctx: StepContext, _: Session, __: steps.BeginDiagnosis) -> Outcome:
    """Reads the benchmark: one emptied since `start` is refused before the first paid call."""
    if not load_benchmark(ctx.home):
        return Refused("no_benchmark", no_benchmark_error(str(ctx.home)))
    return Done()


def fail(_: StepContext, __: Session, step: steps.Fail) -> Outcome:
    """No outside effect: `next_step` already knows why the session fails."""
    return Done({"error": step.error, "reason_code": step.reason_code})


def call_teacher_step(ctx: StepContext, session: Session, step: steps.CallTeacher) -> Outcome:
    """One teacher request: a diagnosis turn or the plan."""
    if step.purpose == "diagnose":
        params = diagnose_request(session.settings, session.diagnose_turns)
    else:
        teacher = session.settings["teacher"]
        params = build_plan_request(
            teacher["model"],
            int(teacher["max_tokens"]),
            session.diagnosis_markdown or "",
            [c for c in session.clusters if c.has_evidence],
        )
    return call_teacher(ctx, session, step.call_key, step.purpose, params)


def run_tool(ctx: StepContext, session: Session, step: steps.RunTool) -> Outcome:
    """One tool call of the teacher's. Not one outside effect: a tool reads traces and benchmark
    files, and may run the student on a task, ask the judge (once or twice), or ask the teacher itself
    (run_self_on_task). Every paid call it makes comes back in the outcome and is recorded with the
    tool's result; if the process dies first, the whole tool call is made again."""
    self_runs: list[Outcome] = []

    def self_run(query: str) -> SelfRun:
        spent = session.teacher_cost_usd
        for run in self_runs:  # this step's own calls count against the budget already
            spent += float(run.args["cost_usd"]) if isinstance(run, Done) else 0.0
        if spent >= float(session.settings["session"]["max_cost_usd"]):
            raise DistillError("the teacher budget is spent; run_self_on_task is no longer available")
        params = {
            "model": session.settings["teacher"]["model"],
            "max_tokens": SELF_RUN_MAX_TOKENS,
            "messages": [{"role": "user", "content": query}],
        }
        outcome = call_teacher(ctx, session, f"self_run/{step.tool_use_id}", "self_run", params)
        self_runs.append(outcome)
        if isinstance(outcome, Refused):
            raise DistillError("the teacher could not answer")
        response = outcome.args["response"]
        return SelfRun(
            output=teacher_reply.text_of(response),
            cost_usd=outcome.args["cost_usd"],
            tokens_used=teacher_reply.tokens_of(response),
        )

    toolbox = Toolbox(
        home=ctx.home,
        traces=ctx.adapters.traces,
        benchmark=load_benchmark(ctx.home),
        student=ctx.adapters.student,
        judge=ctx.adapters.judge,
        self_run=self_run,
    )
    result = toolbox.execute(step.name, step.tool_input)
    recorded = sum(1 for run in self_runs if isinstance(run, Done))
    return Done(
        {
            "call_key": step.call_key,
            "tool_use_id": step.tool_use_id,
            "tool": step.name,
            "content": result.content,
            "is_error": result.is_error,
            "student_result": result.student_result.model_dump(mode="json")
            if result.student_result
            else None,
        },
        paid=ctx.judge_calls(session.version + recorded),
        self_runs=tuple(self_runs),
    )


def submit_diagnosis(ctx: StepContext, _: Session, step: steps.SubmitDiagnosis) -> Outcome:
    """Reads the benchmark's task ids and parses the teacher's diagnosis against them."""
    benchmark_ids = [t.task_id for t in load_benchmark(ctx.home)]
    try:
        diagnosis = parse_diagnosis(step.tool_input, benchmark_ids)
    except InvalidTeacherOutput as exc:
        return Refused("invalid_teacher_output", str(exc))
    return Done({"markdown": diagnosis.markdown, "clusters": diagnosis.clusters})
