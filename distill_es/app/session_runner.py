"""The resumable engine: load the session, ask `next_step`, perform that one step, record, repeat.

There is no separate resume path: a fresh process after a crash runs exactly this loop, and the log
tells it what is already done. A step's handler (`app.activities.HANDLERS`) performs it and reports an
outcome; `domain.session.react` decides what the session records; the step's events are saved
together, in one store transaction, before the next outside effect. A step that only reads
(`READS_ONLY`) leaves its events for the next step's save: at most one transaction per step. Most
steps make one outside call; the ones that make more (a tool call, scoring a tree) say so, and are
made again whole after a crash.

Commands (approve, reject, rollback) record the reviewer's or user's decision and then run the same
loop; cancel settles the workspace and ends the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_es.app.checked_log import CheckedLog
from distill_es.app.progress import ScoringObserver, StepObserver
from distill_es.config.settings import Settings
from distill_es.domain.errors import (
    EndpointUnavailable,
    SessionInterrupted,
    TraceNotFound,
    WorkspaceConflict,
    WorkspaceError,
)
from distill_es.domain.layout import DESCRIPTIONS_FILE, STATE_DIR
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import AutonomyMode, LearningSession, Trigger
from distill_es.ports import TraceSource
from distill_es.store import locks
from distill_es.store.app import EventStore
from distill_es.store.locks import exclusive
from distill_es.store.projections import SessionIndex
from distill_es.store.timeline import cost_ledger

# The activities (phases, adapters, GitPython, tomlkit), the step rules and the reactions are imported
# by the methods that drive a step: an engine opened to read never imports them (docs/performance.md,
# "Cold start").
if TYPE_CHECKING:
    from distill_es.app.activities.context import Adapters, StepContext
    from distill_es.domain.session import next_step as steps


class Runner:
    """Runs the sessions of one workspace on one store (the `SessionRunner` port)."""

    def __init__(
        self,
        home: Path,
        *,
        settings: Settings,
        store: EventStore,
        index: SessionIndex,
        adapters: Adapters,
        on_step: StepObserver | None = None,
        on_scoring: ScoringObserver | None = None,
    ) -> None:
        self.home = home
        self.settings = settings
        self.store = store
        self.index = index
        self.adapters = adapters
        self.on_step = on_step
        self.on_scoring = on_scoring
        self.log = CheckedLog(store, index, adapters.opened_workspace, home=home)

    @property
    def state_dir(self) -> Path:
        return self.home / STATE_DIR

    def _context(self, on_scoring: ScoringObserver | None = None) -> StepContext:
        from distill_es.app.activities.context import StepContext

        return StepContext(self.home, self.store, self.adapters, on_scoring)

    @property
    def traces(self) -> TraceSource:
        return self.adapters.traces

    def close(self) -> None:
        self.store.close()

    def cost_ledger(self, session_id: str) -> list[dict[str, Any]]:
        return cost_ledger(self.log.events(session_id))

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
        with exclusive(self.store.url, self.state_dir, *self.workspace_lock()):
            self._check_inputs(settings)
            self._require_known_traces(trigger)
            self._require_clean_workspace("before starting a session")
            session = Session.start(
                trigger=trigger,
                autonomy_mode=settings.session.autonomy_mode,
                settings=settings.recorded(),
                workspace=str(self.home),
                parent_session_id=parent_session_id,
            )
            self.store.save(session)
        return str(session.id)

    def run(self, session_id: str) -> LearningSession:
        """Drive the session until it rests (completed, awaiting_review, failed, rolled_back)."""
        with self._running(session_id):
            return self._drive(self.log.load(session_id))

    def _drive(self, session: Session) -> LearningSession:
        """`run`'s loop, under the session's and the workspace's locks (held by the caller)."""
        from distill_es.app.activities import NEEDS_SAVED_HEAD, READS_ONLY
        from distill_es.domain.session.next_step import Rest, next_step

        session_id = str(session.id)
        while True:
            locks.require_held(session_id)  # a lock lost with its connection: stop before the next effect
            step = next_step(session)
            if isinstance(step, Rest):
                self._save_waiting(session)  # what the last reads-only steps recorded
                self.index.catch_up()  # once per run, not per step or event
                return session.view()
            if type(step) in NEEDS_SAVED_HEAD:
                self._save_waiting(session)
            waiting = len(session.pending_events)
            try:
                if self.on_step is not None:  # an observer that raises stops the run like a failing step
                    self.on_step(session.view(), step)
                self.perform(session, step)
            except SessionInterrupted as exc:
                self._save_waiting(session, waiting, quietly=True)
                self._record_interruption(session_id, step, exc)
                raise
            except BaseException:  # a conflict, a bug, Ctrl-C: the log ends as with a save per step
                self._save_waiting(session, waiting, quietly=True)
                raise
            if type(step) not in READS_ONLY:
                self.store.save(session)  # the step and the reads before it: one transaction

    def _save_waiting(self, session: Session, waiting: int | None = None, *, quietly: bool = False) -> None:
        """Save the events reads-only steps left waiting. After a step that failed (`waiting`: how
        many were pending before it), only when it recorded nothing itself: the log then ends as it
        would have with a save per step. `quietly`: a failure to save loses only reads that are made
        again, and must not hide the step's own error."""
        pending = len(session.pending_events)
        if not pending or (waiting is not None and pending != waiting):
            return
        try:
            self.store.save(session)
        except Exception:
            if not quietly:
                raise

    def perform(self, session: Session, step: steps.Step) -> None:
        """Perform `step` and record on `session` (in memory) what `react` decides of its outcome."""
        from distill_es.app.activities import HANDLERS
        from distill_es.domain.session.react import react

        context = self._context(self.on_scoring)
        outcome = HANDLERS[type(step)](context, session, step)
        for command in react(session, step, outcome):
            command.apply(session)

    def approve(self, session_id: str, edit_id: str, *, reviewer: str, note: str = "") -> LearningSession:
        """Approve a pending edit: it is applied and gated now, and the session moves on."""
        with self._running(session_id):
            session = self.log.load(session_id)
            session.approve_edit(edit_id=edit_id, reviewer=reviewer, note=note)
            self._require_clean_workspace(f"before session {session_id} can apply edit {edit_id}")
            self._require_readable_config()  # an approval must not be spent on a file that cannot be edited
            self.store.save(session)
            return self._drive(session)  # the same locks: nobody takes it in between

    def reject(self, session_id: str, edit_id: str, *, reviewer: str, reason: str) -> LearningSession:
        with self._running(session_id):
            session = self.log.load(session_id)
            session.reject_edit(edit_id=edit_id, reviewer=reviewer, reason=reason)
            self._require_clean_workspace(f"before session {session_id} can go on")
            self.store.save(session)
            return self._drive(session)  # the same locks: nobody takes it in between

    def rollback(self, session_id: str, *, requested_by: str = "user") -> LearningSession:
        """Revert every applied edit of the session, newest first; the session ends ROLLED_BACK."""
        with self._running(session_id):
            session = self.log.load(session_id)
            session.request_rollback(requested_by=requested_by)
            self._require_clean_workspace(f"before session {session_id} can be rolled back")
            self.store.save(session)
            return self._drive(session)  # the same locks: nobody takes it in between

    def cancel(self, session_id: str, *, by: str, reason: str) -> LearningSession:
        """End a session that cannot go on: it rests `failed` (reason_code `cancelled`), who and why
        recorded. Refused while another process runs it. Edits it had committed but not yet gated (or
        gated as rejected but not reverted yet) are reverted first, and a half-applied edit's files are
        restored, so a cancelled session leaves the workspace as its accepted edits made it; those stay,
        and `rollback` reverts them. See docs/engine.md "Cancel"."""
        from distill_es.domain.session.react import unsettled_edits

        with exclusive(self.store.url, self.state_dir, *self.session_lock(session_id)):
            session = self.log.load(session_id)  # a damaged log gets nothing appended, not even this
            lifecycle.decide(session, "cancel", session_id=session_id)  # illegal from a resting state
            unsettled = unsettled_edits(session)
            if unsettled:
                with exclusive(self.store.url, self.state_dir, *self.workspace_lock()):
                    for edit_id in unsettled:
                        self._settle_for_cancel(session, edit_id, by)
            session.cancel(cancelled_by=by, reason=reason)
            self.store.save(session)
        self.index.catch_up()
        return session.view()

    def _settle_for_cancel(self, session: Session, edit_id: str, by: str) -> None:
        """Make the edit's effect on the workspace final before the cancel: put back the files of an
        apply never committed (the edit is skipped), else revert its commit (and skip it if it had no
        gate verdict yet). Several outside effects, each recorded as it is made."""
        from distill_es.domain.session.react import skipped_by_cancel

        progress = session.edits[edit_id]
        workspace = self.adapters.workspace
        if progress.commit_sha is None:
            found = workspace.find_edit_commit(str(session.id), edit_id)
            if found is None:  # never committed: put back whatever the apply had written
                if workspace.dirty_paths():
                    workspace.restore(str(progress.pre_sha))
                skipped_by_cancel(edit_id, by, reverted=False).apply(session)
                return
            session.record_apply(
                edit_id=edit_id,
                commit_sha=found,
                tree_sha=workspace.tree_sha(),
                changed_files=[],
                reconciled=True,
            )
        gated = progress.gate is not None
        from distill_es.app.activities.execute import revert

        context = self._context(self.on_scoring)
        session.revert_edit(
            edit_id=edit_id, revert_sha=revert(context, session, edit_id), tree_sha=workspace.tree_sha()
        )
        if not gated:
            skipped_by_cancel(edit_id, by, reverted=True).apply(session)

    # ------------------------------------------------------------------------------------------
    # locks
    @contextmanager
    def _running(self, session_id: str) -> Iterator[None]:
        """One process per session, and one running session per workspace (their edits and gate
        readings would interleave otherwise)."""
        locks = (*self.session_lock(session_id), self.workspace_lock())
        with exclusive(self.store.url, self.state_dir, *locks):
            yield

    @staticmethod
    def session_lock(session_id: str) -> tuple[str, str]:
        return locks.session_lock(session_id)

    def workspace_lock(self) -> tuple[str, str]:
        return locks.workspace_lock(self.home)

    def _record_interruption(self, session_id: str, step: steps.Step, exc: SessionInterrupted) -> None:
        """Record why `step` stopped, on the session as stored: whatever the step had recorded in
        memory is dropped (it runs again from the start on resume). The state does not move."""
        context = self._context()
        judge = context.ledger_judge()
        if judge is not None:
            judge.drain()  # its calls were not recorded; the next step tries it afresh
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

    # ------------------------------------------------------------------------------------------
    # preconditions: checked before a command records anything
    def _require_clean_workspace(self, when: str) -> None:
        dirty = self.adapters.workspace.dirty_paths()
        if dirty:
            raise WorkspaceConflict(
                f"the workspace {self.home} has uncommitted changes in the files it manages: "
                f"{', '.join(dirty)}; "
                f"commit or discard them {when} (nothing was recorded)"
            )

    def _require_readable_config(self) -> None:
        """The TOML files edits change parse (`WorkspaceError` naming the file and line)."""
        from distill_es.workspace.toml_config import read_config, read_workspace_toml

        read_config(self.home)
        read_workspace_toml(self.home, DESCRIPTIONS_FILE)

    def _require_known_traces(self, trigger: Trigger) -> None:
        """Every trace the trigger names is a non-empty id the traces source holds (TraceNotFound):
        a session about a trace that is not there would only pay the teacher to find nothing."""
        metadata = trigger.metadata or {}
        named = [metadata["trace_id"]] if "trace_id" in metadata else []
        named += list(metadata.get("trace_ids") or [])
        for trace_id in named:
            if not isinstance(trace_id, str) or not trace_id.strip():
                raise TraceNotFound(f"the trigger names an empty trace id ({trace_id!r})")
            if self.traces.get(trace_id) is None:
                shown = trace_id if len(trace_id) <= 80 else trace_id[:80] + "…"
                raise TraceNotFound(f"no trace {shown!r} in this workspace's traces")

    def _check_inputs(self, settings: Settings) -> None:
        """The files a session reads parse, and a session that would go on to pay the teacher has a
        benchmark to measure its edits with. Each error names the file (and line). (With too few
        traces the session is recorded and rests failed as a cold start: it never calls the teacher.)"""
        self._require_readable_config()
        from distill_es.adapters.benchmark import load_benchmark
        from distill_es.domain.session.react import no_benchmark_error

        traces = self.traces.count()  # parses every traces.jsonl line / queries traces.db
        benchmark = load_benchmark(self.home)
        if not benchmark and traces >= settings.session.min_traces:
            raise WorkspaceError(f"{no_benchmark_error(str(self.home))}; add tasks before starting a session")
