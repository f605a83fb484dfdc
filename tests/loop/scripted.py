"""A demo world whose scores and plans are scripted per loop iteration.

Each loop session's trigger names its iteration (`loop_iteration`), so the script knows which `Beat`
applies even in a process that resumed the loop after a crash:
- `Beat(score)`: the plan is the demo's first edit alone, and every task scores `score` on every
  tree, so the gate sees no change and rejects it: the session completes with
  `benchmark_after.overall_score == score` (`demo_plan=True`: the demo's three edits instead);
- `Beat(None)`: the plan's only edit changes nothing, so no edit reaches the gate: no after-score;
- `Beat(fail=True)`: the teacher's plan response does not call submit_plan: the session fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.domain.vocabulary import LearningSession
from distill_es.ports import BenchmarkTask, TaskScore
from distill_es.testing.servers import text_reply, tool_uses_reply

NOOP_EDIT = {
    "id": "edit_noop",
    "pillar": "intelligence",
    "op": "set_model_param",
    "target": f"models.{world.MODEL}.temperature",
    "payload": {"model": world.MODEL, "param": "temperature", "value": 0.7},  # already 0.7
    "rationale": "Keep the temperature as it is.",
    "expected_improvement": "units",
    "risk_tier": "auto",
    "references": [],
}


@dataclass(frozen=True)
class Beat:
    score: float | None = 0.5
    fail: bool = False
    demo_plan: bool = False


FAIL = Beat(fail=True)


@dataclass
class Script:
    beats: list[Beat] = field(default_factory=list)
    default: Beat | None = None  # for sessions outside a loop (None: the demo's own teacher)
    current: int | None = None  # index of the beat for the session being driven

    def observe(self, view: LearningSession, _step: Any) -> None:
        iteration = view.trigger_metadata.get("loop_iteration")
        self.current = int(iteration) - 1 if iteration else None

    @property
    def beat(self) -> Beat | None:
        if not self.beats or self.current is None:
            return self.default
        return self.beats[min(self.current, len(self.beats) - 1)]

    # the Scorer port
    def score(self, tasks: Sequence[BenchmarkTask]) -> list[TaskScore]:
        beat = self.beat
        assert beat is not None and beat.score is not None, "a scripted session scored something unexpectedly"
        return [TaskScore(task_id=t.task_id, score=beat.score, model="scripted") for t in tasks]

    # the teacher, served by ScriptedAnthropicServer
    def teacher_reply(self, request: dict[str, Any]) -> dict[str, Any]:
        beat = self.beat
        if beat is not None and (request.get("tool_choice") or {}).get("name") == "submit_plan":
            if beat.fail:
                return text_reply("I would rather not plan today.")
            if beat.score is None:
                return tool_uses_reply([("submit_plan", {"edits": [NOOP_EDIT]})])
            if not beat.demo_plan:  # one edit keeps each session's git work (apply, revert) small
                return tool_uses_reply([("submit_plan", {"edits": [world.EDITS[0]]})])
        return world.teacher_reply(request)


def open_engine(
    home: Path,
    teacher_url: str,
    script: Script | None = None,
    *,
    scripted_scores: bool = True,
    **settings: dict[str, Any],
) -> Engine:
    teacher = anthropic.Anthropic(base_url=teacher_url, api_key="test", max_retries=0)
    return Engine.open(
        home,
        teacher=teacher,
        student=world.DemoStudent(home),
        scorer=script if script is not None and scripted_scores else None,
        on_step=script.observe if script is not None else None,
        settings=settings or None,
    )


def append_traces(home: Path, count: int, *, outcome: str, offset: float = 60.0) -> list[str]:
    """Add `count` traces dated after now (so they are newer than any session so far)."""
    start = time.time() + offset
    path = home / "traces.jsonl"
    existing = sum(1 for line in path.read_text().splitlines() if line.strip())
    ids = []
    with path.open("a", encoding="utf-8") as fh:
        for i in range(count):
            trace_id = f"n{existing + i + 1:04d}"
            ids.append(trace_id)
            row = {
                "trace_id": trace_id,
                "query": "What is 2 + 2?",
                "result": "4" if outcome == "success" else "5",
                "agent": world.AGENT,
                "model": world.MODEL,
                "outcome": outcome,
                "feedback": None,
                "started_at": start + i,
            }
            fh.write(json.dumps(row) + "\n")
    return ids
