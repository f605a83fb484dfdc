"""What the engine tells an observer while it works: each step before it is performed, and each task
scored on a tree (the slowest step: a student call and a judge call per task)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a read command opens an engine (and imports this) but never steps: no step classes
    from distill_es.domain.session.next_step import Step
    from distill_es.domain.vocabulary import LearningSession

StepObserver = Callable[["LearningSession", "Step"], None]


@dataclass(frozen=True)
class ScoringProgress:
    """One more task scored on a tree: `scored` of the `to_score` tasks sent to the student so far;
    `reused` tasks of the `total` gate tasks already had a recorded score on this tree."""

    session_id: str
    tree_sha: str
    scored: int
    to_score: int
    total: int

    @property
    def reused(self) -> int:
        return self.total - self.to_score


ScoringObserver = Callable[[ScoringProgress], None]
