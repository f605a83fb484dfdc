"""The plan step: the teacher's submitted plan, checked and frozen."""

from __future__ import annotations

from distill_es.app.activities.context import StepContext
from distill_es.domain import teacher_reply
from distill_es.domain.errors import InvalidTeacherOutput
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Done, Outcome, Refused
from distill_es.phases.plan import freeze_plan as frozen_plan


def freeze_plan(ctx: StepContext, session: Session, _: steps.FreezePlan) -> Outcome:
    """Checks the recorded plan reply; reads the prompt files its patches apply to (through the
    workspace)."""
    call = session.teacher_calls["plan"]
    tool_input = teacher_reply.tool_input(call.response, teacher_reply.SUBMIT_PLAN)
    try:
        if tool_input is None:
            raise InvalidTeacherOutput("the teacher's plan response did not call submit_plan")
        frozen = frozen_plan(
            session_id=str(session.id),
            tool_input=tool_input,
            clusters=session.clusters,
            diagnosis_markdown=session.diagnosis_markdown or "",
            teacher_model=call.model,
            cost_usd=call.cost_usd,
            read_prompt=ctx.adapters.workspace.read_prompt,
            created_at=call.at,
        )
    except InvalidTeacherOutput as exc:
        return Refused("plan_invalid", f"the plan could not be used: {exc}")
    return Done(
        {
            "plan": frozen.plan,
            "rejected": [r.model_dump(mode="json") for r in frozen.rejected],
            "tier_changes": [t.model_dump(mode="json") for t in frozen.tier_changes],
            "downgrades": list(frozen.downgrades),
        }
    )
