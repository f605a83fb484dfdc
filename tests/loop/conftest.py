"""A scripted demo world served over real HTTP, with per-iteration scores and plans (see scripted.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.demo import world
from distill_es.testing.servers import ScriptedAnthropicServer
from tests.loop.scripted import Beat, Script, open_engine


@dataclass
class LoopWorld:
    home: Path
    server: ScriptedAnthropicServer
    script: Script

    def engine(
        self, beats: list[Beat] | None = None, *, scripted_scores: bool = True, **settings: Any
    ) -> Engine:
        """An engine on the world. With `beats`, scores and plans follow them per loop iteration.
        Sessions outside a loop plan one edit that changes nothing: they rest quickly, unscored."""
        self.script.beats = list(beats or [])
        self.script.default = Beat(None)
        return open_engine(
            self.home, self.server.base_url, self.script, scripted_scores=bool(beats) and scripted_scores,
            **settings,
        )  # fmt: skip


@pytest.fixture
def loop_world(tmp_path: Path) -> Iterator[LoopWorld]:
    script = Script()
    with ScriptedAnthropicServer(script.teacher_reply) as server:
        home = world.create_demo_workspace(tmp_path / "ws")
        yield LoopWorld(home, server, script)
