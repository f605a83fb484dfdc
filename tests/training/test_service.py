"""TrainingService end to end on a real SQLite store and workspace, with fake trainers."""

from __future__ import annotations

import json
import sqlite3
import sys
import zlib
from pathlib import Path

import pytest

from distill_es.adapters.trainer import trainer_argv
from distill_es.app.training.dataset import export_dataset, run_dir
from distill_es.domain.training import events as ev
from distill_es.domain.training.errors import TrainingNotApproved, TrainingRunNotFound, TrainingSpecInvalid
from distill_es.domain.training.run import TrainingRun, run_id_for
from distill_es.domain.training.steps import NO_TRAINER
from distill_es.store.projections import SessionIndex

from .conftest import LORA_EDIT_ID, World, exemplar_edit, lora_edit

REPO = Path(__file__).resolve().parents[2]
GOOD = 'out(completed(eval={"candidate_score": 0.8, "benchmark_id": "personal", "mode": "reduced_prompt"}))'


def topics(world: World, run_id: str) -> list[str]:
    return [type(e).TOPIC for e in world.store.app.events.get(run_id_for_str(run_id))]


def run_id_for_str(run_id: str):  # type: ignore[no-untyped-def]
    from uuid import UUID

    return UUID(run_id)


def drive(  # type: ignore[no-untyped-def]
    world: World, body: str | None, *, edit_backend: str = "peft-trl-orpo", baseline: float | None = 0.5,
    **options: object,
):  # fmt: skip
    session = world.session(edits=[lora_edit(edit_backend), exemplar_edit()])
    service = world.service(world.trainer(body) if body is not None else None, **options)  # type: ignore[arg-type]
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit, baseline_score=baseline)
    return service, run_id, service.drive(run_id)


def test_a_successful_run_records_its_whole_lineage(world: World) -> None:
    service, run_id, view = drive(world, GOOD)
    assert view.state == "completed" and view.attempts == 1
    assert (view.verdict, view.delta, view.deployable) == ("pass", 0.3, True)
    assert topics(world, run_id) == [
        ev.TrainingRequested.TOPIC,
        ev.TrainingDatasetExported.TOPIC,
        ev.TrainingStarted.TOPIC,
        ev.TrainingCheckpointRegistered.TOPIC,
        ev.TrainingFinished.TOPIC,
        ev.TrainingEvalAttached.TOPIC,
        ev.TrainingPromotionDecided.TOPIC,
    ]
    lineage = service.lineage(run_id)
    folder = run_dir(world.home, run_id)
    assert (
        lineage.spec["dataset"]["fingerprint"] == lineage.dataset["fingerprint"] == view.dataset_fingerprint
    )
    assert json.loads((folder / "spec.json").read_text()) == lineage.spec  # what the trainer was given
    assert lineage.attempts[0]["outcome"] == "completed"
    assert lineage.attempts[0]["command"][-2:] == ["--spec", str(folder / "spec.json")]
    assert lineage.checkpoint["artifact_path"] == str(
        folder / "output" / lineage.spec["expected_artifact"]["checkpoint_name"]
    )
    assert lineage.checkpoint["dataset_fingerprint"] == view.dataset_fingerprint
    assert lineage.checkpoint["code_hash"] == lineage.spec["code_hash"]
    assert lineage.eval["baseline_score"] == 0.5 and lineage.eval["candidate_score"] == 0.8
    assert lineage.eval["benchmark_id"] == "personal"
    assert lineage.promotion["deployable"] is True
    assert [e["type"] for e in lineage.events] == [t.split(".")[1] for t in topics(world, run_id)]
    assert (folder / "trainer.log").is_file()
    assert service.verify(run_id) == []
    assert service.get(run_id) == view and view.settled


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (
            "print('boom', file=sys.stderr); sys.exit(2)",
            "nonzero_exit",
            "exited with status 2; last stderr: 'boom'",
        ),
        ("print('Loading checkpoint shards: 100%')", "invalid_json", "not valid JSON"),
        ("sys.stdout.write('x' * 1_100_000)", "output_too_large", "more than 1048576 bytes"),
        ("out({'status': 'done'})", "invalid_result", "does not fit the protocol"),
        ("out({**echo, 'status': 'failed', 'failure_reason': 'CUDA OOM'})", "trainer_failed", "CUDA OOM"),
        ("out(completed(experiment_id='exp-someone-else'))", "spec_mismatch", "experiment_id: expected"),
        ("out(completed(dataset_fingerprint='0' * 64))", "spec_mismatch", "dataset_fingerprint: expected"),
        ("out(completed(config_fingerprint='0' * 64))", "spec_mismatch", "config_fingerprint: expected"),
        ("out(completed(backend='unsloth-orpo'))", "spec_mismatch", "backend: expected 'peft-trl-orpo'"),
        ("out(completed(target_model_family='llama3:8b'))", "spec_mismatch", "target_model_family: expected"),
        (
            "out({**echo, 'status': 'completed'})",
            "spec_mismatch",
            "artifact: a completed result must name it",
        ),
        ("pass", "no_result", "printed nothing"),
    ],
)
def test_every_bad_trainer_outcome_is_a_recorded_failure(
    world: World, body: str, code: str, words: str
) -> None:
    service, run_id, view = drive(world, body)
    assert (view.state, view.reason_code) == ("failed", code)
    assert words in (view.message or "")
    assert view.checkpoint_id is None and view.deployable is None  # nothing registered, nothing promoted
    lineage = service.lineage(run_id)
    assert lineage.failure["reason_code"] == code and lineage.failure["attempt"] == 1
    assert lineage.attempts[0]["outcome"] == code
    assert ev.TrainingCheckpointRegistered.TOPIC not in topics(world, run_id)


def test_a_trainer_past_its_budget_is_killed(world: World) -> None:
    _, _, view = drive(world, "time.sleep(60)", timeout=2.0)
    assert (view.state, view.reason_code) == ("failed", "timeout")
    assert "longer than 2s" in (view.message or "")


def test_the_result_file_is_used_when_stdout_is_empty(world: World) -> None:
    body = 'Path(spec["result_path"]).write_text(json.dumps(completed(eval={"candidate_score": 0.9})))'
    service, run_id, view = drive(world, body)
    assert view.state == "completed"
    assert service.lineage(run_id).attempts[0]["outcome"] == "completed"
    finished = [
        e for e in world.store.app.events.get(run_id_for_str(run_id)) if isinstance(e, ev.TrainingFinished)
    ]
    assert finished[0].source == "result_file"


def test_a_missing_trainer_is_a_recorded_failure(world: World) -> None:
    session = world.session()
    service = world.service([str(world.tmp / "no-such-trainer")])
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit)
    view = service.drive(run_id)
    assert (view.state, view.reason_code) == ("failed", "trainer_missing")


def test_without_a_trainer_the_run_is_a_dry_run(world: World) -> None:
    _, _, view = drive(world, None)
    assert (view.state, view.reason_code, view.message) == ("dry_run", "dry_run", NO_TRAINER)
    assert view.dataset_rows and view.attempts == 0  # the dataset is still exported for inspection
    assert view.settled and view.deployable is None


def test_the_reference_dry_run_trainer(world: World) -> None:
    session = world.session(edits=[lora_edit("dry-run")])
    service = world.service([sys.executable, str(REPO / "scripts" / "trainers" / "dry_run.py")])
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit)
    view = service.drive(run_id)
    assert (view.state, view.attempts) == ("dry_run", 1)
    result = service.lineage(run_id).dry_run["result"]
    assert result["status"] == "dry_run" and result["metrics"]["preference_rows"] == 1


def test_the_peft_trainer_without_its_ml_stack_reports_a_clean_failure(world: World) -> None:
    if any(__import__("importlib").util.find_spec(m) for m in ("torch", "trl", "peft")):
        pytest.skip("the ML stack is installed here; this test covers its absence")
    session = world.session()
    script = str(REPO / "scripts" / "trainers" / "peft_orpo.py")
    service = world.service([sys.executable, script, "--base-model", "tiny/model"])
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit)
    view = service.drive(run_id)
    assert (view.state, view.reason_code) == ("failed", "trainer_failed")
    assert "the ML stack is not installed" in (view.message or "")


def test_a_dry_run_backend_cannot_claim_a_checkpoint(world: World) -> None:
    _, _, view = drive(world, GOOD, edit_backend="dry-run")
    assert (view.state, view.reason_code) == ("failed", "spec_mismatch")
    assert "backend 'dry-run' must not report a trained checkpoint" in (view.message or "")


@pytest.mark.parametrize(
    ("body", "baseline", "verdict", "deployable"),
    [
        (GOOD, None, "compare_only", True),
        (GOOD, 0.9, "fail", False),
        ("out(completed())", 0.5, "fail", False),  # no eval block: nothing shows it helps
    ],
)
def test_eval_verdict_drives_the_promotion_gate(
    world: World, body: str, baseline: float | None, verdict: str, deployable: bool
) -> None:
    service, run_id, view = drive(world, body, baseline=baseline)
    assert (view.state, view.verdict, view.deployable) == ("completed", verdict, deployable)
    assert service.lineage(run_id).checkpoint is not None  # kept for lineage even when not deployable


def test_train_is_request_then_drive_and_safe_to_repeat(world: World) -> None:
    count = world.tmp / "invocations"
    session = world.session()
    service = world.service(world.trainer(f"open({str(count)!r}, 'a').write('x')\n{GOOD}"))
    edit = session.edits[LORA_EDIT_ID].edit
    first = service.train(session, edit, baseline_score=0.5)
    again = service.train(session, edit, baseline_score=0.5)
    assert first == again and first.deployable is True and count.read_text() == "x"


def test_request_is_idempotent(world: World) -> None:
    session = world.session()
    service = world.service(None)
    edit = session.edits[LORA_EDIT_ID].edit
    first = service.request(session, edit, baseline_score=0.1)
    assert (
        service.request(session, edit, baseline_score=0.9)
        == first
        == str(run_id_for(str(session.id), edit.id))
    )
    assert topics(world, first) == [ev.TrainingRequested.TOPIC]
    assert [v.run_id for v in service.runs()] == [first]
    service.drive(first)
    assert service.request(session, edit) == first  # after the run ended, too
    assert len(service.runs(session_id=str(session.id))) == 1
    assert service.runs(session_id="another-session") == []


def test_request_refuses_what_is_not_an_approved_lora_edit(world: World) -> None:
    service = world.service(None)
    pending = world.session(approve=[])
    with pytest.raises(TrainingNotApproved, match="not approved by a reviewer"):
        service.request(pending, pending.edits[LORA_EDIT_ID].edit)
    session = world.session()
    with pytest.raises(
        TrainingNotApproved, match=r"edit_fewshot.*edit_few_shot_exemplars, not lora_finetune"
    ):
        service.request(session, session.edits["edit_fewshot"].edit)
    with pytest.raises(TrainingNotApproved, match="has no edit 'other'"):
        service.request(session, lora_edit().model_copy(update={"id": "other"}))
    with pytest.raises(TrainingNotApproved, match="differs from the one recorded"):
        service.request(session, lora_edit(target_model="llama3:8b"))
    assert service.runs() == []  # nothing was recorded


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"training_mode": "sft"}, "training mode 'sft' is not supported"),
        ({"hyperparameters": {"epochs": 3}}, "epochs"),
    ],
)
def test_request_refuses_a_payload_that_cannot_be_a_spec(world: World, payload: dict, words: str) -> None:
    edit = lora_edit(**payload)
    session = world.session(edits=[edit])
    with pytest.raises(TrainingSpecInvalid, match=words):
        world.service(None).request(session, edit)


def test_an_empty_dataset_fails_before_any_trainer_runs(world: World) -> None:
    from distill_es.adapters.traces import EmptyTraceSource

    marker = world.tmp / "ran"
    session = world.session(edits=[lora_edit()], self_run=False)
    service = world.service(world.trainer(f"Path({str(marker)!r}).touch()"), traces=EmptyTraceSource())
    view = service.drive(service.request(session, session.edits[LORA_EDIT_ID].edit))
    assert (view.state, view.reason_code, view.attempts) == ("failed", "empty_dataset", 0)
    assert not marker.exists()


def test_a_session_missing_from_the_store_is_a_dataset_error(world: World) -> None:
    from .conftest import build_session

    unsaved = build_session(edits=[lora_edit()], approve=[LORA_EDIT_ID])
    service = world.service(None)
    view = service.drive(service.request(unsaved, unsaved.edits[LORA_EDIT_ID].edit))
    assert (view.state, view.reason_code) == ("failed", "dataset_error")
    assert str(unsaved.id) in (view.message or "")


def _crashed_run(world: World, service, body_marker: Path, starts: int):  # type: ignore[no-untyped-def]
    """A run as a driver that died `starts` times while its trainer ran leaves it: `running`, no result."""
    session = world.session()
    run_id = service.request(session, session.edits[LORA_EDIT_ID].edit)
    run = world.store.app.repository.get(run_id_for_str(run_id))
    assert isinstance(run, TrainingRun)
    export = export_dataset(session, world.home, run_id)
    run.export_dataset(path=str(export.path), fingerprint=export.fingerprint, rows=export.rows,
                       counts=export.counts, benchmark_task_ids=export.benchmark_task_ids)  # fmt: skip
    spec_path = run_dir(world.home, run_id) / "spec.json"
    for _ in range(starts):
        run.start_attempt(command=trainer_argv(service.trainer_command, spec_path), spec_path=str(spec_path))
    world.store.app.save(run)
    return run_id


def test_a_run_left_running_without_a_result_is_run_again(world: World) -> None:
    count = world.tmp / "invocations"
    service = world.service(world.trainer(f"open({str(count)!r}, 'a').write('x')\n{GOOD}"))
    run_id = _crashed_run(world, service, count, starts=1)
    assert service.get(run_id).state == "running"
    view = service.drive(run_id)
    assert (view.state, view.attempts, view.deployable) == ("completed", 2, True)
    assert count.read_text() == "x"  # the trainer ran once more, not twice
    attempts = service.lineage(run_id).attempts
    assert [a["outcome"] for a in attempts] == ["interrupted", "completed"]
    # Driving a settled run again repeats nothing.
    again = service.drive(run_id)
    assert again.version == view.version and count.read_text() == "x"


def test_attempts_are_bounded(world: World) -> None:
    count = world.tmp / "invocations"
    service = world.service(world.trainer(f"open({str(count)!r}, 'a').write('x')\n{GOOD}"), max_attempts=3)
    run_id = _crashed_run(world, service, count, starts=3)
    view = service.drive(run_id)
    assert (view.state, view.reason_code) == ("failed", "attempts_exhausted")
    assert not count.exists()
    assert [a["outcome"] for a in service.lineage(run_id).attempts] == ["interrupted"] * 3


def test_a_dataset_changed_after_export_is_refused(world: World) -> None:
    count = world.tmp / "invocations"
    service = world.service(world.trainer(f"open({str(count)!r}, 'a').write('x')\n{GOOD}"))
    run_id = _crashed_run(world, service, count, starts=0)
    dataset = run_dir(world.home, run_id) / "dataset.jsonl"
    dataset.write_text(dataset.read_text() + '{"prompt": "injected"}\n')
    view = service.drive(run_id)
    assert (view.state, view.reason_code) == ("failed", "dataset_changed")
    assert not count.exists()


def test_queries_resolve_prefixes_and_refuse_unknown_ids(world: World) -> None:
    service, run_id, _ = drive(world, None)
    assert service.resolve(run_id[:8]) == run_id
    with pytest.raises(TrainingRunNotFound):
        service.resolve("ffffffff")
    with pytest.raises(TrainingRunNotFound, match="not a training run id"):
        service.get("nope")
    session_id = service.get(run_id).session_id
    with pytest.raises(TrainingRunNotFound, match="is not a training run"):
        service.get(session_id)


def test_sessions_and_training_runs_share_the_store(world: World) -> None:
    service, run_id, _ = drive(world, GOOD)
    index = SessionIndex(world.tmp / "views.sqlite", world.store)
    index.catch_up()  # reads past the run's events without choking on them
    rows = index.rows()
    assert [row["session_id"] for row in rows] == [service.get(run_id).session_id]  # sessions only
    assert index.position() == world.store.max_position()


def test_verify_finds_an_edited_event(world: World) -> None:
    service, run_id, _ = drive(world, "sys.exit(1)")
    table = world.store.app.recorder.events_table_name  # type: ignore[attr-defined]
    db = sqlite3.connect(world.tmp / "events.sqlite")
    (state,) = db.execute(f"SELECT state FROM {table} WHERE topic = ?", (ev.TrainingFailed.TOPIC,)).fetchone()
    data = json.loads(zlib.decompress(state))
    data["message"] = "all good, nothing to see"
    db.execute(
        f"UPDATE {table} SET state = ? WHERE topic = ?",
        (zlib.compress(json.dumps(data).encode()), ev.TrainingFailed.TOPIC),
    )
    db.commit()
    db.close()
    assert service.verify(run_id) == [f"v4 {ev.TrainingFailed.TOPIC}: digest does not chain"]


def test_every_step_has_exactly_one_handler() -> None:
    """`drive` performs a step through the table keyed by its type, never by its name."""
    import inspect

    from distill_es.app.training.service import HANDLERS
    from distill_es.domain.training import steps as training_steps

    defined = {
        cls for _, cls in inspect.getmembers(training_steps, inspect.isclass)
        if issubclass(cls, training_steps.Step) and cls.__module__ == training_steps.__name__
    }  # fmt: skip
    assert set(HANDLERS) == defined - {training_steps.Rest}
    assert len(set(HANDLERS.values())) == len(HANDLERS)
