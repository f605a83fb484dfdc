"""Read models of a training run, folded from the aggregate: the summary row and the full lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from distill_es.domain.training.run import TrainingRun
from distill_es.domain.vocabulary import Value


class TrainingRunView(Value):
    run_id: str
    session_id: str
    edit_id: str
    workspace: str
    experiment_id: str
    state: str  # pending | running | completed | failed | dry_run
    backend: str
    target_model_family: str
    requested_at: datetime
    updated_at: datetime
    version: int
    attempts: int
    dataset_rows: int | None = None
    dataset_fingerprint: str | None = None
    reason_code: str | None = None  # failed: why; dry_run: "dry_run"
    message: str | None = None
    checkpoint_id: str | None = None
    checkpoint_path: str | None = None
    verdict: str | None = None
    delta: float | None = None
    deployable: bool | None = None
    summary: str

    @property
    def settled(self) -> bool:
        """Nothing left to drive: failed, dry run, or completed with its promotion decided."""
        if self.state == "completed":
            return self.deployable is not None
        return self.state in {"failed", "dry_run"}


class Lineage(Value):
    """Everything that led to (or stopped) a checkpoint, in the order it happened."""

    run: TrainingRunView
    spec: dict[str, Any]
    trainer_command: list[str] | None
    baseline_score: float | None
    min_delta: float
    dataset: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    result: dict[str, Any] | None
    failure: dict[str, Any] | None
    dry_run: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    eval: dict[str, Any] | None
    promotion: dict[str, Any] | None
    events: list[dict[str, Any]]


def _summary(run: TrainingRun) -> str:
    short = str(run.id)[:8]
    if run.failure is not None:
        return f"training run {short} failed ({run.failure.reason_code}): {run.failure.message}"
    if run.dry_run is not None:
        return f"training run {short} ended as a dry run: {run.dry_run.message}"
    if run.checkpoint is not None:
        text = f"training run {short} completed: checkpoint {run.checkpoint.artifact_path}"
        if run.eval is not None:
            delta = f", delta {run.eval.delta:+.3f}" if run.eval.delta is not None else ""
            text += f"; eval {run.eval.verdict}{delta}"
        if run.promotion is not None:
            text += "; deployable" if run.promotion.deployable else "; not deployable"
        return text
    return f"training run {short} is {run.state} ({len(run.attempts)} attempt(s) started)"


def run_view(run: TrainingRun) -> TrainingRunView:
    reason_code = message = None
    if run.failure is not None:
        reason_code, message = run.failure.reason_code, run.failure.message
    elif run.dry_run is not None:
        reason_code, message = "dry_run", run.dry_run.message
    return TrainingRunView(
        run_id=str(run.id),
        session_id=run.session_id,
        edit_id=run.edit_id,
        workspace=run.workspace,
        experiment_id=run.spec.experiment_id,
        state=run.state,
        backend=run.spec.backend,
        target_model_family=run.spec.target_model_family,
        requested_at=run.requested_at,
        updated_at=run.updated_at,
        version=run.version,
        attempts=len(run.attempts),
        dataset_rows=run.dataset.rows if run.dataset else None,
        dataset_fingerprint=run.dataset.fingerprint if run.dataset else None,
        reason_code=reason_code,
        message=message,
        checkpoint_id=run.checkpoint.checkpoint_id if run.checkpoint else None,
        checkpoint_path=run.checkpoint.artifact_path if run.checkpoint else None,
        verdict=run.eval.verdict if run.eval else None,
        delta=run.eval.delta if run.eval else None,
        deployable=run.promotion.deployable if run.promotion else None,
        summary=_summary(run),
    )


def _fields(event: Any, *names: str) -> dict[str, Any]:
    data = {name: getattr(event, name) for name in names}
    data["at"] = event.timestamp.isoformat()
    return data


def lineage(run: TrainingRun, events: list[Any]) -> Lineage:
    latest = len(run.attempts)
    attempts = [
        {
            "attempt": a.attempt,
            "command": a.command,
            "started_at": a.started_at.isoformat(),
            "ended_at": a.ended_at.isoformat() if a.ended_at else None,
            # An attempt superseded by a later one never recorded a result: its driver stopped.
            "outcome": a.outcome or ("interrupted" if a.attempt < latest or run.is_terminal else "running"),
        }
        for a in run.attempts
    ]
    return Lineage(
        run=run_view(run),
        spec=run.full_spec.model_dump(mode="json"),
        trainer_command=run.trainer_command,
        baseline_score=run.baseline_score,
        min_delta=run.min_delta,
        dataset=_fields(run.dataset, "path", "fingerprint", "rows", "counts", "benchmark_task_ids")
        if run.dataset
        else None,
        attempts=attempts,
        result=run.finished.result if run.finished else None,
        failure=_fields(run.failure, "reason_code", "message", "attempt", "details") if run.failure else None,
        dry_run=_fields(run.dry_run, "message", "attempt", "result") if run.dry_run else None,
        checkpoint=_fields(
            run.checkpoint,
            "checkpoint_id",
            "artifact_path",
            "adapter_format",
            "experiment_id",
            "target_model_family",
            "dataset_fingerprint",
            "config_fingerprint",
            "code_hash",
        )
        if run.checkpoint
        else None,
        eval=_fields(
            run.eval,
            "baseline_score",
            "candidate_score",
            "delta",
            "verdict",
            "reason",
            "benchmark_id",
            "mode",
        )
        if run.eval
        else None,
        promotion=_fields(run.promotion, "deployable", "reason") if run.promotion else None,
        events=[
            {
                "version": e.originator_version,
                "at": e.timestamp.isoformat(),
                "type": type(e).__name__,
                "digest": e.digest,
            }
            for e in events
        ],
    )
