"""The `Engine`: the Python API of distill_es (`from distill_es import Engine`).

A facade: sessions are run by the session runner (`app.session_runner`), read through the checked
log (`app.session_queries`); loops, flags and workers are `app.loop`'s, `app.daemon`'s and
`app.worker`'s; the default adapters are wired by `compose`. See docs/engine.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_es.app.session_queries import SessionQueries
from distill_es.compose import DefaultAdapters, open_runner, worker_opener

# Loops, daemon, workers and benchmark runs are imported by the methods that use them, and the
# session runner by compose when it opens one: a read command imports none of them (docs/performance.md).
if TYPE_CHECKING:
    from distill_es.adapters.retry import WaitObserver
    from distill_es.app.audit import EditLineage, RegateReport
    from distill_es.app.progress import ScoringObserver, StepObserver
    from distill_es.app.session_runner import Runner
    from distill_es.config.settings import Settings
    from distill_es.domain.anchors import Anchor
    from distill_es.domain.errors import DamagedSession
    from distill_es.domain.vocabulary import AutonomyMode, LearningSession, SessionStatus, Trigger
    from distill_es.ports import Judge, Scorer, StudentRunner, TraceSource, Workspace
    from distill_es.store.app import EventStore
    from distill_es.store.projections import SessionIndex
    from distill_es.store.verify import SessionReport


class Engine:
    """Learning sessions on one workspace, recorded in one store. Open it with `Engine.open`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.queries = SessionQueries(runner.home, runner.store, runner.index, runner.log)

    # ------------------------------------------------------------------------------------------
    # construction
    @classmethod
    def open(
        cls,
        home: str | Path,
        *,
        teacher: Any = None,
        student: StudentRunner | None = None,
        judge: Judge | None = None,
        settings: Settings | Mapping[str, Any] | None = None,
        store_url: str | None = None,
        scorer: Scorer | None = None,
        traces: TraceSource | None = None,
        workspace: Workspace | None = None,
        on_step: StepObserver | None = None,
        on_scoring: ScoringObserver | None = None,
        on_wait: WaitObserver | None = None,
        create_tables: bool = True,
        create: bool = False,
        read_only: bool = False,
        own: bool | None = None,
    ) -> Engine:
        """Open the engine on a workspace. `settings` is a `Settings` or section overrides
        (`{"session": {"autonomy_mode": "auto"}}`) applied over `<home>/distill_es.toml`.

        `home` is `~`-expanded; a path that is not a workspace is refused (NotAWorkspace) unless
        `create`, which scaffolds a default one there (as `distill-es init`). `create_tables=False`
        creates nothing at all (commands that only read): a missing store is a StoreMissing, except
        the workspace's own default store, which then reads as empty. A workspace belongs to the
        first store that writes to it: another one is refused (WorkspaceOwnedElsewhere) unless
        `own=False` (what `cancel` uses to end a session stranded in another store). `read_only` (implies
        `create_tables=False`) opens a SQLite event store with mode=ro: no write can reach it (the
        web audit view opens it so)."""

        runner = open_runner(
            home, settings=settings, store_url=store_url, create_tables=create_tables, create=create,
            on_step=on_step, on_scoring=on_scoring, teacher=teacher, student=student, judge=judge,
            scorer=scorer, traces=traces, workspace=workspace, on_wait=on_wait, read_only=read_only, own=own,
        )  # fmt: skip
        return cls(runner)

    # ------------------------------------------------------------------------------------------
    # what it runs on
    @property
    def home(self) -> Path:
        return self.runner.home

    @property
    def settings(self) -> Settings:
        return self.runner.settings

    @property
    def store(self) -> EventStore:
        return self.runner.store

    @property
    def index(self) -> SessionIndex:
        return self.runner.index

    @property
    def state_dir(self) -> Path:
        return self.runner.state_dir

    @property
    def _adapters(self) -> DefaultAdapters:
        adapters = self.runner.adapters
        assert isinstance(adapters, DefaultAdapters)  # Engine.open wires them
        return adapters

    @property
    def teacher(self) -> Any:
        return self._adapters.teacher

    @property
    def student(self) -> StudentRunner:
        return self._adapters.student

    @property
    def judge(self) -> Judge:
        return self._adapters.judge

    @property
    def scorer(self) -> Scorer:
        return self._adapters.scorer

    @property
    def traces(self) -> TraceSource:
        return self._adapters.traces

    @property
    def workspace(self) -> Workspace:
        return self._adapters.workspace

    @property
    def on_step(self) -> StepObserver | None:
        return self.runner.on_step

    @on_step.setter
    def on_step(self, observer: StepObserver | None) -> None:
        self.runner.on_step = observer

    @property
    def on_scoring(self) -> ScoringObserver | None:
        return self.runner.on_scoring

    @on_scoring.setter
    def on_scoring(self, observer: ScoringObserver | None) -> None:
        self.runner.on_scoring = observer

    @property
    def on_wait(self) -> WaitObserver | None:
        """Told before every retry wait of a teacher, judge or student call."""
        return self._adapters.on_wait

    @on_wait.setter
    def on_wait(self, observer: WaitObserver | None) -> None:
        self._adapters.on_wait = observer

    def close(self) -> None:
        self.runner.close()

    # ------------------------------------------------------------------------------------------
    # commands
    def start(
        self,
        trigger: Trigger,
        *,
        autonomy: AutonomyMode | str | None = None,
        parent_session_id: str | None = None,
    ) -> str:
        """Record a new session (nothing else happens until `run`): `autonomy` overrides the
        workspace's autonomy mode for this session; `parent_session_id` names the session it continues."""
        return self.runner.start(trigger, autonomy=autonomy, parent_session_id=parent_session_id)

    def run(self, session_id: str) -> LearningSession:
        """Drive the session until it rests (completed, awaiting_review, failed, rolled_back)."""
        return self.runner.run(session_id)

    def run_session(
        self,
        trigger: Trigger,
        *,
        autonomy: AutonomyMode | str | None = None,
        parent_session_id: str | None = None,
    ) -> LearningSession:
        """`start` then `run`: one session from trigger to rest."""
        return self.run(self.start(trigger, autonomy=autonomy, parent_session_id=parent_session_id))

    def approve(self, session_id: str, edit_id: str, *, reviewer: str, note: str = "") -> LearningSession:
        """Approve a pending edit: it is applied and gated now, and the session moves on."""
        return self.runner.approve(session_id, edit_id, reviewer=reviewer, note=note)

    def reject(self, session_id: str, edit_id: str, *, reviewer: str, reason: str) -> LearningSession:
        return self.runner.reject(session_id, edit_id, reviewer=reviewer, reason=reason)

    def rollback(self, session_id: str, *, requested_by: str = "user") -> LearningSession:
        """Revert every applied edit of the session, newest first; the session ends ROLLED_BACK."""
        return self.runner.rollback(session_id, requested_by=requested_by)

    def cancel(self, session_id: str, *, by: str, reason: str) -> LearningSession:
        """End a session that cannot go on: it rests `failed` (reason_code `cancelled`). See
        `Runner.cancel` and docs/engine.md "Cancel"."""
        return self.runner.cancel(session_id, by=by, reason=reason)

    # ------------------------------------------------------------------------------------------
    # queries
    def get(self, session_id: str, version: int | None = None) -> LearningSession:
        return self.queries.get(session_id, version)

    def get_at(self, session_id: str, at: Any) -> LearningSession:
        return self.queries.get_at(session_id, at)

    def history(self, session_id: str) -> list[dict[str, Any]]:
        return self.queries.history(session_id)

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]:
        return self.queries.cost_ledger(session_id)

    def sessions(self, status: SessionStatus | str | None = None, **filters: Any) -> list[LearningSession]:
        """Sessions of this workspace, newest first (filters: trigger, since, until, limit, offset); damaged
        sessions are left out (see `sessions_and_damage`)."""
        return self.queries.sessions_and_damage(status, **filters)[0]

    def sessions_and_damage(
        self, status: SessionStatus | str | None = None, **filters: Any
    ) -> tuple[list[LearningSession], list[DamagedSession]]:
        """(the sound sessions, the damaged ones) of this workspace, newest first: one damaged
        session never hides the others."""
        return self.queries.sessions_and_damage(status, **filters)

    def session_ids(self, prefix: str = "") -> list[str]:
        """Every session id of this workspace the index knows (those starting with `prefix`), damaged
        ones included, newest first."""
        return self.queries.session_ids(prefix)

    def session_count(self, status: SessionStatus | str | None = None, **filters: Any) -> int:
        """How many sessions `sessions(status, **filters)` lists without a limit, damaged ones included."""
        return self.queries.count(status, **filters)

    def pending_reviews(self) -> list[dict[str, Any]]:
        """Edits waiting for a reviewer, oldest first; never those of a damaged session."""
        return self.queries.pending_reviews()

    def verify(self, session_id: str | None = None) -> list[SessionReport]:
        """Audit the log: chains, replays, the index, and the log heads anchored in this workspace's
        git history (which do not depend on the index: they hold with the views deleted)."""
        return self.queries.verify(session_id)

    # ------------------------------------------------------------------------------------------
    # audit (docs/audit.md): read only, no model call, nothing recorded
    def regate(
        self,
        sid: str | None = None,
        max_regression: float | None = None,
        min_improvement: float | None = None,
    ) -> RegateReport:
        """What-if: every recorded gate (of `sid`, else of every session of this workspace) decided
        again under another policy, from the recorded scores. A value left None is each session's own
        recorded one. Zero model calls; records nothing; writes no file."""
        from distill_es.app.audit import regate as audit_regate

        if sid is not None:  # one session: a damaged one is refused (DamagedSession), as `show` refuses it
            audit_regate.check_policy(max_regression, min_improvement)
            events = self.queries.log.events(str(sid))
            return audit_regate.regate_sessions(
                lambda _: events, [str(sid)], max_regression=max_regression,
                min_improvement=min_improvement, only_with_gates=False,
            )  # fmt: skip
        return audit_regate.regate_sessions(
            self.queries.log.events, self.queries.session_ids(), max_regression=max_regression,
            min_improvement=min_improvement,
        )  # fmt: skip

    def explain(self, sid: str, edit_id: str) -> EditLineage:
        """The causal chain of one edit, each link with the event versions it comes from (`EditNotFound`
        for an edit the session does not have). Reads the log, and git and the traces read only."""
        from distill_es.app.audit import explain as audit_explain
        from distill_es.app.audit.git_facts import commit_facts

        return audit_explain.explain_events(
            self.queries.log.events(str(sid)), str(edit_id),
            commit_facts=lambda sha: commit_facts(self.home, sha),
            trace_lookup=lambda trace_id: self._adapters.traces.get(trace_id),  # opened only if needed
        )  # fmt: skip

    def _anchors(self) -> dict[str, list[Anchor]]:
        """The log heads anchored in the workspace's git history, per session."""
        return self.runner.log.anchors()

    # ------------------------------------------------------------------------------------------
    # loops, flags, workers
    def loop(self, trigger: Trigger | None = None, **options: Any) -> Any:
        """Sessions back to back, each chained to the previous (paper Algorithm 1); resumable.
        Options: stagnation_k=5, stagnation_eps=0.001, max_total_cost_usd=50.0, loop_id=None,
        autonomy=None, on_progress=None. See docs/loop-and-triggers.md."""
        from distill_es.app import loop

        return loop.run_loop(self, trigger, **options)

    def loops(self) -> list[Any]:
        from distill_es.app import loop

        return loop.loops(self)

    def get_loop(self, loop_id: str) -> Any:
        from distill_es.app import loop

        return loop.get_loop(self, loop_id)

    # ------------------------------------------------------------------------------------------
    # the benchmark outside sessions
    def benchmark(self, ref: str | None = None, *, min_score: float | None = None, **options: Any) -> Any:
        """Score the working tree (or a git ref's tree) on the benchmark, per cluster, reusing the
        tree-sha score cache; recorded as a benchmark run. Returns its `BenchmarkRunView` (`passed` says
        whether the overall score reached `min_score`). Options: on_scored=(done, total) callback.
        See docs/benchmark.md."""
        from distill_es.app import benchmark_run

        return benchmark_run.run_benchmark(self.runner, ref=ref, min_score=min_score, **options)

    def benchmark_compare(self, before: str, after: str, **options: Any) -> Any:
        """Score two refs ("WORKTREE" for the working tree) with the same groups; per-group before,
        after and delta (`BenchmarkComparison`)."""
        from distill_es.app import benchmark_run

        return benchmark_run.compare_refs(self.runner, before, after, **options)

    def benchmark_runs(self) -> list[Any]:
        from distill_es.app import benchmark_run

        return benchmark_run.benchmark_runs(self.runner)

    def get_benchmark_run(self, run_id: str) -> Any:
        from distill_es.app import benchmark_run

        return benchmark_run.get_benchmark_run(self.runner, run_id)

    def verify_benchmark_run(self, run_id: str) -> Any:
        """Recompute a benchmark run's digest chain (`.ok`, `.damage`)."""
        from distill_es.app import benchmark_run

        return benchmark_run.verify_benchmark_run(self.runner, run_id)

    def flag(self, trace_id: str, *, note: str = "", flagged_by: str = "user") -> Any:
        """Flag a trace for the daemon's user_flag trigger (recorded as an event)."""
        from distill_es.app import daemon

        return daemon.flag_trace(self, trace_id, note=note, flagged_by=flagged_by)

    def work(self, **options: Any) -> Any:
        """Run as a worker on this engine's store: claim runnable sessions (of any workspace) until
        idle. Options as `distill_es.app.worker.work`; sessions are opened with the default adapters."""
        options.setdefault("open_runner", worker_opener)
        from distill_es.app import worker

        return worker.work(self.store.url, self.state_dir, **options)
