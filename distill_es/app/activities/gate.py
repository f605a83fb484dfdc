"""The gate's steps: choose the tasks, score a tree on them, capture a benchmark, decide an edit."""

from __future__ import annotations

import threading
from typing import Any

from distill_es.adapters.benchmark import load_benchmark
from distill_es.app.activities.context import StepContext
from distill_es.app.progress import ScoringProgress
from distill_es.domain.errors import RequestRefused, WorkspaceConflict
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Done, Outcome, Refused, no_benchmark_error
from distill_es.phases.gate import choose_gate_tasks as choose_tasks
from distill_es.phases.gate import evaluate_gate as gate_decision
from distill_es.phases.gate import snapshot, stable_seed
from distill_es.ports import BenchmarkTask, TaskScore, accepts_keyword


def choose_gate_tasks(ctx: StepContext, session: Session, _: steps.ChooseGateTasks) -> Outcome:
    """Reads the benchmark and draws the gate's subsample, seeded by the session id."""
    benchmark = load_benchmark(ctx.home)
    if not benchmark:
        return Refused("no_benchmark", no_benchmark_error(str(ctx.home)))
    seed = stable_seed(str(session.id))
    task_ids = choose_tasks(
        seed=seed,
        benchmark=benchmark,
        clusters=session.clusters,
        subsample_size=int(session.settings["gate"]["subsample_size"]),
    )
    return Done({"seed": seed, "task_ids": task_ids})


def score_tree(ctx: StepContext, session: Session, step: steps.ScoreTree) -> Outcome:
    """Scores the workspace's tree on the gate tasks it has no score for yet. Not one outside effect:
    one student call and one judge call per task (`step.missing` of them), run concurrently by the
    scorer; all of them are recorded together, so a crash scores the batch again."""
    actual = ctx.adapters.workspace.tree_sha()
    if actual != step.tree_sha:
        raise WorkspaceConflict(
            f"session {session.id} needs the workspace at tree {step.tree_sha[:10]} to score it, "
            f"but it is at {actual[:10]}: someone changed it outside this session"
        )
    benchmark = {t.task_id: t for t in load_benchmark(ctx.home)}
    missing_ids = [
        t for t in session.gate_task_ids or [] if session.score_key(step.tree_sha, t) not in session.scores
    ]
    unknown = [t for t in missing_ids if t not in benchmark]
    if unknown:
        return Refused(
            "benchmark_changed", f"benchmark tasks disappeared during the session: {', '.join(unknown)}"
        )
    tasks: list[BenchmarkTask] = [benchmark[t] for t in missing_ids]
    try:
        scores = _score(ctx, session, step, tasks)
    except RequestRefused as exc:  # only the judge raises it: the student's refusal scores 0.0
        detail = f"the judge could not score a task: {exc}"
        return Refused("judge_error", detail, paid=ctx.judge_calls(session.version))
    return Done(
        {
            "tree_sha": step.tree_sha,
            "seed": session.gate_seed or 0,
            "student_model": session.student_model,
            "scores": [s.model_dump(mode="json") for s in scores],
        },
        paid=ctx.judge_calls(session.version),
    )


def _score(
    ctx: StepContext, session: Session, step: steps.ScoreTree, tasks: list[BenchmarkTask]
) -> list[TaskScore]:
    """Score `tasks`, telling `on_scoring` of each one as it is scored (from the scorer's threads)."""
    scorer = ctx.adapters.scorer
    observer = ctx.on_scoring
    if observer is None or not accepts_keyword(scorer.score, "on_scored"):
        return scorer.score(tasks)
    lock, scored = threading.Lock(), 0

    def tick(_index: int, _score: TaskScore) -> None:
        nonlocal scored
        with lock:  # one report at a time, counted in the order they are made
            scored += 1
            observer(ScoringProgress(str(session.id), step.tree_sha, scored, len(tasks), step.total))

    return scorer.score(tasks, on_scored=tick)


def _snapshot(session: Session, tree_sha: str) -> Any:
    """The benchmark reading of a tree, from the scores recorded for it."""
    scores = {
        t: TaskScore.model_validate(session.scores[session.score_key(tree_sha, t)])
        for t in session.gate_task_ids or []
    }
    return snapshot(
        scores=scores,
        task_ids=list(session.gate_task_ids or []),
        clusters=session.clusters,
        benchmark_version=str(session.settings["gate"]["benchmark_version"]),
        tree_sha=tree_sha,
    )


def capture_benchmark(_: StepContext, session: Session, step: steps.CaptureBenchmark) -> Outcome:
    """No outside effect: a reading computed from recorded scores."""
    return Done({"label": step.label, "snapshot": _snapshot(session, step.tree_sha)})


def evaluate_gate(_: StepContext, session: Session, step: steps.EvaluateGate) -> Outcome:
    """No outside effect: the edit's before and after readings, compared under the gate's settings."""
    progress = session.edits[step.edit_id]
    before = _snapshot(session, str(progress.pre_tree))
    after = _snapshot(session, str(progress.tree_sha))
    gate = session.settings["gate"]
    decision = gate_decision(
        before=before,
        after=after,
        target_cluster=progress.edit.expected_improvement,
        max_regression=float(gate["max_regression"]),
        min_improvement=float(gate["min_improvement"]),
    )
    return Done(
        {
            "edit_id": step.edit_id,
            "before": before,
            "after": after,
            "delta": decision.delta,
            "cluster_deltas": dict(decision.cluster_deltas),
            "accepted": decision.accepted,
            "reason": decision.reason,
        }
    )
