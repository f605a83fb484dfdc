"""The training run lifecycle: the one place where a run's legal moves are written down.

Read it top to bottom: states, the moves between them (with their guards), then the facts a run may
record while it rests in a state. Every command on a `TrainingRun` asks `decide()` first.

Like the session's lifecycle, `transitions` is a shared, stateless rulebook: one module-level
`Machine(model=None)` fired on a throw-away `_Decision` that only *reads* the run. The aggregate is
never bound to the machine (binding resets its state and adds trigger methods that skip the log).

`dry_run` is a terminal outcome, not an error: no trainer was configured, or the trainer declined to
train (it validated the spec and reported `dry_run`). It registers no checkpoint.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from distill_es.domain import rulebook
from distill_es.domain.training.errors import IllegalRunTransition, RunGuardRejected, UnknownRunCommand


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DRY_RUN = "dry_run"


STATES: list[str] = [s.value for s in RunState]
TERMINAL: frozenset[str] = frozenset(s.value for s in (RunState.COMPLETED, RunState.FAILED, RunState.DRY_RUN))

# --- moves: (trigger, source(s), dest, guards) ------------------------------------------------
MOVES: list[dict[str, Any]] = [
    {"trigger": "start", "source": "pending", "dest": "running", "conditions": ["dataset_exported"]},
    # A checkpoint is registered (after validation) before the run may count as completed.
    {"trigger": "finish", "source": "running", "dest": "completed", "conditions": ["checkpoint_registered"]},
    {"trigger": "complete_dry_run", "source": ["pending", "running"], "dest": "dry_run"},
    {"trigger": "fail", "source": ["pending", "running"], "dest": "failed"},
]  # fmt: skip

# --- facts: what a run may record without changing state ---------------------------------------
FACTS: dict[str, list[str]] = {
    "export_dataset": ["pending"],
    "restart": ["running"],  # a new attempt after a crash left the previous one without a result
    "register_checkpoint": ["running"],
    "attach_eval": ["completed"],
    "decide_promotion": ["completed"],
}
FACT_GUARDS: dict[str, list[str]] = {
    "export_dataset": ["dataset_not_exported"],
    "register_checkpoint": ["no_checkpoint_yet"],
    "attach_eval": ["checkpoint_registered", "eval_not_attached"],
    "decide_promotion": ["eval_attached", "promotion_not_decided"],
}

_TRANSITIONS: list[dict[str, Any]] = rulebook.transition_table(MOVES, FACTS, FACT_GUARDS)
MACHINE = rulebook.build_machine("TrainingRun", STATES, _TRANSITIONS)

COMMANDS: frozenset[str] = frozenset(MACHINE.events)


class RunFacts(Protocol):
    """What guards may read about a run."""

    state: str
    has_dataset: bool
    has_checkpoint: bool
    has_eval: bool
    has_promotion: bool


class _Decision(rulebook.Decision):
    """Reads the run for the guards; never changes it."""

    def __init__(self, state: str, run: RunFacts) -> None:
        super().__init__(state)
        self.run = run

    def dataset_exported(self, _: Any) -> bool:
        return self._check(self.run.has_dataset, "the dataset has not been exported")

    def dataset_not_exported(self, _: Any) -> bool:
        return self._check(not self.run.has_dataset, "the dataset is already exported")

    def checkpoint_registered(self, _: Any) -> bool:
        return self._check(self.run.has_checkpoint, "no checkpoint is registered")

    def no_checkpoint_yet(self, _: Any) -> bool:
        return self._check(not self.run.has_checkpoint, "a checkpoint is already registered")

    def eval_attached(self, _: Any) -> bool:
        return self._check(self.run.has_eval, "no eval summary is attached")

    def eval_not_attached(self, _: Any) -> bool:
        return self._check(not self.run.has_eval, "an eval summary is already attached")

    def promotion_not_decided(self, _: Any) -> bool:
        return self._check(not self.run.has_promotion, "promotion is already decided")


def legal_commands(state: str) -> list[str]:
    """Commands that exist from `state` (their guards may still refuse)."""
    return rulebook.legal_commands(MACHINE, state)


def decide(run: RunFacts, command: str, run_id: str = "") -> tuple[str, str]:
    """Return (source, dest) for a legal command, dest == source for a fact. Raise otherwise."""
    return rulebook.decide(
        MACHINE,
        _Decision(str(run.state), run),
        command,
        run_id,
        unknown=UnknownRunCommand,
        illegal=IllegalRunTransition,
        rejected=RunGuardRejected,
    )


def is_fact(command: str) -> bool:
    return command in FACTS


def mermaid() -> str:
    """The lifecycle as a Mermaid state diagram (moves only; facts do not change state)."""
    return rulebook.mermaid(RunState.PENDING.value, MOVES, TERMINAL)
