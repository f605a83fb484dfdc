"""The resumable engine: load the session, ask `next_step`, perform that one step, record, repeat.

There is no separate resume path: a fresh process after a crash runs exactly this loop, and the log
tells it what is already done. Each step performs at most one outside effect and records its result
before the next step is chosen.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_es.adapters.benchmark import load_benchmark
from distill_es.adapters.diagnose_toolbox import Toolbox
from distill_es.adapters.judge import MatchJudge
from distill_es.adapters.pricing import cost_of
from distill_es.adapters.retry import (
    MalformedResponse,
    RetryPolicy,
    Wait,
    WaitObserver,
    call_with_retries,
    safe_url,
)
from distill_es.adapters.scorer import StudentScorer
from distill_es.adapters.teacher import default_teacher, request_digest, response_to_dict, usage_of
from distill_es.adapters.traces import open_trace_source
from distill_es.config.settings import Settings
from distill_es.domain import teacher_reply
from distill_es.domain.anchors import Anchor, anchor_problem, anchor_value, anchors_by_session
from distill_es.domain.errors import (
    CassetteMiss,
    DamagedSession,
    DistillError,
    EndpointUnavailable,
    InvalidEdit,
    InvalidTeacherOutput,
    NotAWorkspace,
    OpNotAvailable,
    RequestRefused,
    SessionInterrupted,
    WorkspaceConflict,
    WorkspaceError,
)
from distill_es.domain.layout import BENCHMARK_FILE, DESCRIPTIONS_FILE, STATE_DIR, prompt_path
from distill_es.domain.session import lifecycle
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.next_step import next_step
from distill_es.domain.vocabulary import AutonomyMode, LearningSession, SessionStatus, Trigger
from distill_es.phases.diagnose import diagnose_request
from distill_es.phases.diagnosis import parse_diagnosis
from distill_es.phases.gate import choose_gate_tasks, evaluate_gate, snapshot, stable_seed
from distill_es.phases.plan import freeze_plan
from distill_es.phases.plan_request import build_plan_request
from distill_es.phases.teacher_protocol import SelfRun
from distill_es.ports import (
    BenchmarkTask,
    Judge,
    Scorer,
    StudentRunner,
    TaskScore,
    TraceSource,
    Workspace,
    accepts_keyword,
)
from distill_es.store.app import EventStore, open_store
from distill_es.store.locks import exclusive
from distill_es.store.projections import SessionIndex
from distill_es.store.timeline import cost_ledger, timeline
from distill_es.store.urls import default_store_url
from distill_es.store.verify import SessionReport, verify_session, verify_store
from distill_es.workspace.files import read_inside
from distill_es.workspace.toml_config import read_config, read_workspace_toml

SELF_RUN_MAX_TOKENS = 2048
StepObserver = Callable[[LearningSession, steps.Step], None]


@dataclass(frozen=True)
class ScoringProgress:
    """One more task scored on a tree: `scored` of the `to_score` tasks sent to the student so far;
    `reused` tasks of the `total` gate tasks already had a recorded score on this tree."""

    session_id: str
    tree_sha: str
    scored: int
    to_score: int
    total: int

    @property
    def reused(self) -> int:
        return self.total - self.to_score


ScoringObserver = Callable[[ScoringProgress], None]


class _LedgerJudge:
    """Wraps an LLM judge (one with `request` and `score_with_message`, like `TeacherJudge`) so that
    every teacher call it makes is handed to the engine for the cost ledger after the step."""

    def __init__(
        self, inner: Any, policy: RetryPolicy | None = None, on_wait: WaitObserver | None = None
    ) -> None:
        self.inner = inner
        self.policy, self.on_wait = policy or RetryPolicy(), on_wait
        self._calls: list[tuple[str, dict[str, Any], Any]] = []
        self._lock = threading.Lock()
        self._down: EndpointUnavailable | None = None  # once the judge is down, the batch stops

    def score(self, task: BenchmarkTask, output: str) -> Any:
        if self._down is not None:
            raise self._down
        try:
            verdict, message = call_with_retries(
                lambda: self.inner.score_with_message(task, output),
                role="judge",
                endpoint=teacher_endpoint(getattr(self.inner, "teacher", None)),
                policy=self.policy,
                on_wait=self.on_wait,
                should_stop=lambda: self._down is not None,
            )
        except EndpointUnavailable as exc:
            self._down = exc
            raise
        usage_of(message)  # a reply whose token counts are invalid is a judge error, never a cost
        with self._lock:
            self._calls.append((task.task_id, self.inner.request(task, output), message))
        return verdict

    def drain(self) -> list[tuple[str, dict[str, Any], Any]]:
        """The calls made since the last drain, in a stable order (scoring runs concurrently)."""
        with self._lock:
            calls, self._calls = self._calls, []
            self._down = None  # the next step tries the judge again
        return sorted(calls, key=lambda call: (call[0], request_digest(call[1])))


def _check_against_index(seen: dict[str, Any] | None, sid: str, version: int, digest: str | None) -> None:
    """`DamagedSession` when the log ends before, or differs at, the last event the index saw (`seen`
    was read before the log: another writer can only add to it meanwhile)."""
    if seen is None or seen.get("status") == "damaged":
        return
    if seen["version"] > version:
        detail = f"the index saw {seen['version']} events, the log ends at version {version}"
        raise DamagedSession(sid, detail, kind="truncated")
    if seen["version"] == version and seen.get("last_digest") not in (None, digest):
        detail = f"event {version}'s digest differs from the one the index recorded"
        raise DamagedSession(sid, detail, kind="edited")


def teacher_endpoint(teacher: Any) -> str:
    """Where a teacher client sends its requests, for messages (never a key)."""
    for candidate in (teacher, getattr(teacher, "inner", None), getattr(teacher, "_client", None)):
        url = getattr(candidate, "base_url", None)
        if url:
            return safe_url(str(url))
    return safe_url(os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")


def _checked_message(message: Any) -> Any:
    """A teacher reply that is a Message (or its dict) with a content list; else `MalformedResponse`
    (a proxy's HTML page, a truncated body), which is retried and then interrupts."""
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
    if not isinstance(content, list):
        raise MalformedResponse(f"the reply is not a Message with content blocks: {str(message)[:120]!r}")
    return message


@dataclass
class _Ports:
    """Adapters, built on first use so that a read-only command never needs a teacher or student."""

    teacher: Any = None
    student: StudentRunner | None = None
    judge: Judge | None = None
    scorer: Scorer | None = None
    traces: TraceSource | None = None
    workspace: Workspace | None = None


def _workspace_home(home: str | Path, *, create: bool) -> Path:
    """`home` expanded and resolved; a workspace there, or scaffolded there when `create`."""
    from distill_es.workspace.scaffold import create_workspace, is_workspace

    path = Path(home).expanduser().resolve()
    if is_workspace(path):
        return path
    if not create:
        raise NotAWorkspace(
            f"{path} is not a distill_es workspace (it needs config.toml and distill_es.toml); "
            f"create one with `distill-es init {path}`, or open it with create=True"
        )
    path.mkdir(parents=True, exist_ok=True)
    create_workspace(path)
    return path


class Engine:
    def __init__(
        self,
        home: Path,
        *,
        settings: Settings,
        store: EventStore,
        index: SessionIndex,
        ports: _Ports,
        on_step: StepObserver | None = None,
        on_scoring: ScoringObserver | None = None,
        on_wait: WaitObserver | None = None,
    ) -> None:
        self.home = home
        self.settings = settings
        self.store = store
        self.index = index
        self._ports = ports
        self.on_step = on_step
        self.on_scoring = on_scoring
        self.on_wait = on_wait  # told before every retry wait of a teacher, judge or student call

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
    ) -> Engine:
        """Open the engine on a workspace. `settings` is a `Settings` or section overrides
        (`{"session": {"autonomy_mode": "auto"}}`) applied over `<home>/distill_es.toml`.

        `home` is `~`-expanded; a path that is not a workspace is refused (NotAWorkspace) unless
        `create`, which scaffolds a default one there (as `distill-es init`). `create_tables=False`
        creates nothing at all (commands that only read): a missing store is a StoreMissing, except
        the workspace's own default store, which then reads as empty."""
        home = _workspace_home(home, create=create)
        if isinstance(settings, Settings):
            resolved = settings
        else:
            resolved = Settings.load(home, **dict(settings or {}))
        url = store_url or os.environ.get("DISTILL_ES_STORE") or default_store_url(home)
        store = open_store(url, create_tables=create_tables, missing_is_empty=url == default_store_url(home))
        state = home / STATE_DIR
        suffix = "" if url == default_store_url(home) else "-" + hashlib.sha256(url.encode()).hexdigest()[:12]
        try:
            index = SessionIndex(state / f"views{suffix}.sqlite", store, create=create_tables)
        except BaseException:
            store.close()
            raise
        ports = _Ports(teacher, student, judge, scorer, traces, workspace)
        return cls(
            home,
            settings=resolved,
            store=store,
            index=index,
            ports=ports,
            on_step=on_step,
            on_scoring=on_scoring,
            on_wait=on_wait,
        )

    @property
    def state_dir(self) -> Path:
        return self.home / STATE_DIR

    @property
    def teacher(self) -> Any:
        if self._ports.teacher is None:
            self._ports.teacher = default_teacher()
        return self._ports.teacher

    @property
    def student(self) -> StudentRunner:
        if self._ports.student is None:
            from distill_es.adapters.student import OpenAIStudent  # the openai SDK: only when needed

            self._ports.student = OpenAIStudent(
                self.home, self.settings.student, network=self.settings.network, on_wait=self._waiting
            )
        return self._ports.student

    @property
    def judge(self) -> Judge:
        if self._ports.judge is None:
            self._ports.judge = MatchJudge()
        elif hasattr(self._ports.judge, "score_with_message") and not isinstance(
            self._ports.judge, _LedgerJudge
        ):
            self._ports.judge = _LedgerJudge(self._ports.judge, self._retry_policy(), self._waiting)
        return self._ports.judge

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_settings(self.settings.network)

    def _waiting(self, wait: Wait) -> None:
        if self.on_wait is not None:
            self.on_wait(wait)

    def _record_judge_calls(self, session: Session) -> None:
        judge = self._ports.judge
        if not isinstance(judge, _LedgerJudge):
            return
        # Keyed by the session version the step started from: a redone step reuses the same keys.
        for i, (_, params, message) in enumerate(judge.drain()):
            usage = usage_of(message)
            model = str(getattr(message, "model", None) or params["model"])
            session.record_teacher_call(
                call_key=f"judge/{session.version}/{i}",
                purpose="judge",
                model=model,
                request_digest=request_digest(params),
                response=response_to_dict(message),
                usage=usage,
                cost_usd=cost_of(model, usage),
            )

    @property
    def scorer(self) -> Scorer:
        if self._ports.scorer is None:
            self._ports.scorer = StudentScorer(self.student, self.judge)
        return self._ports.scorer

    @property
    def traces(self) -> TraceSource:
        if self._ports.traces is None:
            self._ports.traces = open_trace_source(self.home)
        return self._ports.traces

    @property
    def workspace(self) -> Workspace:
        if self._ports.workspace is None:
            from distill_es.workspace.git_workspace import GitWorkspace

            workspace = GitWorkspace(self.home)
            workspace.init()
            self._ports.workspace = workspace
        return self._ports.workspace

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------------------------------
    # commands
    def start(
        self,
        trigger: Trigger,
        *,
        autonomy: AutonomyMode | str | None = None,
        parent_session_id: str | None = None,
    ) -> str:
        """Record a new session (nothing else happens until `run`)."""
        settings = self.settings
        if autonomy is not None:
            settings = settings.with_overrides(session={"autonomy_mode": AutonomyMode(autonomy).value})
        # Every precondition before anything is recorded: a refused start leaves no session behind.
        with exclusive(self.store.url, self.state_dir, *self._workspace_lock()):
            self._check_inputs(settings)
            self._require_clean_workspace("before starting a session")
            session = Session.start(
                trigger=trigger,
                autonomy_mode=settings.session.autonomy_mode,
                settings=settings.model_dump(mode="json"),
                workspace=str(self.home),
                parent_session_id=parent_session_id,
            )
            self.store.save(session)
        return str(session.id)

    def run(self, session_id: str) -> LearningSession:
        """Drive the session until it rests (completed, awaiting_review, failed, rolled_back)."""
        with self._running(session_id):
            session = self._load(session_id)
            while True:
                step = next_step(session)
                if isinstance(step, steps.Rest):
                    self.index.catch_up()
                    return session.view()
                if self.on_step is not None:
                    self.on_step(session.view(), step)
                try:
                    self._perform(session, step)
                except SessionInterrupted as exc:
                    self._record_interruption(session_id, step, exc)
                    raise
                self.store.save(session)

    def run_session(self, trigger: Trigger, **start_options: Any) -> LearningSession:
        return self.run(self.start(trigger, **start_options))

    def approve(self, session_id: str, edit_id: str, *, reviewer: str, note: str = "") -> LearningSession:
        """Approve a pending edit: it is applied and gated now, and the session moves on."""
        with self._running(session_id):
            session = self._load(session_id)
            session.approve_edit(edit_id=edit_id, reviewer=reviewer, note=note)
            self._require_clean_workspace(f"before session {session_id} can apply edit {edit_id}")
            self._require_readable_config()  # an approval must not be spent on a file that cannot be edited
            self.store.save(session)
        return self.run(session_id)

    def reject(self, session_id: str, edit_id: str, *, reviewer: str, reason: str) -> LearningSession:
        with self._running(session_id):
            session = self._load(session_id)
            session.reject_edit(edit_id=edit_id, reviewer=reviewer, reason=reason)
            self._require_clean_workspace(f"before session {session_id} can go on")
            self.store.save(session)
        return self.run(session_id)

    def rollback(self, session_id: str, *, requested_by: str = "user") -> LearningSession:
        """Revert every applied edit of the session, newest first; the session ends ROLLED_BACK."""
        with self._running(session_id):
            session = self._load(session_id)
            session.request_rollback(requested_by=requested_by)
            self._require_clean_workspace(f"before session {session_id} can be rolled back")
            self.store.save(session)
        return self.run(session_id)

    def cancel(self, session_id: str, *, by: str, reason: str) -> LearningSession:
        """End a session that cannot go on: it rests `failed` (reason_code `cancelled`), who and why
        recorded. Refused while another process runs it. Edits it had committed but not yet gated (or
        gated as rejected but not reverted yet) are reverted first, and a half-applied edit's files are
        restored, so a cancelled session leaves the workspace as its accepted edits made it; those stay,
        and `rollback` reverts them. See docs/engine.md "Cancel"."""
        with exclusive(self.store.url, self.state_dir, *self._session_lock(session_id)):
            session = self._load(session_id)  # a damaged log gets nothing appended, not even this
            lifecycle.decide(session, "cancel", session_id=session_id)  # illegal from a resting state
            unsettled = self._unsettled_edits(session)
            if unsettled:
                with exclusive(self.store.url, self.state_dir, *self._workspace_lock()):
                    for edit_id in unsettled:
                        self._settle_for_cancel(session, edit_id, by)
            session.cancel(cancelled_by=by, reason=reason)
            self.store.save(session)
        self.index.catch_up()
        return session.view()

    # ------------------------------------------------------------------------------------------
    # queries
    def get(self, session_id: str, version: int | None = None) -> LearningSession:
        session = self._load(session_id)  # the whole session must be sound before any version is shown
        if version is None:
            return session.view()
        return self.store.load(session_id, version=version).view()

    def get_at(self, session_id: str, at: Any) -> LearningSession:
        self._load(session_id)
        return self.store.load_at(session_id, at).view()

    def history(self, session_id: str) -> list[dict[str, Any]]:
        return timeline(self._checked_events(session_id))

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]:
        return cost_ledger(self._checked_events(session_id))

    def sessions(self, status: SessionStatus | str | None = None, **filters: Any) -> list[LearningSession]:
        """Sessions of this workspace, newest first (filters: trigger, since, until, limit); damaged
        sessions are left out (see `sessions_and_damage`)."""
        return self.sessions_and_damage(status, **filters)[0]

    def sessions_and_damage(
        self, status: SessionStatus | str | None = None, **filters: Any
    ) -> tuple[list[LearningSession], list[DamagedSession]]:
        """(the sound sessions, the damaged ones) of this workspace, newest first: one damaged
        session never hides the others."""
        rows = self.index.rows(
            status=SessionStatus(status).value if status else None, workspace=str(self.home), **filters
        )
        anchors = self._anchors()
        views: list[LearningSession] = []
        damaged: list[DamagedSession] = []
        for row in rows:
            try:
                if row.get("damage"):
                    raise DamagedSession(row["session_id"], row["damage"])
                views.append(self._load(row["session_id"], anchors).view())
            except DamagedSession as exc:
                damaged.append(exc)
        return views, damaged

    def session_ids(self) -> list[str]:
        """Every session id of this workspace the index knows, damaged ones included, newest first."""
        return [row["session_id"] for row in self.index.rows(workspace=str(self.home))]

    def loop(self, trigger: Trigger | None = None, **options: Any) -> Any:
        """Sessions back to back, each chained to the previous (paper Algorithm 1); resumable.
        Options: stagnation_k=5, stagnation_eps=0.001, max_total_cost_usd=50.0, loop_id=None,
        autonomy=None, on_progress=None. See docs/loop-and-triggers.md."""
        from distill_es.app.loop import run_loop

        return run_loop(self, trigger, **options)

    def loops(self) -> list[Any]:
        from distill_es.app.loop import loops

        return loops(self)

    def get_loop(self, loop_id: str) -> Any:
        from distill_es.app.loop import get_loop

        return get_loop(self, loop_id)

    def flag(self, trace_id: str, *, note: str = "", flagged_by: str = "user") -> Any:
        """Flag a trace for the daemon's user_flag trigger (recorded as an event)."""
        from distill_es.app.daemon import flag_trace

        return flag_trace(self, trace_id, note=note, flagged_by=flagged_by)

    def work(self, **options: Any) -> Any:
        """Run as a worker on this engine's store: claim runnable sessions (of any workspace) until
        idle. Options as `distill_es.app.worker.work`."""
        from distill_es.app.worker import work

        return work(self.store.url, self.state_dir, **options)

    def pending_reviews(self) -> list[dict[str, Any]]:
        """Edits waiting for a reviewer, oldest first; never those of a damaged session (approving
        one would be refused: see `sessions_and_damage` to name them)."""
        items = self.index.review_queue(workspace=str(self.home))
        anchors = self._anchors()
        sound: dict[str, bool] = {}
        for sid in {item["session_id"] for item in items}:
            try:
                self._load(sid, anchors)
                sound[sid] = True
            except DamagedSession:
                sound[sid] = False
        return [item for item in items if sound[item["session_id"]]]

    def verify(self, session_id: str | None = None) -> list[SessionReport]:
        """Audit the log: chains, replays, the index, and the log heads anchored in this workspace's
        git history (which do not depend on the index: they hold with the views deleted)."""
        self.index.catch_up()
        anchors = self._anchors()
        if session_id is not None:
            sid = str(session_id)
            return [verify_session(self.store, self.index, sid, anchors=anchors.get(sid, []))]
        return verify_store(self.store, self.index, anchors=anchors)

    # ------------------------------------------------------------------------------------------
    # loading, checked
    def _load(self, session_id: str, anchors: dict[str, list[Anchor]] | None = None) -> Session:
        """The session, refused (`DamagedSession`) when its events do not chain (checked by the
        store on the way in), the log disagrees with the newest head anchored in git, or it ends
        before the last event the index saw (read before loading: another writer only adds)."""
        seen = self.index.row(str(session_id))
        session = self.store.load(session_id)
        _check_against_index(seen, str(session.id), session.version, session.last_digest)
        found = (self._anchors() if anchors is None else anchors).get(str(session.id), [])
        if found:
            newest = found[0]
            at = session.last_digest if newest.version == session.version else None
            if at is None and newest.version < session.version:
                at = self.store.head_digest(session.id, newest.version)
            problem = anchor_problem(newest, session.version, at)
            if problem is not None:
                raise DamagedSession(str(session.id), problem[1], kind=problem[0])
        return session

    def _checked_events(self, session_id: str) -> list[Any]:
        """The session's events, each checked to chain, and checked against every anchor in git."""
        seen = self.index.row(str(session_id))
        events = self.store.domain_events(session_id, checked=True)
        sid = str(events[0].originator_id)
        _check_against_index(seen, sid, len(events), events[-1].digest)
        for anchor in self._anchors().get(sid, []):
            at = events[anchor.version - 1].digest if anchor.version <= len(events) else None
            problem = anchor_problem(anchor, len(events), at)
            if problem is not None:
                raise DamagedSession(sid, problem[1], kind=problem[0])
        return events

    def _anchors(self) -> dict[str, list[Anchor]]:
        """The log heads anchored in this workspace's git history, per session (read, never created:
        a read command must not make a repository)."""
        workspace = self._ports.workspace
        if workspace is None and (self.home / ".git").exists():
            from distill_es.workspace.git_workspace import GitWorkspace

            workspace = GitWorkspace(self.home)
        trailers = getattr(workspace, "commit_trailers", None)
        return anchors_by_session(trailers()) if trailers is not None else {}

    def _log_head(self, session: Session, method: Any) -> dict[str, str]:
        """`log_head=` for a workspace commit, when the workspace takes it: the session's last saved
        event (a step starts with nothing pending; if something were, the saved head is unknown)."""
        if session.pending_events or not accepts_keyword(method, "log_head"):
            return {}
        return {"log_head": anchor_value(session.version, session.last_digest)}

    # ------------------------------------------------------------------------------------------
    # the steps
    @contextmanager
    def _running(self, session_id: str) -> Iterator[None]:
        """One process per session, and one running session per workspace (their edits and gate
        readings would interleave otherwise)."""
        locks = (*self._session_lock(session_id), self._workspace_lock())
        with exclusive(self.store.url, self.state_dir, *locks):
            yield

    def _record_interruption(self, session_id: str, step: steps.Step, exc: SessionInterrupted) -> None:
        """Record why `step` stopped, on the session as stored: whatever the step had recorded in
        memory is dropped (it runs again from the start on resume). The state does not move."""
        if isinstance(self._ports.judge, _LedgerJudge):
            self._ports.judge.drain()  # its calls were not recorded; the next step tries it afresh
        session = self.store.load(session_id)
        if "record_interruption" not in session.legal_commands():
            return
        outside = exc if isinstance(exc, EndpointUnavailable) else None
        session.record_interruption(
            step=step.kind,
            role=outside.role if outside else "",
            endpoint=outside.endpoint if outside else "",
            error_class=outside.error_class if outside else type(exc).__name__,
            error=outside.error if outside else str(exc),
            attempts=outside.attempts if outside else 1,
        )
        self.store.save(session)

    @staticmethod
    def _session_lock(session_id: str) -> tuple[str, str]:
        return f"session:{session_id}", f"session {session_id}"

    def _workspace_lock(self) -> tuple[str, str]:
        return f"workspace:{self.home}", f"the workspace {self.home}"

    # ------------------------------------------------------------------------------------------
    # preconditions: checked before a command records anything
    def _require_clean_workspace(self, when: str) -> None:
        dirty = self.workspace.dirty_paths()
        if dirty:
            raise WorkspaceConflict(
                f"the workspace {self.home} has uncommitted changes in the files it manages: "
                f"{', '.join(dirty)}; "
                f"commit or discard them {when} (nothing was recorded)"
            )

    def _require_readable_config(self) -> None:
        """The TOML files edits change parse (`WorkspaceError` naming the file and line)."""
        read_config(self.home)
        read_workspace_toml(self.home, DESCRIPTIONS_FILE)

    def _check_inputs(self, settings: Settings) -> None:
        """The files a session reads parse, and a session that would go on to pay the teacher has a
        benchmark to measure its edits with. Each error names the file (and line). (With too few
        traces the session is recorded and rests failed as a cold start: it never calls the teacher.)"""
        self._require_readable_config()
        traces = self.traces.count()  # parses every traces.jsonl line / queries traces.db
        benchmark = load_benchmark(self.home)
        if not benchmark and traces >= settings.session.min_traces:
            raise WorkspaceError(f"{self._no_benchmark_error()}; add tasks before starting a session")

    def _no_benchmark_error(self) -> str:
        return (
            f"{self.home / BENCHMARK_FILE} has no tasks (one JSON object a line): "
            "the gate could not measure any edit"
        )

    # ------------------------------------------------------------------------------------------
    # cancel
    @staticmethod
    def _unsettled_edits(session: Session) -> list[str]:
        """Edits whose effect on the workspace is not final: committed (or being applied) without a
        gate verdict, or rejected by the gate and not reverted yet."""
        unsettled = []
        for edit_id, p in session.edits.items():
            in_flight = p.outcome is None and p.pre_sha is not None and p.gate is None
            unreverted = p.outcome == "rejected_by_gate" and p.gate is not None and p.revert_sha is None
            if in_flight or unreverted:
                unsettled.append(edit_id)
        return unsettled

    def _settle_for_cancel(self, session: Session, edit_id: str, by: str) -> None:
        progress = session.edits[edit_id]
        workspace = self.workspace
        if progress.commit_sha is None:
            found = workspace.find_edit_commit(str(session.id), edit_id)
            if found is None:  # never committed: put back whatever the apply had written
                if workspace.dirty_paths():
                    workspace.restore(str(progress.pre_sha))
                reason = f"the session was cancelled by {by} before it was applied"
                session.skip_edit(edit_id=edit_id, reason=reason)
                return
            session.record_apply(
                edit_id=edit_id,
                commit_sha=found,
                tree_sha=workspace.tree_sha(),
                changed_files=[],
                reconciled=True,
            )
        gated = progress.gate is not None
        session.revert_edit(
            edit_id=edit_id, revert_sha=self._revert(session, edit_id), tree_sha=workspace.tree_sha()
        )
        if not gated:
            session.skip_edit(
                edit_id=edit_id,
                reason=f"the session was cancelled by {by} before its gate; its commit was reverted",
            )

    def _perform(self, session: Session, step: steps.Step) -> None:
        handler = getattr(self, f"_do_{step.kind}")
        handler(session, step)

    def _do_CheckReadiness(self, session: Session, _: steps.CheckReadiness) -> None:
        count = self.traces.count()
        session.check_readiness(
            trace_count=count,
            min_traces=int(session.settings["session"]["min_traces"]),
            git_head=self.workspace.head_sha(),
            git_tree=self.workspace.tree_sha(),
        )

    def _do_BeginDiagnosis(self, session: Session, _: steps.BeginDiagnosis) -> None:
        if not load_benchmark(self.home):  # emptied since `start`: fail before the first paid call
            session.fail(error=self._no_benchmark_error(), reason_code="no_benchmark")
            return
        session.begin_diagnosis()

    def _do_Fail(self, session: Session, step: steps.Fail) -> None:
        session.fail(error=step.error, reason_code=step.reason_code)

    def _do_CallTeacher(self, session: Session, step: steps.CallTeacher) -> None:
        if step.purpose == "diagnose":
            params = diagnose_request(session.settings, session.diagnose_turns)
        else:
            teacher = session.settings["teacher"]
            params = build_plan_request(
                teacher["model"],
                int(teacher["max_tokens"]),
                session.diagnosis_markdown or "",
                [c for c in session.clusters if c.has_evidence],
            )
        self._teacher_call(session, step.call_key, step.purpose, params)

    def _teacher_call(self, session: Session, call_key: str, purpose: str, params: dict[str, Any]) -> bool:
        """Perform one teacher request and record it; False if the session failed instead."""
        import anthropic  # for its error types; the SDK is imported only once a call is made

        try:
            message = call_with_retries(
                lambda: _checked_message(self.teacher.messages.create(**params)),
                role="teacher",
                endpoint=teacher_endpoint(self.teacher),
                policy=self._retry_policy(),
                on_wait=self._waiting,
            )
        except CassetteMiss as exc:
            session.fail(error=str(exc), reason_code="cassette_divergence")
            return False
        except RequestRefused as exc:  # 400/413/422: the same request would be refused again
            session.fail(
                error=f"the teacher refused the {purpose} request: {exc.error}", reason_code="teacher_error"
            )
            return False
        except TypeError as exc:
            if "authentication" not in str(exc):
                raise
            # The SDK raises TypeError when it has no key: a setup problem, not a session failure.
            raise SessionInterrupted(
                f"teacher call {call_key} of session {session.id} needs Anthropic credentials: set "
                "ANTHROPIC_API_KEY (or pass a teacher); nothing was recorded — run the session again"
            ) from exc
        except anthropic.APIError as exc:
            raise SessionInterrupted(
                f"teacher call {call_key} of session {session.id} did not complete ({type(exc).__name__}: "
                f"{exc}); nothing was recorded — run the session again to resume"
            ) from exc
        try:
            usage = usage_of(message)
        except InvalidTeacherOutput as exc:
            if purpose == "self_run":
                raise  # run_self_on_task: the teacher hears it as a tool error and may go on
            # A paid reply whose bill cannot be read: recorded as the session's failure, never priced.
            session.fail(
                error=f"the teacher's reply to {purpose} call {call_key} is invalid: {exc}",
                reason_code="teacher_invalid_output",
            )
            return False
        model = str(getattr(message, "model", None) or params["model"])
        session.record_teacher_call(
            call_key=call_key,
            purpose=purpose,
            model=model,
            request_digest=request_digest(params),
            response=response_to_dict(message),
            usage=usage,
            cost_usd=cost_of(model, usage),
        )
        return True

    def _do_RunTool(self, session: Session, step: steps.RunTool) -> None:
        def self_run(query: str) -> SelfRun:
            if session.teacher_cost_usd >= float(session.settings["session"]["max_cost_usd"]):
                raise DistillError("the teacher budget is spent; run_self_on_task is no longer available")
            params = {
                "model": session.settings["teacher"]["model"],
                "max_tokens": SELF_RUN_MAX_TOKENS,
                "messages": [{"role": "user", "content": query}],
            }
            key = f"self_run/{step.tool_use_id}"
            if not self._teacher_call(session, key, "self_run", params):
                raise DistillError("the teacher could not answer")
            call = session.teacher_calls[key]
            text = teacher_reply.text_of(call.response)
            return SelfRun(output=text, cost_usd=call.cost_usd)

        toolbox = Toolbox(
            home=self.home,
            traces=self.traces,
            benchmark=load_benchmark(self.home),
            student=self.student,
            judge=self.judge,
            self_run=self_run,
        )
        outcome = toolbox.execute(step.name, step.tool_input)
        if session.status != SessionStatus.DIAGNOSING:  # the self run ended the session (e.g. divergence)
            return
        self._record_judge_calls(session)
        session.record_tool_result(
            call_key=step.call_key,
            tool_use_id=step.tool_use_id,
            tool=step.name,
            content=outcome.content,
            is_error=outcome.is_error,
            student_result=outcome.student_result.model_dump(mode="json") if outcome.student_result else None,
        )

    def _do_SubmitDiagnosis(self, session: Session, step: steps.SubmitDiagnosis) -> None:
        benchmark_ids = [t.task_id for t in load_benchmark(self.home)]
        try:
            diagnosis = parse_diagnosis(step.tool_input, benchmark_ids)
        except InvalidTeacherOutput as exc:
            # Back to the teacher as a tool error: it gets another turn to fix the shape.
            session.record_tool_result(
                call_key=step.call_key,
                tool_use_id=step.tool_use_id,
                tool=teacher_reply.SUBMIT_DIAGNOSIS,
                content=str(exc),
                is_error=True,
            )
            return
        if not diagnosis.clusters:
            session.fail(error="diagnosis produced no actionable clusters", reason_code="no_clusters")
            return
        session.submit_diagnosis(markdown=diagnosis.markdown, clusters=diagnosis.clusters)

    def _do_FreezePlan(self, session: Session, _: steps.FreezePlan) -> None:
        call = session.teacher_calls["plan"]
        tool_input = teacher_reply.tool_input(call.response, teacher_reply.SUBMIT_PLAN)
        try:
            if tool_input is None:
                raise InvalidTeacherOutput("the teacher's plan response did not call submit_plan")
            frozen = freeze_plan(
                session_id=str(session.id),
                tool_input=tool_input,
                clusters=session.clusters,
                diagnosis_markdown=session.diagnosis_markdown or "",
                teacher_model=call.model,
                cost_usd=call.cost_usd,
                read_prompt=self._read_prompt,
                created_at=call.at,
            )
        except InvalidTeacherOutput as exc:
            session.fail(error=f"the plan could not be used: {exc}", reason_code="plan_invalid")
            return
        session.freeze_plan(
            plan=frozen.plan,
            rejected=[r.model_dump(mode="json") for r in frozen.rejected],
            tier_changes=[t.model_dump(mode="json") for t in frozen.tier_changes],
            downgrades=list(frozen.downgrades),
        )

    def _read_prompt(self, agent: str) -> str | None:
        """The agent's prompt, read only inside the workspace (`InvalidEdit` otherwise)."""
        return read_inside(self.home, prompt_path(agent))

    def _do_RouteEdit(self, session: Session, step: steps.RouteEdit) -> None:
        preview = ""
        if step.route == "review":
            try:
                preview = self.workspace.preview(session.edits[step.edit_id].edit)
            except Exception as exc:  # a preview is a courtesy to the reviewer, never a reason to stop
                preview = f"(no preview: {exc})"
        session.route_edit(edit_id=step.edit_id, route=step.route, preview=preview)

    def _do_ValidateEdit(self, session: Session, step: steps.ValidateEdit) -> None:
        check = self.workspace.validate(session.edits[step.edit_id].edit)
        session.validate_edit(edit_id=step.edit_id, ok=check.ok, reason=check.reason)

    def _do_SkipEdit(self, session: Session, step: steps.SkipEdit) -> None:
        session.skip_edit(edit_id=step.edit_id, reason=step.reason)

    def _do_TrainEdit(self, session: Session, step: steps.TrainEdit) -> None:
        from distill_es.app.training.service import TrainingService
        from distill_es.domain.training.errors import TrainingSpecInvalid

        training = session.settings.get("training", {})
        service = TrainingService(
            self.store,
            self.home,
            list(training.get("trainer_command") or []) or None,
            float(training.get("timeout_seconds", 4 * 3600.0)),
        )
        try:
            run = service.train(session, session.edits[step.edit_id].edit)
        except TrainingSpecInvalid as exc:
            session.skip_edit(edit_id=step.edit_id, reason=str(exc))
            return
        session.record_training(
            edit_id=step.edit_id,
            run_id=run.run_id,
            state=run.state,
            deployable=run.deployable,
            summary=run.summary,
        )

    def _do_ChooseGateTasks(self, session: Session, _: steps.ChooseGateTasks) -> None:
        benchmark = load_benchmark(self.home)
        if not benchmark:
            session.fail(error=self._no_benchmark_error(), reason_code="no_benchmark")
            return
        seed = stable_seed(str(session.id))
        task_ids = choose_gate_tasks(
            seed=seed,
            benchmark=benchmark,
            clusters=session.clusters,
            subsample_size=int(session.settings["gate"]["subsample_size"]),
        )
        session.choose_gate_tasks(seed=seed, task_ids=task_ids)

    def _do_StartApply(self, session: Session, step: steps.StartApply) -> None:
        dirty = self.workspace.dirty_paths()
        if dirty:
            raise WorkspaceConflict(
                f"tracked files of {self.home} changed outside this session: {', '.join(dirty)}; "
                f"commit or discard them, then run session {session.id} again"
            )
        session.start_apply(
            edit_id=step.edit_id, pre_sha=self.workspace.head_sha(), pre_tree=self.workspace.tree_sha()
        )

    def _do_ScoreTree(self, session: Session, step: steps.ScoreTree) -> None:
        actual = self.workspace.tree_sha()
        if actual != step.tree_sha:
            raise WorkspaceConflict(
                f"session {session.id} needs the workspace at tree {step.tree_sha[:10]} to score it, "
                f"but it is at {actual[:10]}: someone changed it outside this session"
            )
        benchmark = {t.task_id: t for t in load_benchmark(self.home)}
        missing_ids = [
            t
            for t in session.gate_task_ids or []
            if session.score_key(step.tree_sha, t) not in session.scores
        ]
        unknown = [t for t in missing_ids if t not in benchmark]
        if unknown:
            session.fail(
                error=f"benchmark tasks disappeared during the session: {', '.join(unknown)}",
                reason_code="benchmark_changed",
            )
            return
        tasks: list[BenchmarkTask] = [benchmark[t] for t in missing_ids]
        try:
            scores = self._score(session, step, tasks)
        except RequestRefused as exc:  # only the judge raises it: the student's refusal scores 0.0
            self._record_judge_calls(session)
            session.fail(error=f"the judge could not score a task: {exc}", reason_code="judge_error")
            return
        self._record_judge_calls(session)
        session.record_scores(
            tree_sha=step.tree_sha,
            seed=session.gate_seed or 0,
            student_model=session.student_model,
            scores=[s.model_dump(mode="json") for s in scores],
        )

    def _score(self, session: Session, step: steps.ScoreTree, tasks: list[BenchmarkTask]) -> list[TaskScore]:
        """Score `tasks`, telling `on_scoring` of each one as it is scored (from the scorer's threads)."""
        observer = self.on_scoring
        if observer is None or not accepts_keyword(self.scorer.score, "on_scored"):
            return self.scorer.score(tasks)
        lock, scored = threading.Lock(), 0

        def tick(_index: int, _score: TaskScore) -> None:
            nonlocal scored
            with lock:  # one report at a time, counted in the order they are made
                scored += 1
                observer(ScoringProgress(str(session.id), step.tree_sha, scored, len(tasks), step.total))

        return self.scorer.score(tasks, on_scored=tick)

    def _tree_scores(self, session: Session, tree_sha: str) -> dict[str, TaskScore]:
        return {
            t: TaskScore.model_validate(session.scores[session.score_key(tree_sha, t)])
            for t in session.gate_task_ids or []
        }

    def _snapshot(self, session: Session, tree_sha: str) -> Any:
        return snapshot(
            scores=self._tree_scores(session, tree_sha),
            task_ids=list(session.gate_task_ids or []),
            clusters=session.clusters,
            benchmark_version=str(session.settings["gate"]["benchmark_version"]),
            tree_sha=tree_sha,
        )

    def _do_CaptureBenchmark(self, session: Session, step: steps.CaptureBenchmark) -> None:
        session.capture_benchmark(label=step.label, snapshot=self._snapshot(session, step.tree_sha))

    def _do_ApplyEdit(self, session: Session, step: steps.ApplyEdit) -> None:
        progress = session.edits[step.edit_id]
        workspace = self.workspace
        found = workspace.find_edit_commit(str(session.id), step.edit_id)
        if found is not None:  # committed before a crash: record what git already holds
            session.record_apply(
                edit_id=step.edit_id,
                commit_sha=found,
                tree_sha=workspace.tree_sha(),
                changed_files=[],
                reconciled=True,
            )
            return
        if workspace.head_sha() != progress.pre_sha:
            raise WorkspaceConflict(
                f"the workspace moved from {str(progress.pre_sha)[:10]} to {workspace.head_sha()[:10]} while "
                f"edit {step.edit_id} was being applied; it cannot be applied safely"
            )
        if workspace.dirty_paths():  # our own half-written files from a crash (the intent is recorded)
            workspace.restore(str(progress.pre_sha))
        try:
            applied = workspace.apply(
                progress.edit,
                session_id=str(session.id),
                risk_tier=progress.risk_tier,
                **self._log_head(session, workspace.apply),
            )
        except OpNotAvailable as exc:
            session.skip_edit(edit_id=step.edit_id, reason=str(exc))
            return
        except InvalidEdit as exc:
            workspace.restore(str(progress.pre_sha))
            session.validate_edit(edit_id=step.edit_id, ok=False, reason=f"apply failed: {exc}")
            return
        session.record_apply(
            edit_id=step.edit_id,
            commit_sha=applied.commit_sha,
            tree_sha=applied.tree_sha,
            changed_files=list(applied.changed_files),
        )

    def _do_EvaluateGate(self, session: Session, step: steps.EvaluateGate) -> None:
        progress = session.edits[step.edit_id]
        before = self._snapshot(session, str(progress.pre_tree))
        after = self._snapshot(session, str(progress.tree_sha))
        gate = session.settings["gate"]
        decision = evaluate_gate(
            before=before,
            after=after,
            target_cluster=progress.edit.expected_improvement,
            max_regression=float(gate["max_regression"]),
            min_improvement=float(gate["min_improvement"]),
        )
        session.record_gate(
            edit_id=step.edit_id,
            before=before,
            after=after,
            delta=decision.delta,
            cluster_deltas=dict(decision.cluster_deltas),
            accepted=decision.accepted,
            reason=decision.reason,
        )

    def _revert(self, session: Session, edit_id: str) -> str:
        workspace = self.workspace
        found = workspace.find_revert_commit(str(session.id), edit_id)
        if found is not None:
            return found
        if workspace.dirty_paths():  # a revert interrupted by a crash: start it again from HEAD
            workspace.restore(workspace.head_sha())
        commit = str(session.edits[edit_id].commit_sha)
        return workspace.revert(
            commit, session_id=str(session.id), edit_id=edit_id, **self._log_head(session, workspace.revert)
        )

    def _do_RevertEdit(self, session: Session, step: steps.RevertEdit) -> None:
        revert_sha = self._revert(session, step.edit_id)
        session.revert_edit(edit_id=step.edit_id, revert_sha=revert_sha, tree_sha=self.workspace.tree_sha())

    def _do_AwaitReview(self, session: Session, _: steps.AwaitReview) -> None:
        session.await_review(git_post=self.workspace.head_sha())

    def _do_Complete(self, session: Session, _: steps.Complete) -> None:
        session.complete(git_post=self.workspace.head_sha())

    def _do_RollBackEdit(self, session: Session, step: steps.RollBackEdit) -> None:
        session.roll_back_edit(edit_id=step.edit_id, revert_sha=self._revert(session, step.edit_id))

    def _do_FinishRollback(self, session: Session, _: steps.FinishRollback) -> None:
        session.roll_back(git_post=self.workspace.head_sha())
