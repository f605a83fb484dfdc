"""Property: any sequence of commands on a TrainingRun obeys the lifecycle table, and replaying the
recorded events rebuilds exactly the live run (replay runs only `evolve`)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from distill_es.domain.errors import IllegalTransition
from distill_es.domain.training.evaluation import EvalSummary
from distill_es.domain.training.run import TrainingRun, experiment_id_for, run_id_for
from distill_es.domain.training.spec import ExpectedArtifact, build_spec

from .test_lifecycle import LEGAL

COMMANDS = ["export_dataset", "start", "restart", "register_checkpoint", "finish", "fail",
            "complete_dry_run", "attach_eval", "decide_promotion"]  # fmt: skip


def new_run() -> TrainingRun:
    rid = run_id_for("s", "e")
    spec = build_spec(
        experiment_id=experiment_id_for(rid), run_id=str(rid), session_id="s", edit_id="e",
        backend="peft-trl-orpo", target_model_family="m", output_dir="/o", result_path="/o/r.json",
        expected_artifact=ExpectedArtifact(checkpoint_name="c"), code_hash="c" * 64,
    )  # fmt: skip
    return TrainingRun.request(session_id="s", edit_id="e", workspace="/w", spec=spec, trainer_command=["t"])


def fire(run: TrainingRun, command: str) -> None:
    open_attempt = (
        run.current_attempt.attempt if run.current_attempt and not run.current_attempt.outcome else None
    )
    calls: dict[str, Any] = {
        "export_dataset": lambda: run.export_dataset(
            path="/d", fingerprint="f" * 64, rows=1, counts={"trace": 1}, benchmark_task_ids=[]
        ),
        "start": lambda: run.start_attempt(command=["t"], spec_path="/s"),
        "restart": lambda: run.start_attempt(command=["t"], spec_path="/s"),
        "register_checkpoint": lambda: run.register_checkpoint(
            checkpoint_id="c",
            artifact_path="/a",
            adapter_format="peft-adapter",
            experiment_id="x",
            target_model_family="m",
            dataset_fingerprint="f",
            config_fingerprint="g",
            code_hash="h",
        ),
        "finish": lambda: run.finish(
            attempt=open_attempt or 0, result={}, source="stdout", exit_code=0, duration_seconds=1
        ),
        "fail": lambda: run.fail(reason_code="timeout", message="m", attempt=open_attempt),
        "complete_dry_run": lambda: run.complete_dry_run(message="m", attempt=open_attempt),
        "attach_eval": lambda: run.attach_eval(EvalSummary(0.5, 0.6, 0.1, "pass", "r")),
        "decide_promotion": lambda: run.decide_promotion(deployable=True, reason="r"),
    }
    calls[command]()


def guards_hold(run: TrainingRun, command: str) -> bool:
    return {
        "export_dataset": not run.has_dataset,
        "start": run.has_dataset,
        "register_checkpoint": not run.has_checkpoint,
        "finish": run.has_checkpoint,
        "attach_eval": run.has_checkpoint and not run.has_eval,
        "decide_promotion": run.has_eval and not run.has_promotion,
    }.get(command, True)


def snapshot(run: TrainingRun) -> tuple[Any, ...]:
    return (run.state, run.version, run.last_digest, [(a.attempt, a.outcome) for a in run.attempts],
            run.has_dataset, run.has_checkpoint, run.has_eval, run.has_promotion)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(COMMANDS), max_size=14))
def test_commands_follow_the_table_and_replay_equals_live(commands: list[str]) -> None:
    run = new_run()
    for command in commands:
        # `start_attempt` is one method: from pending it is the `start` move, otherwise `restart`.
        decided = (
            ("start" if run.state == "pending" else "restart") if command in {"start", "restart"} else command
        )
        expected = (decided, run.state) in LEGAL and guards_hold(run, decided)
        before = snapshot(run)
        try:
            fire(run, command)
        except IllegalTransition:  # illegal move, or a guard refused it
            assert not expected, (command, before)
            assert snapshot(run) == before  # a refused command records nothing
            continue
        assert expected, (command, before)
    replayed = None
    for event in run.collect_events():
        replayed = event.mutate(replayed)
    assert replayed is not None and snapshot(replayed) == snapshot(run)
