"""What a trainer attempt's outcome means for its run, recorded: the one place that reads a result.

A failure (the trainer's own, a result that does not parse, or one that does not match the spec) is
recorded with its reason code; a dry run completes the run; anything else registers the checkpoint
and finishes the attempt.
"""

from __future__ import annotations

from typing import Any

from distill_es.adapters.trainer import TrainerFailure, TrainerOutcome
from distill_es.domain.training.run import TrainingRun
from distill_es.domain.training.spec import ExperimentSpec, artifact_location, parse_result, validate_result

_RAW_RESULT_LIMIT = 20_000  # a rejected result is kept in the failure event only if it is this small


def record_outcome(run: TrainingRun, attempt: int, spec: ExperimentSpec, outcome: TrainerOutcome) -> None:
    """Record what the trainer's attempt came to: a failure with its reason code, a dry run, or the
    checkpoint and the finished attempt. The result is checked against the spec first."""
    if isinstance(outcome, TrainerFailure):
        run.fail(
            reason_code=outcome.reason_code,
            message=outcome.message,
            attempt=attempt,
            details=outcome.details,
        )
        return
    details: dict[str, Any] = {
        "exit_code": outcome.exit_code,
        "duration_seconds": outcome.duration_seconds,
    }
    if len(repr(outcome.result)) <= _RAW_RESULT_LIMIT:
        details["result"] = outcome.result
    parsed = parse_result(outcome.result)
    if isinstance(parsed, str):
        run.fail(reason_code="invalid_result", message=parsed, attempt=attempt, details=details)
        return
    problems = validate_result(spec, parsed)
    if problems:
        message = "the trainer's result does not match the experiment spec: " + "; ".join(problems)
        run.fail(
            reason_code="spec_mismatch",
            message=message,
            attempt=attempt,
            details={**details, "problems": problems},
        )
        return
    if parsed.status == "failed":
        reason = parsed.failure_reason or "no reason given"
        message = f"the trainer reported failure: {reason}"
        run.fail(reason_code="trainer_failed", message=message, attempt=attempt, details=details)
        return
    if parsed.status == "dry_run":
        run.complete_dry_run(
            message="the trainer validated the spec and reported a dry run (nothing was trained)",
            attempt=attempt,
            result=parsed.model_dump(mode="json"),
        )
        return
    assert parsed.artifact is not None and spec.dataset is not None
    run.register_checkpoint(
        checkpoint_id=parsed.checkpoint_id or f"ckpt-{spec.experiment_id}",
        artifact_path=str(artifact_location(spec, parsed.artifact)),
        adapter_format=parsed.artifact.adapter_format,
        experiment_id=spec.experiment_id,
        target_model_family=spec.target_model_family,
        dataset_fingerprint=spec.dataset.fingerprint,
        config_fingerprint=spec.config_fingerprint,
        code_hash=spec.code_hash,
    )
    run.finish(
        attempt=attempt,
        result=parsed.model_dump(mode="json"),
        source=outcome.source,
        exit_code=outcome.exit_code,
        duration_seconds=outcome.duration_seconds,
    )
