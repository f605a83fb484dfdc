"""The `TrainingRun` aggregate: commands ask the training lifecycle, then record; `evolve` only assigns.

A command never performs a side effect: it is handed the result of one (an exported dataset, a
trainer outcome), checks with `lifecycle.decide` that recording it is legal now, and records it.
Run ids are deterministic — uuid5 of (session id, edit id) — so asking twice for the same edit
finds the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.domain import chain
from distill_es.domain.errors import DistillError
from distill_es.domain.training import events as ev
from distill_es.domain.training import lifecycle
from distill_es.domain.training.evaluation import EvalSummary
from distill_es.domain.training.lifecycle import RunState
from distill_es.domain.training.reasons import FAILURE_REASONS
from distill_es.domain.training.spec import DatasetRef, ExperimentSpec

RUN_NAMESPACE = uuid5(NAMESPACE_URL, "https://distill-es/training-run")


def run_id_for(session_id: str, edit_id: str) -> UUID:
    """The one run an edit of a session can have."""
    return uuid5(RUN_NAMESPACE, f"{session_id}/{edit_id}")


def experiment_id_for(run_id: UUID | str) -> str:
    return f"exp-{UUID(str(run_id)).hex[:16]}"


@dataclass
class Attempt:
    attempt: int
    command: list[str]
    spec_path: str
    started_at: datetime
    outcome: str | None = None  # completed | dry_run | a failure reason code; None: no result recorded
    ended_at: datetime | None = None


class TrainingRun(chain.ChainedRecording, Aggregate):
    """One training run for one approved `lora_finetune` edit. Build with `TrainingRun.request(...)`."""

    _genesis_digest = staticmethod(ev.genesis_digest)

    @classmethod
    def request(
        cls,
        *,
        session_id: str,
        edit_id: str,
        workspace: str,
        spec: ExperimentSpec,
        trainer_command: list[str] | None,
        baseline_score: float | None = None,
        min_delta: float = 0.0,
    ) -> TrainingRun:
        rid = run_id_for(session_id, edit_id)
        if spec.run_id != str(rid):
            raise DistillError(f"spec is for run {spec.run_id}, not {rid}")
        return cls._create_chained(
            ev.TrainingRequested,
            rid,
            session_id=session_id,
            edit_id=edit_id,
            workspace=workspace,
            spec=spec.model_dump(mode="json"),
            trainer_command=list(trainer_command) if trainer_command is not None else None,
            baseline_score=baseline_score,
            min_delta=min_delta,
        )

    def __init__(self) -> None:
        # Real initial state is assigned by evolve(TrainingRequested), like every other event.
        pass

    # ----------------------------------------------------------------------------------------
    # facts the lifecycle guards read
    @property
    def run_id(self) -> str:
        return str(self.id)

    @property
    def has_dataset(self) -> bool:
        return self.dataset is not None

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint is not None

    @property
    def has_eval(self) -> bool:
        return self.eval is not None

    @property
    def has_promotion(self) -> bool:
        return self.promotion is not None

    @property
    def is_terminal(self) -> bool:
        return self.state in lifecycle.TERMINAL

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def full_spec(self) -> ExperimentSpec:
        """The spec a trainer receives: the requested one plus the exported dataset."""
        if self.dataset is None:
            return self.spec
        ref = DatasetRef(path=self.dataset.path, fingerprint=self.dataset.fingerprint, rows=self.dataset.rows)
        return self.spec.with_dataset(ref)

    def legal_commands(self) -> list[str]:
        return lifecycle.legal_commands(self.state)

    # ----------------------------------------------------------------------------------------
    # commands
    def export_dataset(
        self, *, path: str, fingerprint: str, rows: int, counts: dict[str, int], benchmark_task_ids: list[str]
    ) -> None:
        self._decide("export_dataset")
        self._record(
            ev.TrainingDatasetExported,
            path=path,
            fingerprint=fingerprint,
            rows=rows,
            counts=dict(counts),
            benchmark_task_ids=list(benchmark_task_ids),
        )

    def start_attempt(self, *, command: list[str], spec_path: str) -> int:
        """Record the intent to run the trainer; returns the attempt number (1, 2, …)."""
        self._decide("start" if self.state == RunState.PENDING else "restart")
        attempt = len(self.attempts) + 1
        self._record(ev.TrainingStarted, attempt=attempt, command=list(command), spec_path=spec_path)
        return attempt

    def register_checkpoint(
        self,
        *,
        checkpoint_id: str,
        artifact_path: str,
        adapter_format: str,
        experiment_id: str,
        target_model_family: str,
        dataset_fingerprint: str,
        config_fingerprint: str,
        code_hash: str,
    ) -> None:
        self._decide("register_checkpoint")
        self._record(
            ev.TrainingCheckpointRegistered,
            checkpoint_id=checkpoint_id,
            artifact_path=artifact_path,
            adapter_format=adapter_format,
            experiment_id=experiment_id,
            target_model_family=target_model_family,
            dataset_fingerprint=dataset_fingerprint,
            config_fingerprint=config_fingerprint,
            code_hash=code_hash,
        )

    def finish(
        self, *, attempt: int, result: dict[str, Any], source: str, exit_code: int, duration_seconds: float
    ) -> None:
        self._decide("finish")
        self._require_current(attempt)
        self._record(
            ev.TrainingFinished,
            attempt=attempt,
            result=result,
            source=source,
            exit_code=exit_code,
            duration_seconds=round(duration_seconds, 3),
        )

    def fail(
        self,
        *,
        reason_code: str,
        message: str,
        attempt: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._decide("fail")
        if reason_code not in FAILURE_REASONS:  # one list of reasons, documented in docs/training.md
            raise DistillError(f"unknown training failure reason {reason_code!r}")
        if attempt is not None:
            self._require_current(attempt)
        self._record(
            ev.TrainingFailed,
            reason_code=reason_code,
            message=message,
            attempt=attempt,
            details=details or {},
        )

    def complete_dry_run(
        self, *, message: str, attempt: int | None = None, result: dict[str, Any] | None = None
    ) -> None:
        self._decide("complete_dry_run")
        if attempt is not None:
            self._require_current(attempt)
        self._record(ev.TrainingDryRunCompleted, message=message, attempt=attempt, result=result)

    def attach_eval(self, summary: EvalSummary) -> None:
        self._decide("attach_eval")
        self._record(
            ev.TrainingEvalAttached,
            baseline_score=summary.baseline_score,
            candidate_score=summary.candidate_score,
            delta=summary.delta,
            verdict=summary.verdict,
            reason=summary.reason,
            benchmark_id=summary.benchmark_id,
            mode=summary.mode,
        )

    def decide_promotion(self, *, deployable: bool, reason: str) -> None:
        self._decide("decide_promotion")
        self._record(ev.TrainingPromotionDecided, deployable=deployable, reason=reason)

    # ----------------------------------------------------------------------------------------
    # recording
    def _decide(self, command: str) -> tuple[str, str]:
        return lifecycle.decide(self, command, run_id=str(self.id))

    def _require_current(self, attempt: int) -> None:
        current = self.current_attempt
        if current is None or current.attempt != attempt or current.outcome is not None:
            raise DistillError(
                f"training run {self.id}: attempt {attempt} is not the open attempt "
                f"(open: {current.attempt if current and current.outcome is None else 'none'})"
            )

    # ----------------------------------------------------------------------------------------
    # evolve: assignments only
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__}")

    @evolve.register
    def _(self, e: ev.TrainingRequested) -> None:
        self.state = RunState.PENDING.value
        self.session_id = e.session_id
        self.edit_id = e.edit_id
        self.workspace = e.workspace
        self.spec = ExperimentSpec.model_validate(e.spec)
        self.trainer_command = list(e.trainer_command) if e.trainer_command is not None else None
        self.baseline_score = e.baseline_score
        self.min_delta = e.min_delta
        self.requested_at = e.timestamp
        self.updated_at = e.timestamp
        self.last_digest = e.digest
        self.dataset: ev.TrainingDatasetExported | None = None
        self.attempts: list[Attempt] = []
        self.checkpoint: ev.TrainingCheckpointRegistered | None = None
        self.finished: ev.TrainingFinished | None = None
        self.failure: ev.TrainingFailed | None = None
        self.dry_run: ev.TrainingDryRunCompleted | None = None
        self.eval: ev.TrainingEvalAttached | None = None
        self.promotion: ev.TrainingPromotionDecided | None = None

    def _after(self, e: ev.TrainingEvent) -> None:
        self.last_digest = e.digest
        self.updated_at = e.timestamp

    def _close_attempt(self, attempt: int | None, outcome: str, at: datetime) -> None:
        if attempt is not None and self.attempts and self.attempts[-1].attempt == attempt:
            self.attempts[-1].outcome, self.attempts[-1].ended_at = outcome, at

    @evolve.register
    def _(self, e: ev.TrainingDatasetExported) -> None:
        self.dataset = e
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingStarted) -> None:
        self.state = RunState.RUNNING.value
        self.attempts.append(Attempt(e.attempt, list(e.command), e.spec_path, e.timestamp))
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingCheckpointRegistered) -> None:
        self.checkpoint = e
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingFinished) -> None:
        self.state = RunState.COMPLETED.value
        self.finished = e
        self._close_attempt(e.attempt, "completed", e.timestamp)
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingFailed) -> None:
        self.state = RunState.FAILED.value
        self.failure = e
        self._close_attempt(e.attempt, e.reason_code, e.timestamp)
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingDryRunCompleted) -> None:
        self.state = RunState.DRY_RUN.value
        self.dry_run = e
        self._close_attempt(e.attempt, "dry_run", e.timestamp)
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingEvalAttached) -> None:
        self.eval = e
        self._after(e)

    @evolve.register
    def _(self, e: ev.TrainingPromotionDecided) -> None:
        self.promotion = e
        self._after(e)


TrainingRun.TOPIC = "distill_es.TrainingRun"  # set after class creation, as Session.TOPIC is
register_topic(TrainingRun.TOPIC, TrainingRun)
