"""A scripted world served over real HTTP: the real anthropic and openai clients talk to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer


@dataclass
class World:
    home: Path
    teacher_server: ScriptedAnthropicServer
    student_server: ScriptedStudentServer

    def engine(self, **options: object) -> Engine:
        teacher = anthropic.Anthropic(base_url=self.teacher_server.base_url, api_key="test", max_retries=0)
        return Engine.open(self.home, teacher=teacher, **options)  # type: ignore[arg-type]


@pytest.fixture
def scripted_world(tmp_path: Path) -> Iterator[World]:
    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher_server,
        ScriptedStudentServer(world.toy_answer) as student_server,
    ):
        home = world.create_demo_workspace(tmp_path / "ws", student_url=student_server.base_url)
        yield World(home, teacher_server, student_server)


def outcome_of(view: Any) -> dict[str, Any]:
    """A session's outcome with what differs between equal runs left out (ids, shas, times): what a
    crash or an interruption must not change."""
    return {
        "status": view.status,
        "error": view.error,
        "outcomes": [
            (o.edit_id, o.status, o.benchmark_delta, o.cluster_deltas, o.error) for o in view.edit_outcomes
        ],
        "before": view.benchmark_before.model_dump(exclude={"tree_sha"}) if view.benchmark_before else None,
        "after": view.benchmark_after.model_dump(exclude={"tree_sha"}) if view.benchmark_after else None,
    }
