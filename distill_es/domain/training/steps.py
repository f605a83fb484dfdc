"""`next_step` for a training run: a pure function from the recorded run to the one thing to do next.

The service's drive loop is load → next_step → perform → record → repeat, exactly like the engine's.
A run found `running` has an attempt with no recorded result (the driver died while the trainer
ran): the next step is a new attempt, up to `max_attempts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill_es.domain.session.next_step import Step  # the engine's step base: `kind` names the step
from distill_es.domain.training.lifecycle import RunState
from distill_es.domain.training.run import TrainingRun

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ExportDataset(Step):
    pass


@dataclass(frozen=True)
class RunTrainer(Step):
    attempt: int


@dataclass(frozen=True)
class CompleteDryRun(Step):
    message: str


@dataclass(frozen=True)
class Fail(Step):
    reason_code: str
    message: str


@dataclass(frozen=True)
class AttachEval(Step):
    pass


@dataclass(frozen=True)
class DecidePromotion(Step):
    pass


@dataclass(frozen=True)
class Rest(Step):
    pass


NO_TRAINER = "no trainer command is configured: the dataset and spec are recorded, nothing was trained"


def next_step(run: TrainingRun, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Step:
    if run.state == RunState.PENDING:
        if run.dataset is None:
            return ExportDataset()
        if run.dataset.rows == 0:
            return Fail(
                "empty_dataset",
                "the session holds no training rows (no teacher answers, exemplars or usable traces)",
            )
        if run.trainer_command is None:
            return CompleteDryRun(NO_TRAINER)
        return RunTrainer(1)
    if run.state == RunState.RUNNING:
        started = len(run.attempts)
        if started >= max_attempts:
            return Fail(
                "attempts_exhausted",
                f"{started} trainer attempts started and none recorded a result (the driver stopped "
                "while the trainer ran each time)",
            )
        return RunTrainer(started + 1)
    if run.state == RunState.COMPLETED:
        if run.eval is None:
            return AttachEval()
        if run.promotion is None:
            return DecidePromotion()
    return Rest()
