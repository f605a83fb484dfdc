"""A review-routed edit is never worked on without an approval, even after a reviewer rejected it."""

import pytest

from distill_es.domain.errors import DistillError
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import Edit, FailureCluster, LearningPlan, Trigger

CLUSTER = FailureCluster(id="c", student_failure_rate=1.0, teacher_success_rate=1.0, task_ids=["t"])


def session_with_rejected_edit(op: str, pillar: str, payload: dict) -> Session:
    session = Session.start(
        trigger=Trigger(kind="on_demand"), autonomy_mode="manual", settings={}, workspace="/w"
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    session.submit_diagnosis(markdown="d", clusters=[CLUSTER])
    edit = Edit(id="e1", pillar=pillar, op=op, payload=payload, expected_improvement="c", risk_tier="manual")
    other = edit.model_copy(update={"id": "e2"})
    plan = LearningPlan(session_id=str(session.id), edits=[edit, other])
    session.freeze_plan(plan=plan, rejected=[], tier_changes=[], downgrades=[])
    session.route_edit(edit_id="e1", route="review")
    session.route_edit(edit_id="e2", route="review")
    session.await_review(git_post=None)
    session.reject_edit(edit_id="e1", reviewer="ann", reason="no")  # e2 still pending: back to executing
    return session


@pytest.mark.parametrize(
    ("command", "kwargs"),
    [
        ("start_apply", {"pre_sha": "a" * 40, "pre_tree": "b" * 40}),
        ("validate_edit", {"ok": True, "reason": ""}),
        ("skip_edit", {"reason": "x"}),
    ],
)
def test_rejected_edit_cannot_be_worked_on(command: str, kwargs: dict) -> None:
    session = session_with_rejected_edit("set_agent_param", "agent", {"agent": "a", "param": "p", "value": 1})
    assert session.status == "executing"
    with pytest.raises(DistillError, match="rejected by ann"):
        getattr(session, command)(edit_id="e1", **kwargs)


def test_rejected_lora_edit_is_never_trained() -> None:
    session = session_with_rejected_edit("lora_finetune", "engine", {"target_model": "m"})
    version = session.version
    with pytest.raises(DistillError):
        session.record_training(edit_id="e1", run_id="r", state="completed", deployable=True, summary="s")
    assert session.version == version
