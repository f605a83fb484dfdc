"""A real demo workspace, a real SQLite store, a session with an approved `lora_finetune` edit built
through the aggregate's own commands, and fake trainers written as tiny Python scripts."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from distill_es.app.training.service import TrainingService
from distill_es.config.settings import Settings
from distill_es.demo.world import create_demo_workspace
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import (
    AutonomyMode,
    Edit,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    Trigger,
    TriggerKind,
)
from distill_es.store.app import EventStore

SECRET = "sk-ant-api03-" + "A" * 40
TEACHER_ANSWER = "51"
STUDENT_ANSWER = "41"
LORA_EDIT_ID = "edit_lora"
GOOD_RESULT = 'out(completed(eval={"candidate_score": 0.8}))'


def lora_edit(backend: str = "peft-trl-orpo", **payload: Any) -> Edit:
    return Edit(
        id=LORA_EDIT_ID,
        pillar="engine",
        op="lora_finetune",
        payload={"target_model": "qwen3.5:9b", "backend": backend, **payload},
        expected_improvement="arithmetic",
        risk_tier=EditRiskTier.MANUAL,
    )


def exemplar_edit() -> Edit:
    return Edit(
        id="edit_fewshot",
        pillar="agent",
        op="edit_few_shot_exemplars",
        target="agents.assistant",
        payload={
            "agent": "assistant",
            "exemplars": [
                {"user": "What is 6 * 7?", "assistant": "42"},
                {"user": f"My key is {SECRET}, what is 2 + 2?", "assistant": "4 (and never share keys)"},
            ],
        },
        expected_improvement="arithmetic",
        risk_tier=EditRiskTier.REVIEW,
    )


def build_session(*, edits: list[Edit], approve: list[str], self_run: bool = True) -> Session:
    """A session driven through its real commands to `approved` edits (no engine, no teacher)."""
    session = Session.start(
        trigger=Trigger(kind=TriggerKind.ON_DEMAND),
        autonomy_mode=AutonomyMode.TIERED,
        settings=Settings().model_dump(mode="json"),
        workspace="/tmp/ws",
    )
    session.check_readiness(trace_count=30, min_traces=20, git_head=None, git_tree=None)
    session.begin_diagnosis()
    uses = []
    if self_run:
        uses = [
            {
                "type": "tool_use",
                "id": "tu_student",
                "name": "run_student_on_task",
                "input": {"task_id": "m1"},
            },
            {"type": "tool_use", "id": "tu_self", "name": "run_self_on_task", "input": {"task_id": "m1"}},
        ]
    session.record_teacher_call(
        call_key="diagnose/1", purpose="diagnose", model="claude", request_digest="d1",
        response={"content": [{"type": "text", "text": "looking"}, *uses]}, usage={}, cost_usd=0.0,
    )  # fmt: skip
    if self_run:
        student = {"task_id": "m1", "output": STUDENT_ANSWER, "score": 0.0}
        session.record_tool_result(
            call_key="diagnose/1", tool_use_id="tu_student", tool="run_student_on_task",
            content=json.dumps(student), is_error=False,
        )  # fmt: skip
        session.record_teacher_call(
            call_key="self_run/tu_self", purpose="self_run", model="claude", request_digest="d2",
            response={"content": [{"type": "text", "text": TEACHER_ANSWER}]}, usage={}, cost_usd=0.0,
        )  # fmt: skip
        session.record_tool_result(
            call_key="diagnose/1", tool_use_id="tu_self", tool="run_self_on_task",
            content=json.dumps({"task_id": "m1", "output": TEACHER_ANSWER, "score": 1.0}), is_error=False,
        )  # fmt: skip
    cluster = FailureCluster(
        id="arithmetic", task_ids=["m1"], student_failure_rate=1.0, teacher_success_rate=1.0
    )
    session.submit_diagnosis(markdown="# Diagnosis", clusters=[cluster])
    plan = LearningPlan(session_id=str(session.id), failure_clusters=[cluster], edits=edits)
    session.freeze_plan(plan=plan, rejected=[], tier_changes=[], downgrades=[])
    for edit in edits:
        session.route_edit(edit_id=edit.id, route="review")
    session.await_review(git_post=None)
    for edit_id in approve:
        session.approve_edit(edit_id=edit_id, reviewer="ana")
    return session


@dataclass
class World:
    home: Path
    store: EventStore
    tmp: Path

    def session(self, *, edits: list[Edit] | None = None, approve: list[str] | None = None,
                self_run: bool = True) -> Session:  # fmt: skip
        edits = edits if edits is not None else [lora_edit(), exemplar_edit()]
        session = build_session(
            edits=edits, approve=approve if approve is not None else [LORA_EDIT_ID], self_run=self_run
        )
        self.store.save(session)
        return self.store.load(session.id)

    def service(self, trainer: list[str] | None, timeout: float = 20.0, **options: Any) -> TrainingService:
        options.setdefault("grace_seconds", 0.5)
        return TrainingService(self.store, self.home, trainer, timeout, **options)

    def trainer(self, body: str, name: str = "trainer.py") -> list[str]:
        """A fake trainer: `body` runs after a prelude that reads the spec (`spec`, `echo`, helpers)."""
        path = self.tmp / "trainers" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PRELUDE + textwrap.dedent(body))
        return [sys.executable, str(path)]


PRELUDE = """\
import json, os, subprocess, sys, time
from pathlib import Path

spec_path = Path(sys.argv[sys.argv.index("--spec") + 1])
spec = json.loads(spec_path.read_text())
echo = {k: spec[k] for k in ("experiment_id", "backend", "target_model_family", "config_fingerprint",
                             "code_hash")}
echo["dataset_fingerprint"] = spec["dataset"]["fingerprint"]


def artifact(fmt="peft-adapter"):
    folder = Path(spec["output_dir"]) / spec["expected_artifact"]["checkpoint_name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    return {"artifact_path": str(folder), "adapter_format": fmt}


def completed(**extra):
    return {**echo, "status": "completed", "checkpoint_id": "ckpt-1", "artifact": artifact(), **extra}


def out(obj):
    print(json.dumps(obj))
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    home = create_demo_workspace(tmp_path / "ws")
    store = EventStore(f"sqlite:///{tmp_path}/events.sqlite")
    yield World(home=home, store=store, tmp=tmp_path)
    store.close()


@pytest.fixture
def make_trainer(world: World) -> Callable[[str], list[str]]:
    return world.trainer
