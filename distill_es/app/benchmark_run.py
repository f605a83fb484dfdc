"""Scoring a workspace tree on the benchmark outside any session: `distill-es benchmark run|compare`.

A run scores one tree — the working tree's managed files, or a git ref's tree — on every benchmark
task, grouped per failure cluster of the latest diagnosis (task categories when there is none). It
reuses the tree-sha score cache: scores recorded for the same tree and the same `[student] model` by
this workspace's sessions (`TasksScored`, as the gate reuses them) or by earlier benchmark runs; only
the rest are scored, and those are recorded in turn, so scoring a tree twice costs nothing. A run is
an aggregate of its own (`distill_es.domain.benchmark_run`) in the session store.

A ref other than the working tree is scored in a temporary directory holding that tree's managed
files: a student that reads a workspace (it has a `home`, as the default and the demo students do) is
pointed there; one that does not (a scripted student) is used as it is. The benchmark itself is always
the working tree's `benchmark.jsonl`: both sides of a comparison are measured with the same tasks.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from distill_es.adapters.benchmark import load_benchmark
from distill_es.adapters.scorer import StudentScorer
from distill_es.app.session_runner import Runner
from distill_es.domain.benchmark_run import rules
from distill_es.domain.benchmark_run.aggregate import BenchmarkRun
from distill_es.domain.benchmark_run.errors import BenchmarkRunNotFound, UnknownRef
from distill_es.domain.benchmark_run.events import BenchmarkRunStarted, BenchmarkTasksScored
from distill_es.domain.benchmark_run.views import BenchmarkComparison, BenchmarkRunView, GroupDelta
from distill_es.domain.errors import WorkspaceError
from distill_es.domain.session.events import TasksScored
from distill_es.domain.vocabulary import FailureCluster
from distill_es.ports import BenchmarkTask, Scorer, TaskScore, accepts_keyword
from distill_es.store.verify import Damage, verify_chain

# (tasks scored so far, tasks to score) as the student answers
BenchmarkProgress = Callable[[int, int], None]
Grouping = tuple[str, str | None, dict[str, list[str]]]  # kind, source session, groups


def run_benchmark(
    runner: Runner,
    *,
    ref: str | None = None,
    min_score: float | None = None,
    grouping: Grouping | None = None,
    on_scored: BenchmarkProgress | None = None,
) -> BenchmarkRunView:
    """Score the working tree (`ref` None) or `ref`'s tree; record the run; return its view."""
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be between 0 and 1, not {min_score}")
    tasks = load_benchmark(runner.home)
    if not tasks:
        raise WorkspaceError(f"{runner.home}/benchmark.jsonl has no tasks: there is nothing to score")
    workspace = runner.adapters.workspace
    current = workspace.working_tree_sha()  # type: ignore[attr-defined]
    tree = current if ref is None else workspace.tree_of(ref)  # type: ignore[attr-defined]
    if tree is None:
        raise UnknownRef(f"{ref!r} names no commit in the workspace's git repository at {runner.home}")
    kind, source, groups = grouping or workspace_grouping(runner, tasks)
    student_model = runner.settings.student.model
    run = BenchmarkRun.begin(
        run_id=uuid4(), workspace=str(runner.home), ref=ref, tree_sha=tree, student_model=student_model,
        benchmark_version=runner.settings.gate.benchmark_version, task_ids=[t.task_id for t in tasks],
        grouping=kind, grouping_source=source, groups=groups, min_score=min_score,
    )  # fmt: skip
    runner.store.save(run)
    for origin, scores in cached_scores(runner, tree, student_model, set(run.task_ids)).items():
        run.record_scores(source=origin, scores=scores)
    runner.store.save(run)
    missing = [t for t in tasks if t.task_id in set(run.unscored)]
    if missing:
        try:
            with _scorer_for(runner, tree, current) as scorer:
                fresh = _score(scorer, missing, on_scored)
        except BaseException as exc:
            run.fail(error=f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            runner.store.save(run)
            raise
        run.record_scores(source="scored", scores=[s.model_dump(mode="json") for s in fresh])
    run.finish()
    runner.store.save(run)
    return run.view()


def compare_refs(
    runner: Runner, before: str, after: str, *, on_scored: BenchmarkProgress | None = None
) -> BenchmarkComparison:
    """Score two refs (each a recorded run, with the same groups) and the per-group deltas.
    `before` or `after` may be "WORKTREE": the working tree's managed files."""
    grouping = workspace_grouping(runner, load_benchmark(runner.home))
    a = run_benchmark(runner, ref=_ref(before), grouping=grouping, on_scored=on_scored)
    b = run_benchmark(runner, ref=_ref(after), grouping=grouping, on_scored=on_scored)
    before_scores = {g.group: g.score for g in a.groups if g.score is not None}
    after_scores = {g.group: g.score for g in b.groups if g.score is not None}
    rows = [
        GroupDelta(group=gid, before=x, after=y, delta=d)
        for gid, (x, y, d) in rules.deltas(before_scores, after_scores).items()
    ]
    overall = None
    if a.overall_score is not None and b.overall_score is not None:
        overall = b.overall_score - a.overall_score
    return BenchmarkComparison(before=a, after=b, overall_delta=overall, groups=rows)


WORKTREE = "WORKTREE"


def _ref(ref: str) -> str | None:
    return None if ref == WORKTREE else ref


def workspace_grouping(runner: Runner, tasks: list[BenchmarkTask]) -> Grouping:
    """The latest diagnosed session's clusters over these tasks, else the tasks' categories."""
    source, clusters = latest_clusters(runner)
    kind, groups = rules.group_tasks([(t.task_id, t.category) for t in tasks], clusters)
    return kind, source if kind == "clusters" else None, groups


def latest_clusters(runner: Runner) -> tuple[str | None, list[FailureCluster]]:
    """(session id, clusters) of this workspace's newest session that has a diagnosis."""
    for row in runner.index.rows(workspace=str(runner.home)):
        session_id = str(row["session_id"])
        try:
            clusters = runner.log.load(session_id).clusters
        except Exception:  # a damaged session names no clusters; `verify` reports it
            continue
        if any(c.task_ids for c in clusters):
            return session_id, list(clusters)
    return None, []


def cached_scores(
    runner: Runner, tree_sha: str, student_model: str, task_ids: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """source -> scores of `task_ids` already recorded for this tree and student model, by this
    workspace's sessions and benchmark runs; the newest score of a task wins."""
    sessions = {str(r["session_id"]) for r in runner.index.rows(workspace=str(runner.home))}
    runs = {
        str(e.originator_id)
        for e in runner.store.scan(BenchmarkRunStarted.TOPIC)
        if runner.index.belongs(e.workspace, str(runner.home))
        and e.tree_sha == tree_sha
        and e.student_model == student_model
    }
    found: dict[str, tuple[str, dict[str, Any], float]] = {}

    def take(origin: str, scores: list[dict[str, Any]], at: float) -> None:
        for score in scores:
            task_id = str(score.get("task_id"))
            if task_id in task_ids and (task_id not in found or found[task_id][2] <= at):
                found[task_id] = (origin, TaskScore.model_validate(score).model_dump(mode="json"), at)

    for e in runner.store.scan(TasksScored.TOPIC):
        sid = str(e.originator_id)
        if sid in sessions and e.tree_sha == tree_sha and e.student_model == student_model:
            take(f"session:{sid}", e.scores, e.timestamp.timestamp())
    for e in runner.store.scan(BenchmarkTasksScored.TOPIC):
        rid = str(e.originator_id)
        if rid in runs:
            origin = f"benchmark_run:{rid}" if e.source == "scored" else e.source
            take(origin, e.scores, e.timestamp.timestamp())
    grouped: dict[str, list[dict[str, Any]]] = {}
    for origin, score, _ in found.values():
        grouped.setdefault(origin, []).append(score)
    return grouped


@contextmanager
def _scorer_for(runner: Runner, tree_sha: str, current: str) -> Iterator[Scorer]:
    """The engine's scorer for the working tree; for another tree, a scorer whose student reads a
    temporary directory holding that tree's managed files."""
    if tree_sha == current:
        yield runner.adapters.scorer
        return
    student = runner.adapters.student
    with tempfile.TemporaryDirectory(prefix="distill-es-bench-") as tmp:
        runner.adapters.workspace.export_tree(tree_sha, Path(tmp))  # type: ignore[attr-defined]
        if hasattr(student, "home"):
            student = copy.copy(student)
            student.home = Path(tmp)
        yield StudentScorer(student, runner.adapters.judge)


def _score(
    scorer: Scorer, tasks: list[BenchmarkTask], on_scored: BenchmarkProgress | None
) -> list[TaskScore]:
    if on_scored is None or not accepts_keyword(scorer.score, "on_scored"):
        return scorer.score(tasks)
    count = 0

    def tick(_index: int, _score: TaskScore) -> None:
        nonlocal count
        count += 1
        on_scored(count, len(tasks))

    return scorer.score(tasks, on_scored=tick)  # type: ignore[call-arg]


# --- queries -------------------------------------------------------------------------------------------
def _parse_run_id(run_id: str | UUID) -> UUID:
    try:
        return run_id if isinstance(run_id, UUID) else UUID(str(run_id).strip())
    except ValueError:
        raise BenchmarkRunNotFound(f"{run_id!r} is not a benchmark run id") from None


def get_benchmark_run(runner: Runner, run_id: str | UUID) -> BenchmarkRunView:
    rid = _parse_run_id(run_id)
    run = runner.store.find_as(rid, BenchmarkRun, BenchmarkRunNotFound)
    if run is None:
        raise BenchmarkRunNotFound(f"no benchmark run {run_id} in store {runner.store.url}")
    return run.view()


def benchmark_runs(runner: Runner) -> list[BenchmarkRunView]:
    """This workspace's benchmark runs, newest first."""
    ids = [
        e.originator_id
        for e in runner.store.scan(BenchmarkRunStarted.TOPIC)
        if runner.index.belongs(e.workspace, str(runner.home))
    ]
    return sorted((get_benchmark_run(runner, i) for i in ids), key=lambda v: v.started_at, reverse=True)


@dataclass
class BenchmarkRunAudit:
    run_id: str
    events: int
    damage: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage


def verify_benchmark_run(runner: Runner, run_id: str | UUID) -> BenchmarkRunAudit:
    """Recompute the run's digest chain from the stored rows (the check sessions and loops get)."""
    rid = _parse_run_id(run_id)
    count, damage, _ = verify_chain(runner.store, rid)
    if count == 0:
        raise BenchmarkRunNotFound(f"no benchmark run {run_id} in store {runner.store.url}")
    return BenchmarkRunAudit(str(rid), count, damage)
