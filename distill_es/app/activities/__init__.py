"""Every step `next_step` can choose, and the one handler that performs it: `HANDLERS`, keyed by the
step's type. A handler performs the step's outside effect and reports a typed outcome; it records
nothing (`domain.session.react` decides what the session records).

`READS_ONLY` and `NEEDS_SAVED_HEAD` tell the runner which steps' events may wait for the next
step's save (one store transaction for both); see docs/architecture.md "One transaction per step"."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from distill_es.domain.session import next_step as steps

if TYPE_CHECKING:
    from distill_es.app.activities.context import Handler


class _Handlers(Mapping[type[steps.Step], "Handler"]):
    """Step type -> handler, each handler's module imported on first use: a `resume` whose next step
    commits an edit never imports the diagnose tools, the trace readers or the HTTP stack behind them
    (docs/performance.md, "Cold start")."""

    def __init__(self, where: Mapping[type[steps.Step], str]) -> None:
        self._where = dict(where)  # step type -> "module:function" under distill_es.app.activities

    def __getitem__(self, step_type: type[steps.Step]) -> Handler:
        module, _, name = self._where[step_type].partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[type[steps.Step]]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


HANDLERS: Mapping[type[steps.Step], Handler] = _Handlers(
    {
        # before the plan
        steps.CheckReadiness: "diagnose:check_readiness",
        steps.BeginDiagnosis: "diagnose:begin_diagnosis",
        steps.Fail: "diagnose:fail",
        steps.CallTeacher: "diagnose:call_teacher_step",
        steps.RunTool: "diagnose:run_tool",
        steps.SubmitDiagnosis: "diagnose:submit_diagnosis",
        # the plan
        steps.FreezePlan: "plan:freeze_plan",
        # its edits
        steps.RouteEdit: "execute:route_edit",
        steps.ValidateEdit: "execute:validate_edit",
        steps.SkipEdit: "execute:skip_edit",
        steps.TrainEdit: "execute:train_edit",
        steps.StartApply: "execute:start_apply",
        steps.ApplyEdit: "execute:apply_edit",
        steps.RevertEdit: "execute:revert_edit",
        steps.AwaitReview: "execute:git_post",
        steps.Complete: "execute:git_post",
        steps.RollBackEdit: "execute:roll_back_edit",
        steps.FinishRollback: "execute:git_post",
        # the gate
        steps.ChooseGateTasks: "gate:choose_gate_tasks",
        steps.ScoreTree: "gate:score_tree",
        steps.CaptureBenchmark: "gate:capture_benchmark",
        steps.EvaluateGate: "gate:evaluate_gate",
    }
)

# Steps with no outside write and no paid call: they read the workspace, the benchmark or the log,
# and nothing a session does changes what they read before the next step's save (the git steps that
# do are in NEEDS_SAVED_HEAD). Their events wait and are saved with the next step's, in one store
# transaction; a crash before that save makes the same reads again, so nothing is lost or doubled.
# BeginDiagnosis is not among them although it only reads: its save puts the session under way in the
# log before its first paid call, so a worker that dies during that call leaves a session every other
# worker sees as abandoned (taken over at once) rather than as queued (docs/operations.md).
READS_ONLY: frozenset[type[steps.Step]] = frozenset(
    {
        steps.CheckReadiness,
        steps.Fail,
        steps.SubmitDiagnosis,
        steps.FreezePlan,
        steps.RouteEdit,
        steps.ValidateEdit,
        steps.SkipEdit,
        steps.ChooseGateTasks,
        steps.CaptureBenchmark,
        steps.EvaluateGate,
    }
)
# Steps that commit to git with the saved log head as an anchor (`context.log_head`), and that change
# the files the reads-only steps read: whatever waits is saved before they run.
NEEDS_SAVED_HEAD: frozenset[type[steps.Step]] = frozenset(
    {steps.ApplyEdit, steps.RevertEdit, steps.RollBackEdit}
)
