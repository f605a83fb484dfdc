"""The training program for `lora_finetune` edits: an event-sourced training run per approved edit.

- `lifecycle`: the run's own state machine (pending → running → completed | failed | dry_run).
- `events` / `run`: the `TrainingRun` aggregate and its event catalogue.
- `spec`: the experiment spec sent to a trainer, the trainer's result, and `validate_result`.
- `dataset`: the preference/instruction dataset exported from a session.
- `trainer`: the external trainer protocol (a subprocess; every outcome is a value).
- `service`: `TrainingService` — request, drive (resumable), list, lineage.
- `cli`: `distill-es training list/show`.
"""
