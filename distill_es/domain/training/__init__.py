"""The training program for `lora_finetune` edits, pure: an event-sourced training run per approved edit.

- `lifecycle`: the run's own state machine (pending → running → completed | failed | dry_run).
- `events` / `run`: the `TrainingRun` aggregate and its event catalogue.
- `spec`: the experiment spec sent to a trainer, the trainer's result, and `validate_result`.
- `evaluation`: the eval verdict and the promotion gate.
- `steps`: `next_step(run)`, the drive loop's program counter.
- `views`, `reasons`, `errors`: read models, the failure reason codes, typed errors.

Around it: `distill_es.app.training` (`service`: `TrainingService` — request, drive (resumable),
train, list, lineage, verify; `dataset`: the exported dataset; `outcome`: reading a trainer's
outcome), `distill_es.adapters.trainer` (the external trainer protocol, a subprocess) and
`distill_es.cli.training` (`distill-es training list/show`). See docs/training.md.
"""
