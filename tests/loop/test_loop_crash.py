"""Kill a loop mid-way; `run_loop(loop_id=...)` continues it without repeating a session.

One real SIGKILL in a child process (after the first session finished); the two other crash points
are simulated in-process by an exception at the same spot (everything the loop knows is in the
store, so an exception that unwinds the process's memory is as good as a kill, and much faster).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from distill_es.app.loop import get_loop, run_loop, verify_loop
from distill_es.domain.loop.aggregate import Loop
from distill_es.domain.loop.rules import StopReason
from distill_es.domain.triggers import OnDemandTrigger
from tests.loop.conftest import LoopWorld
from tests.loop.crash_child import K
from tests.loop.scripted import Beat

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def crash(loop_world: LoopWorld, loop_id: str, mode: str) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.loop.crash_child", str(loop_world.home), loop_world.server.base_url,
         loop_id, mode],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr[-2000:]


class Crash(Exception):
    pass


def crash_in_process(loop_world: LoopWorld, loop_id: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = loop_world.engine([Beat(0.5)])
    if mode == "mid-session":
        observe = loop_world.script.observe

        def observe_then_crash(view: Any, step: Any) -> None:
            observe(view, step)
            if view.trigger_metadata.get("loop_iteration") == 2 and step.kind == "ApplyEdit":
                raise Crash

        engine.on_step = observe_then_crash
    else:
        record = Loop.record_session_started

        def record_or_crash(self: Any, **options: Any) -> None:
            if options["iteration"] == 2:
                raise Crash
            record(self, **options)

        monkeypatch.setattr(Loop, "record_session_started", record_or_crash)
    with pytest.raises(Crash):
        run_loop(engine, OnDemandTrigger(), stagnation_k=K, autonomy="auto", loop_id=loop_id)
    monkeypatch.undo()
    engine.close()


@pytest.mark.parametrize(
    ("mode", "before_resume"),
    [
        # (mode, [(session status or None while in flight)] as the killed process left the loop)
        ("after-finished", ["completed"]),
        ("mid-session", ["completed", None]),
        ("after-start", ["completed"]),
    ],
)
def test_resume_after_sigkill_continues_without_duplicating_a_session(
    loop_world: LoopWorld, mode: str, before_resume: list[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_id = str(uuid.uuid4())
    if mode == "after-finished":
        loop_world.script.default = Beat(0.5)  # the shared teacher plans one edit for the child too
        crash(loop_world, loop_id, mode)
    else:
        crash_in_process(loop_world, loop_id, mode, monkeypatch)

    engine = loop_world.engine([Beat(0.5)])
    left = get_loop(engine, loop_id)
    assert left.status == "running"
    assert [s.status for s in left.sessions] == before_resume
    if mode == "mid-session":
        assert engine.get(left.sessions[1].session_id).status == "executing"
    if mode == "after-start":  # started and saved, but the loop never recorded it
        assert len(engine.sessions()) == 2

    result = run_loop(engine, OnDemandTrigger(), loop_id=loop_id)

    assert result.stop_reason == StopReason.STAGNATION and result.params.stagnation_k == K
    assert [s.iteration for s in result.sessions] == [1, 2]
    assert [s.status for s in result.sessions] == ["completed", "completed"]
    # Exactly the loop's sessions exist: none was started twice.
    views = engine.sessions()
    assert sorted(v.id for v in views) == sorted(result.session_ids)
    assert sorted(v.trigger_metadata["loop_iteration"] for v in views) == [1, 2]
    assert engine.get(result.session_ids[1]).parent_session_id == result.session_ids[0]
    assert result.sessions[1].adopted is (mode == "after-start")
    if mode == "mid-session":  # the in-flight session was resumed, not replaced
        assert result.session_ids[1] == left.sessions[1].session_id
    assert verify_loop(engine, loop_id).ok
    assert all(report.ok for report in engine.verify())
    engine.close()
