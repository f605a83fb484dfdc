"""Every step `next_step` can choose, and the one handler that performs it: `HANDLERS`, keyed by the
step's type. A handler performs the step's outside effect and reports a typed outcome; it records
nothing (`domain.session.react` decides what the session records)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from distill_es.app.activities import diagnose, execute, gate, plan
from distill_es.app.activities.context import Handler
from distill_es.domain.session import next_step as steps

HANDLERS: Mapping[type[steps.Step], Handler] = MappingProxyType(
    {
        # before the plan
        steps.CheckReadiness: diagnose.check_readiness,
        steps.BeginDiagnosis: diagnose.begin_diagnosis,
        steps.Fail: diagnose.fail,
        steps.CallTeacher: diagnose.call_teacher_step,
        steps.RunTool: diagnose.run_tool,
        steps.SubmitDiagnosis: diagnose.submit_diagnosis,
        # the plan
        steps.FreezePlan: plan.freeze_plan,
        # its edits
        steps.RouteEdit: execute.route_edit,
        steps.ValidateEdit: execute.validate_edit,
        steps.SkipEdit: execute.skip_edit,
        steps.TrainEdit: execute.train_edit,
        steps.StartApply: execute.start_apply,
        steps.ApplyEdit: execute.apply_edit,
        steps.RevertEdit: execute.revert_edit,
        steps.AwaitReview: execute.git_post,
        steps.Complete: execute.git_post,
        steps.RollBackEdit: execute.roll_back_edit,
        steps.FinishRollback: execute.git_post,
        # the gate
        steps.ChooseGateTasks: gate.choose_gate_tasks,
        steps.ScoreTree: gate.score_tree,
        steps.CaptureBenchmark: gate.capture_benchmark,
        steps.EvaluateGate: gate.evaluate_gate,
    }
)
