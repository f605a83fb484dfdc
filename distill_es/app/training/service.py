"""`TrainingService`: request a training run for an approved `lora_finetune` edit, drive it, read it.

`drive` is the engine's loop in small: load the run → `next_step` → perform that one step → record →
save → repeat. Resume is not a separate path: after a crash, `drive` again continues from the log and
never repeats a recorded step. The one effect that can be cut in half is the trainer itself; it is
bracketed by `TrainingStarted` (saved before the subprocess starts). A run found `running` therefore
had a trainer start with no recorded result: any trainer it left behind is stopped and the trainer is
run again as the next attempt (at most `max_attempts` in all).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from distill_es._version import __version__
from distill_es.adapters.trainer import (
    GRACE_SECONDS,
    RESULT_FILE,
    SPEC_FILE,
    run_trainer,
    stop_orphan,
    trainer_argv,
)
from distill_es.app.training.dataset import (
    DEFAULT_MAX_TRACES,
    export_dataset,
    fingerprint_file,
    run_dir,
    write_atomic,
)
from distill_es.app.training.outcome import record_outcome
from distill_es.domain.errors import ConcurrentSessionWrite, DistillError
from distill_es.domain.layout import BENCHMARK_FILE, STATE_DIR
from distill_es.domain.payloads import LoraFinetune, parse_payload
from distill_es.domain.session.aggregate import Session
from distill_es.domain.training import events as ev
from distill_es.domain.training import steps
from distill_es.domain.training.errors import TrainingNotApproved, TrainingRunNotFound, TrainingSpecInvalid
from distill_es.domain.training.evaluation import promotion, summarize_eval
from distill_es.domain.training.run import TrainingRun, experiment_id_for, run_id_for
from distill_es.domain.training.spec import (
    DEFAULT_HARDWARE_TIER,
    Budget,
    ExpectedArtifact,
    ExperimentSpec,
    TrainerResult,
    build_spec,
    code_hash,
    resolve_hyperparameters,
)
from distill_es.domain.training.views import Lineage, TrainingRunView, lineage, run_view
from distill_es.domain.vocabulary import Edit, EditOp
from distill_es.ports import TraceSource
from distill_es.store.app import EventStore
from distill_es.store.locks import exclusive
from distill_es.store.verify import Damage, verify_chain

DEFAULT_TIMEOUT_SECONDS = 240 * 60.0  # the seed's default wall-clock budget: 4 hours


class TrainingService:
    def __init__(
        self,
        store: EventStore,
        home: Path,
        trainer_command: list[str] | None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        *,
        traces: TraceSource | None = None,
        max_attempts: int = steps.DEFAULT_MAX_ATTEMPTS,
        min_delta: float = 0.0,
        hardware_tier: str | None = None,
        max_train_tokens: int | None = None,
        max_traces: int = DEFAULT_MAX_TRACES,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        if timeout_seconds <= 0:
            raise DistillError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.store = store
        self.home = Path(home).resolve()
        self.trainer_command = list(trainer_command) if trainer_command is not None else None
        self.timeout_seconds = float(timeout_seconds)
        self.traces = traces
        self.max_attempts = max_attempts
        self.min_delta = min_delta
        self.hardware_tier = hardware_tier
        self.max_train_tokens = max_train_tokens
        self.max_traces = max_traces
        self.grace_seconds = grace_seconds

    # ------------------------------------------------------------------------------------------
    # commands
    def request(self, session: Session, edit: Edit, *, baseline_score: float | None = None) -> str:
        """The run id for this approved `lora_finetune` edit; recorded now unless it already exists.

        Raises `TrainingNotApproved` (not a lora edit of this session, or not approved) and
        `TrainingSpecInvalid` (the payload cannot become a spec); nothing is recorded then.
        """
        self._check_approved(session, edit)
        rid = run_id_for(str(session.id), edit.id)
        if self._find(rid) is not None:
            return str(rid)  # idempotent: the first request's spec stands
        payload = parse_payload(edit)
        assert isinstance(payload, LoraFinetune)
        spec = self._spec(rid, session, edit, payload)
        run = TrainingRun.request(
            session_id=str(session.id),
            edit_id=edit.id,
            workspace=str(self.home),
            spec=spec,
            trainer_command=self.trainer_command,
            baseline_score=baseline_score,
            min_delta=self.min_delta,
        )
        # Another process recorded the same request first — same id, same run.
        with contextlib.suppress(ConcurrentSessionWrite):
            self.store.save(run)
        return str(rid)

    def train(self, session: Session, edit: Edit, *, baseline_score: float | None = None) -> TrainingRunView:
        """`request` then `drive`: what the engine calls when it reaches an approved `lora_finetune` edit.

        Safe to call again after a crash (same run, resumed) or after the run ended (returns its view).
        """
        return self.drive(self.request(session, edit, baseline_score=baseline_score))

    def drive(self, run_id: str) -> TrainingRunView:
        """Drive the run until nothing is left to do; resumable at any point."""
        rid = self._uuid(run_id)
        what = f"training run {rid}"
        with exclusive(self.store.url, self.home / STATE_DIR, f"training:{rid}", what):
            run = self._load(rid)
            while True:
                step = steps.next_step(run, self.max_attempts)
                if isinstance(step, steps.Rest):
                    return run_view(run)
                HANDLERS[type(step)](self, run, step)
                self._save(run)

    # ------------------------------------------------------------------------------------------
    # queries
    def get(self, run_id: str) -> TrainingRunView:
        return run_view(self._load(self._uuid(run_id)))

    def runs(self, session_id: str | None = None) -> list[TrainingRunView]:
        """This workspace's runs (of one session, if given), newest first."""
        views = []
        for rid in self._run_ids():
            run = self._load(rid)
            if run.workspace == str(self.home) and (session_id is None or run.session_id == str(session_id)):
                views.append(run_view(run))
        return sorted(views, key=lambda v: (v.requested_at, v.run_id), reverse=True)

    def lineage(self, run_id: str) -> Lineage:
        rid = self._uuid(run_id)
        return lineage(self._load(rid), self.store.domain_events(rid))

    def resolve(self, ref: str) -> str:
        """A full run id as given; a unique prefix resolved against this workspace's runs."""
        ref = ref.strip().lower()
        try:
            return str(UUID(ref))
        except ValueError:
            pass
        matches = [v.run_id for v in self.runs() if ref and v.run_id.startswith(ref)]
        if len(matches) != 1:
            found = "no training run" if not matches else f"{len(matches)} training runs"
            raise TrainingRunNotFound(f"{found} of {self.home} has an id starting with {ref!r}")
        return matches[0]

    def verify(self, run_id: str) -> list[str]:
        """Problems with the run's digest chain (empty: every stored event chains to the genesis), one
        line per damaged version (the store's check, as sessions and loops get it)."""
        rid = self._uuid(run_id)
        _, damage, _ = verify_chain(self.store, rid)
        topics = {record.originator_version: record.topic for record in self.store.stored_events(rid)}
        return [_problem(d, topics.get(d.position, "(missing)")) for d in damage]

    # ------------------------------------------------------------------------------------------
    # the steps
    def _export_dataset(self, run: TrainingRun, _: steps.ExportDataset) -> None:
        try:
            session = self.store.load(run.session_id)
            export = export_dataset(
                session, self.home, run.run_id, traces=self.traces, max_traces=self.max_traces
            )
        except (DistillError, OSError) as exc:
            run.fail(reason_code="dataset_error", message=f"the dataset could not be exported: {exc}")
            return
        run.export_dataset(
            path=str(export.path),
            fingerprint=export.fingerprint,
            rows=export.rows,
            counts=export.counts,
            benchmark_task_ids=export.benchmark_task_ids,
        )

    def _fail(self, run: TrainingRun, step: steps.Fail) -> None:
        run.fail(reason_code=step.reason_code, message=step.message)

    def _complete_dry_run(self, run: TrainingRun, step: steps.CompleteDryRun) -> None:
        run.complete_dry_run(message=step.message)

    def _run_trainer(self, run: TrainingRun, step: steps.RunTrainer) -> None:
        folder = run_dir(self.home, run.run_id)
        stop_orphan(folder)  # a trainer left running by a driver that died must not race the new one
        spec = run.full_spec
        problem = self._dataset_problem(spec)
        if problem is not None:
            run.fail(reason_code="dataset_changed", message=problem)
            return
        command = list(run.trainer_command or [])
        spec_path = folder / SPEC_FILE
        write_atomic(spec_path, spec.to_json().encode())
        attempt = run.start_attempt(command=trainer_argv(command, spec_path), spec_path=str(spec_path))
        self._save(run)  # the intent is durable before the trainer starts
        outcome = run_trainer(
            command,
            spec_path,
            folder,
            timeout_seconds=spec.budget.max_wall_clock_minutes * 60,
            cwd=self.home,
            header=f"attempt {attempt}",
            grace_seconds=self.grace_seconds,
        )
        record_outcome(run, attempt, spec, outcome)

    def _attach_eval(self, run: TrainingRun, _: steps.AttachEval) -> None:
        assert run.finished is not None
        result = TrainerResult.model_validate(run.finished.result)
        run.attach_eval(summarize_eval(result.eval, run.baseline_score, run.min_delta))

    def _decide_promotion(self, run: TrainingRun, _: steps.DecidePromotion) -> None:
        assert run.eval is not None
        deployable, reason = promotion(run.eval.verdict)
        run.decide_promotion(deployable=deployable, reason=reason)

    # ------------------------------------------------------------------------------------------
    # helpers
    def _check_approved(self, session: Session, edit: Edit) -> None:
        where = f"session {session.id}"
        if edit.op != EditOp.LORA_FINETUNE:
            raise TrainingNotApproved(f"edit {edit.id!r} of {where} is {edit.op.value}, not lora_finetune")
        progress = session.edits.get(edit.id)
        if progress is None:
            raise TrainingNotApproved(f"{where} has no edit {edit.id!r} in its plan")
        if progress.edit != edit:
            raise TrainingNotApproved(f"edit {edit.id!r} differs from the one recorded in {where}'s plan")
        if not progress.approved_by:
            raise TrainingNotApproved(
                f"edit {edit.id!r} of {where} is not approved by a reviewer (lora_finetune is manual tier)"
            )

    def _spec(self, rid: UUID, session: Session, edit: Edit, payload: LoraFinetune) -> ExperimentSpec:
        if payload.training_mode != "orpo":
            raise TrainingSpecInvalid(
                f"edit {edit.id!r}: training mode {payload.training_mode!r} is not supported (only 'orpo')"
            )
        folder = run_dir(self.home, str(rid))
        experiment_id = experiment_id_for(rid)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", payload.target_model).strip("-")
        budget = Budget(max_wall_clock_minutes=self.timeout_seconds / 60)
        if self.max_train_tokens is not None:
            budget = budget.model_copy(update={"max_train_tokens": self.max_train_tokens})
        benchmark = self.home / BENCHMARK_FILE
        return build_spec(
            experiment_id=experiment_id,
            run_id=str(rid),
            session_id=str(session.id),
            edit_id=edit.id,
            backend=payload.backend,
            training_mode="orpo",
            target_model_family=payload.target_model,
            hardware_tier=self.hardware_tier or DEFAULT_HARDWARE_TIER[payload.backend],
            benchmark_path=str(benchmark) if benchmark.is_file() else None,
            hyperparameters=resolve_hyperparameters(dict(payload.hyperparameters)),
            budget=budget,
            output_dir=str(folder / "output"),
            result_path=str(folder / RESULT_FILE),
            expected_artifact=ExpectedArtifact(checkpoint_name=f"{experiment_id}-{slug}"),
            code_hash=code_hash(self.trainer_command, self.home, __version__),
        )

    @staticmethod
    def _dataset_problem(spec: ExperimentSpec) -> str | None:
        """The recorded dataset must still be the file on disk: the trainer reads the file."""
        assert spec.dataset is not None
        path = Path(spec.dataset.path)
        if not path.is_file():
            return f"the exported dataset {path} is gone; the run cannot train on what it recorded"
        actual = fingerprint_file(path)
        if actual != spec.dataset.fingerprint:
            return (
                f"the exported dataset {path} changed since it was recorded "
                f"(sha256 {actual[:12]}…, recorded {spec.dataset.fingerprint[:12]}…)"
            )
        return None

    @staticmethod
    def _uuid(run_id: str | UUID) -> UUID:
        try:
            return run_id if isinstance(run_id, UUID) else UUID(str(run_id))
        except ValueError:
            raise TrainingRunNotFound(f"{run_id!r} is not a training run id") from None

    def _find(self, rid: UUID) -> TrainingRun | None:
        return self.store.find_as(rid, TrainingRun, TrainingRunNotFound)

    def _load(self, rid: UUID) -> TrainingRun:
        run = self._find(rid)
        if run is None:
            raise TrainingRunNotFound(f"no training run {rid} in store {self.store.url}")
        return run

    def _save(self, run: TrainingRun) -> None:
        self.store.save(run)  # a conflict: ConcurrentSessionWrite, nothing of this write stored

    def _run_ids(self) -> list[UUID]:
        """Every training run id in the store, from the log (creation events only)."""
        return list(self.store.aggregate_ids(ev.TrainingRequested.TOPIC))


# Each step of `steps.next_step` and the one method that performs it (a test checks every step has one).
Handler = Callable[[TrainingService, TrainingRun, Any], None]
HANDLERS: dict[type[steps.Step], Handler] = {
    steps.ExportDataset: TrainingService._export_dataset,
    steps.Fail: TrainingService._fail,
    steps.CompleteDryRun: TrainingService._complete_dry_run,
    steps.RunTrainer: TrainingService._run_trainer,
    steps.AttachEval: TrainingService._attach_eval,
    steps.DecidePromotion: TrainingService._decide_promotion,
}


def _problem(damage: Damage, topic: str) -> str:
    what = "digest does not chain" if damage.kind in ("edited", "reordered") else damage.kind
    return f"v{damage.position} {topic}: {what}"
