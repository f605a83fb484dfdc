"""The training program for `lora_finetune` edits: an event-sourced training run per approved edit.

- `lifecycle`: the run's own state machine (pending → running → completed | failed | dry_run).
- `events` / `run`: the `TrainingRun` aggregate and its event catalogue.
- `spec`: the experiment spec sent to a trainer, the trainer's result, and `validate_result`.
- `dataset`: the preference/instruction dataset exported from a session.
- `trainer`: the external trainer protocol (a subprocess; every outcome is a value).
- `evaluation`: the eval verdict and the promotion gate.
- `steps`: `next_step(run)`, the drive loop's program counter.
- `service`: `TrainingService` — request, drive (resumable), train, list, lineage, verify.
- `views`, `reasons`, `errors`: read models, the failure reason codes, typed errors.
- `cli`: `distill-es training list/show`.

See docs/training.md.
"""
