"""Every reason a training run can fail with: the one list the docs and tests check against."""

from __future__ import annotations

FAILURE_REASONS: dict[str, str] = {
    # before any trainer runs
    "dataset_error": "the dataset could not be exported (session missing, unreadable traces)",
    "empty_dataset": "the export has no rows",
    "dataset_changed": "the exported file changed or vanished before an attempt",
    # the trainer process (distill_es.adapters.trainer)
    "trainer_missing": "the trainer command's executable was not found",
    "spawn_error": "the trainer could not be started (permissions, bad executable)",
    "nonzero_exit": "the trainer exited with a non-zero status",
    "timeout": "the trainer ran past its wall-clock budget and was killed",
    "output_too_large": "stdout (or the result file) exceeded the cap",
    "invalid_json": "stdout (or the result file) is not one JSON object",
    "no_result": "exit 0, but stdout was empty and there is no result file",
    # the result
    "invalid_result": "JSON, but not the result shape",
    "spec_mismatch": "the result does not match the experiment spec",
    "trainer_failed": "the trainer reported status 'failed'",
    # resume
    "attempts_exhausted": "every allowed attempt started and none recorded a result",
}
