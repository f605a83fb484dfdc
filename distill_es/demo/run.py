"""The offline demo: a demo workspace, a recorded teacher shipped in the package, a stand-in student.

No network and no API key: every teacher response comes from `cassette.jsonl`, matched by request
digest, and the student is `DemoStudent` (deterministic, labelled as such).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_es.adapters.cassette import CassetteTeacher
from distill_es.adapters.retry import WaitObserver
from distill_es.api import Engine
from distill_es.app.progress import ScoringObserver, StepObserver
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import LearningSession
from distill_es.ports import TraceSource

CASSETTE = Path(__file__).with_name("cassette.jsonl")


def open_demo_engine(
    home: Path,
    *,
    teacher: Any = None,
    on_step: StepObserver | None = None,
    on_scoring: ScoringObserver | None = None,
    on_wait: WaitObserver | None = None,
    traces: TraceSource | None = None,
) -> Engine:
    """An engine on a demo workspace: the shipped cassette as teacher (unless given), the demo student."""
    return Engine.open(
        home,
        teacher=teacher if teacher is not None else CassetteTeacher(CASSETTE),
        student=world.DemoStudent(home),
        traces=traces,
        on_step=on_step,
        on_scoring=on_scoring,
        on_wait=on_wait,
    )


def run_demo(
    home: Path,
    *,
    teacher: Any = None,
    on_step: StepObserver | None = None,
    on_scoring: ScoringObserver | None = None,
) -> LearningSession:
    """Create the demo workspace in `home` and run one session on it."""
    world.create_demo_workspace(home)
    engine = open_demo_engine(home, teacher=teacher, on_step=on_step, on_scoring=on_scoring)
    try:
        return engine.run_session(OnDemandTrigger({"source": "distill-es demo"}))
    finally:
        engine.close()
