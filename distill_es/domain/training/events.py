"""The training run's event catalogue: one immutable event per fact, in the past tense.

Same rules as the session's catalogue (`distill_es.domain.session.events`): explicit stable topics
(`distill_es.Training*.v1`), JSON-only payloads, a `digest` chained to the previous event of the
same run (the first one to a genesis digest of the run id), and `apply` only hands the event to the
aggregate's `evolve`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from distill_es.domain.chain import ChainedCreated, ChainedEvent, ChainedRecording, chain_digest

__all__ = ["ChainedRecording", "chain_digest", "genesis_digest"]


def genesis_digest(run_id: str) -> str:
    """What a run's first event chains to: its own id, so events cannot move between runs."""
    return hashlib.sha256(f"distill_es/training/{run_id}".encode()).hexdigest()


class TrainingEvent(ChainedEvent):
    """Base of every non-initial training run event."""


class TrainingRequested(ChainedCreated):
    """An approved `lora_finetune` edit asked for a training run: the spec it will train under."""

    TOPIC = "distill_es.TrainingRequested.v1"
    session_id: str
    edit_id: str
    workspace: str
    spec: dict[str, Any]  # ExperimentSpec without its dataset (that comes with TrainingDatasetExported)
    trainer_command: list[str] | None  # None: no trainer configured, the run ends as a dry run
    baseline_score: float | None
    min_delta: float


class TrainingDatasetExported(TrainingEvent):
    TOPIC = "distill_es.TrainingDatasetExported.v1"
    path: str
    fingerprint: str  # sha256 of the file's bytes
    rows: int
    counts: dict[str, int]  # rows per source (self_run, exemplar, trace)
    benchmark_task_ids: list[str]  # benchmark tasks whose queries are in the dataset


class TrainingStarted(TrainingEvent):
    """Intent: attempt `attempt` of the trainer is about to run (pending → running, or a re-run)."""

    TOPIC = "distill_es.TrainingStarted.v1"
    attempt: int
    command: list[str]
    spec_path: str


class TrainingCheckpointRegistered(TrainingEvent):
    """A validated trainer result's checkpoint: recorded before the run counts as completed."""

    TOPIC = "distill_es.TrainingCheckpointRegistered.v1"
    checkpoint_id: str
    artifact_path: str
    adapter_format: str
    experiment_id: str
    target_model_family: str
    dataset_fingerprint: str
    config_fingerprint: str
    code_hash: str


class TrainingFinished(TrainingEvent):
    """The trainer finished and its result passed validation (running → completed)."""

    TOPIC = "distill_es.TrainingFinished.v1"
    attempt: int
    result: dict[str, Any]  # the validated TrainerResult
    source: str  # stdout | result_file
    exit_code: int
    duration_seconds: float


class TrainingFailed(TrainingEvent):
    """Why the run failed: a reason code tools can match on, and a message a person can act on."""

    TOPIC = "distill_es.TrainingFailed.v1"
    reason_code: str  # nonzero_exit | invalid_json | invalid_result | output_too_large | timeout | ...
    message: str
    attempt: int | None
    details: dict[str, Any]  # exit code, duration, the raw result when there was one


class TrainingDryRunCompleted(TrainingEvent):
    """No training happened, on purpose: no trainer configured, or the trainer reported a dry run."""

    TOPIC = "distill_es.TrainingDryRunCompleted.v1"
    message: str
    attempt: int | None
    result: dict[str, Any] | None


class TrainingEvalAttached(TrainingEvent):
    TOPIC = "distill_es.TrainingEvalAttached.v1"
    baseline_score: float | None
    candidate_score: float | None
    delta: float | None
    verdict: str  # pass | fail | compare_only
    reason: str
    benchmark_id: str | None
    mode: str | None


class TrainingPromotionDecided(TrainingEvent):
    TOPIC = "distill_es.TrainingPromotionDecided.v1"
    deployable: bool
    reason: str


EVENT_TYPES: list[type] = [TrainingRequested, *TrainingEvent.__subclasses__()]
TOPICS: frozenset[str] = frozenset(cls.TOPIC for cls in EVENT_TYPES)  # type: ignore[attr-defined]
