"""Training errors. They subclass the domain's errors, so callers (and the CLI's exit codes) that
already handle `IllegalTransition`, `SessionNotFound` or `InvalidEdit` handle these too."""

from __future__ import annotations

from distill_es.domain.errors import (
    DistillError,
    GuardRejected,
    IllegalTransition,
    InvalidEdit,
    SessionNotFound,
    UnknownCommand,
)


def _legal_text(legal: list[str]) -> str:
    return ", ".join(legal) if legal else "none (terminal state)"


class IllegalRunTransition(IllegalTransition):
    """A command the training lifecycle does not allow from the run's current state."""

    def __init__(self, command: str, state: str, legal: list[str], run_id: str = "") -> None:
        super().__init__(command, state, legal)
        self.run_id = run_id
        where = f"training run {run_id} is " if run_id else "the training run is "
        legal_text = _legal_text(legal)
        self.args = (f"cannot {command!r}: {where}{state!r}; legal commands from {state!r}: {legal_text}",)


class RunGuardRejected(GuardRejected):
    """The move exists from this state but its precondition does not hold."""

    def __init__(self, command: str, state: str, legal: list[str], reason: str, run_id: str = "") -> None:
        super().__init__(command, state, legal, reason)
        self.run_id = run_id
        where = f"training run {run_id} is " if run_id else "the training run is "
        self.args = (
            f"cannot {command!r}: {where}{state!r}; legal commands from {state!r}: "
            f"{_legal_text(legal)} ({reason})",
        )


class UnknownRunCommand(UnknownCommand):
    def __init__(self, command: str, state: str, legal: list[str], run_id: str = "") -> None:
        super().__init__(command, state, legal)
        self.run_id = run_id


class TrainingRunNotFound(SessionNotFound):
    pass


class TrainingSpecInvalid(InvalidEdit):
    """An approved `lora_finetune` edit whose payload cannot become an experiment spec."""


class TrainingNotApproved(DistillError):
    """A training run was requested for an edit that is not an approved `lora_finetune` of the session."""
