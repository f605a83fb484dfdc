"""An approved lora_finetune edit becomes a training run recorded in the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.session import events as ev
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer, tool_uses_reply

LORA = {
    "id": "edit_lora",
    "pillar": "engine",
    "op": "lora_finetune",
    "target": "student.weights",
    "payload": {"target_model": world.MODEL, "backend": "dry-run"},
    "rationale": "Arithmetic needs weights, not prompts.",
    "expected_improvement": "arithmetic",
    "risk_tier": "auto",  # advisory: the engine assigns manual
}


def teacher_with_lora(request: dict[str, Any]) -> dict[str, Any]:
    if (request.get("tool_choice") or {}).get("name") == "submit_plan":
        return tool_uses_reply([("submit_plan", {"edits": [world.EDITS[0], LORA]})])
    return world.teacher_reply(request)


def test_approved_lora_edit_runs_training_and_records_its_outcome(tmp_path: Path) -> None:
    with (
        ScriptedAnthropicServer(teacher_with_lora) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        client = anthropic.Anthropic(base_url=teacher_server.base_url, api_key="test", max_retries=0)
        engine = Engine.open(home, teacher=client, settings={"session": {"autonomy_mode": "auto"}})
        session = engine.run_session(OnDemandTrigger())
        # Even in auto mode the manual tier waits for a person.
        assert session.status == "awaiting_review"
        assert {o.edit_id: o.status for o in session.edit_outcomes} == {
            "edit_001": "applied",
            "edit_lora": "pending_review",
        }
        done = engine.approve(session.id, "edit_lora", reviewer="ann")
        assert done.status == "completed"
        lora = next(o for o in done.edit_outcomes if o.edit_id == "edit_lora")
        assert lora.status == "skipped" and "dry run" in lora.error  # no trainer configured
        trained = [e for e in engine.store.domain_events(session.id) if isinstance(e, ev.EditTrained)]
        assert [(e.edit_id, e.state) for e in trained] == [("edit_lora", "dry_run")]
        assert (home / ".distill_es" / "training").is_dir()  # the dataset was exported for the run

        rolled = engine.rollback(session.id)
        assert {o.edit_id: o.status for o in rolled.edit_outcomes}["edit_001"] == "rolled_back"
