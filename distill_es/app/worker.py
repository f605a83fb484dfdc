"""Workers: claim runnable sessions from a shared store and run them.

Any number of workers may share one PostgreSQL store. They coordinate only through the database:
`Engine.run` holds a session-level advisory lock for the session and one for its workspace, so two
workers never run the same session (or two sessions on one workspace) at once. The server drops a
dead worker's locks with its connection, so another worker picks its session up on its next poll.
A worker busy with a session still looks every poll for sessions a dead worker left under way (its
rescue thread), so a takeover never waits for a survivor's own session to end.

A session interrupted by an outside failure (a dead student, a rate-limited teacher: `StepInterrupted`
in its log) is backed off: it is tried again only `backoff_seconds × 2^(n-1)` (capped) after its n-th
interruption in a row. The delay is computed from the log (the index row), not from a worker's memory,
so every worker — and a restarted one — agrees; any progress of the session resets it.

Depends on a `SessionRunner` (`distill_es.ports`), not on the engine: the caller hands in the opener
(`distill_es.compose.worker_opener`, which opens a runner on the session's workspace).

    python -m distill_es.worker --store postgresql://postgres@127.0.0.1:5432/db --state-dir DIR
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DamagedSession,
    DistillError,
    LockLost,
    SessionBusy,
    SessionInterrupted,
)
from distill_es.domain.layout import STATE_DIR
from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.ports import RunnerOpener
from distill_es.store.app import EventStore
from distill_es.store.locks import Claims, session_lock, workspace_lock
from distill_es.store.projections import SessionIndex

log = logging.getLogger("distill_es.worker")

Clock = Callable[[], datetime]
BACKOFF_SECONDS = 30.0  # after the first interruption in a row; doubles with each one
RESCUE_NOTE = "taken over by the rescue thread, beside this worker's own session"
RESCUE_MIN_POLL_SECONDS = 0.05  # the rescue thread's floor, whatever --poll says (--poll 0 must not spin)
MAX_BACKOFF_SECONDS = 3600.0


def migrate(store_url: str) -> None:
    """Create the store's tables once, before workers start (they run with table creation off, so
    several starting at the same moment never race on DDL)."""
    EventStore(store_url, create_tables=True).close()


@dataclass
class WorkerReport:
    finished: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    busy_skips: int = 0
    backed_off: dict[str, str] = field(default_factory=dict)  # session id -> why, and until when
    damaged: list[str] = field(default_factory=list)  # skipped for this worker's lifetime
    # Where the worker's time went (seconds): finding and claiming work, running sessions, sleeping.
    claim_seconds: float = 0.0
    run_seconds: float = 0.0
    idle_seconds: float = 0.0
    polls: int = 0
    rescued: list[str] = field(default_factory=list)  # taken over by the rescue thread, while busy

    def merge(self, other: WorkerReport) -> None:
        """Add what the rescue thread did (its sessions count as finished by this worker)."""
        self.finished += other.finished
        self.rescued += other.finished
        self.interrupted += other.interrupted
        self.busy_skips += other.busy_skips
        self.backed_off.update(other.backed_off)  # (`damaged` is one list, shared by both threads)
        self.claim_seconds += other.claim_seconds
        self.run_seconds += other.run_seconds


@dataclass(frozen=True)
class WorkerNote:
    """One line of a worker's log: it started or stopped, claimed a session, or finished one.

    `queued_seconds`: from the session's start (its queueing) to this claim. `run_seconds` and
    `outcome` (the status it rests in, or interrupted / damaged / error) come with `finished`."""

    event: str  # started | claimed | finished | stopped
    at: datetime
    worker: str
    session_id: str = ""
    workspace: str = ""
    status: str = ""  # the session's status when claimed (initiated: fresh; else taken over)
    queued_seconds: float | None = None
    run_seconds: float | None = None
    outcome: str = ""
    detail: str = ""


Notes = Callable[[WorkerNote], None]


def worker_name() -> str:
    """Who a worker is in its log lines and in `queue`: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Backoff:
    """How long workers leave a session alone after its recorded interruptions."""

    base_seconds: float = BACKOFF_SECONDS
    max_seconds: float = MAX_BACKOFF_SECONDS

    def until(self, row: dict[str, Any]) -> datetime | None:
        """When the session may run again, or None when it is not interrupted now."""
        if row.get("interrupted_version") is None or row.get("interrupted_version") != row.get("version"):
            return None
        in_a_row = max(1, int(row.get("interruptions", 1)))
        delay = min(self.base_seconds * 2.0 ** (in_a_row - 1), self.max_seconds)
        return datetime.fromisoformat(row["interrupted_at"]) + timedelta(seconds=delay)

    def why(self, row: dict[str, Any], until: datetime) -> str:
        times = "once" if row.get("interruptions", 1) == 1 else f"{row['interruptions']} times in a row"
        what = row.get("interruption", "an outside failure")
        return f"interrupted {times} ({what}); next try {until.isoformat(timespec='seconds')}"


def runnable_sessions(index: SessionIndex) -> list[dict[str, Any]]:
    """Sessions not yet at rest: those already under way first (a dead worker's session is taken
    over before new work is begun), then oldest first (fairness: a queue, not a stack)."""
    rows = [row for status in sorted(ACTIVE) for row in index.rows(status=status)]
    return sorted(rows, key=lambda row: (row["status"] == "initiated", row["started_at"], row["session_id"]))


def work(
    store_url: str,
    state_dir: Path,
    *,
    open_runner: RunnerOpener,
    poll_seconds: float = 0.5,
    idle_polls_before_exit: int | None = None,
    max_sessions: int | None = None,
    backoff: Backoff | None = None,
    clock: Clock = lambda: datetime.now(UTC),
    notes: Notes | None = None,
    rescue: bool = True,
    warm_up: Callable[[], None] | None = None,
) -> WorkerReport:
    """Run sessions until idle for `idle_polls_before_exit` polls (None: forever) or `max_sessions` done.
    Interrupted sessions wait out their `backoff` (a poll with only those is an idle poll).
    `open_runner(workspace, store_url)` opens a runner on a session's workspace, creating no tables.
    `notes` hears one `WorkerNote` per session claimed and finished (and at start and stop).
    `rescue`: while this worker runs a session, a second thread takes over sessions that a dead worker
    left under way (never new ones), so at most two sessions run here at once. `warm_up` runs once the
    store has answered, before the first claim (`distill_es.compose.warm_up`: the imports a run needs)."""
    backoff = backoff or Backoff()
    say = _Say(notes, clock)
    store = EventStore(store_url, create_tables=False)
    index = SessionIndex(Path(state_dir) / "worker-views.sqlite", store)
    claims = Claims(store_url)
    report = WorkerReport()
    busy = _Busy()
    rescuer = _Rescuer(store_url, index, open_runner, backoff, clock, say, poll_seconds, busy)
    rescuer.report.damaged = report.damaged  # one list: a session found damaged is skipped by both
    idle = 0
    interrupted = False
    try:
        if warm_up is not None:
            index.catch_up()  # the store answers (else its error now, not after seconds of imports)
            warm_up()
        say("started", detail=f"poll {poll_seconds:g} s")
        if rescue:
            rescuer.start()
        while max_sessions is None or len(report.finished) + len(rescuer.report.finished) < max_sessions:
            report.polls += 1
            looking = time.perf_counter()
            ran = _claim_and_run(
                index, claims, store_url, open_runner, backoff, clock, report, say, looking, running=busy
            )
            if ran:
                idle = 0
                continue
            report.claim_seconds += time.perf_counter() - looking
            idle += 1
            if idle_polls_before_exit is not None and idle >= idle_polls_before_exit:
                break
            time.sleep(poll_seconds)
            report.idle_seconds += poll_seconds
    except BaseException:  # Ctrl-C: a rescue under way is left to the next worker, as after a crash
        interrupted = True
        raise
    finally:
        rescuer.stop(wait=not interrupted)  # else a rescue under way runs to rest first
        report.merge(rescuer.report)
        claims.close()
        store.close()
        say("stopped", detail=_accounts(report))
    return report


class _Rescuer(threading.Thread):
    """While the worker runs a session, looks every poll for sessions under way whose locks nobody
    holds (their worker died) and runs them to rest. It shares the worker's store and index (the
    worker reads them only between sessions, and both are safe from several threads) and has its own
    claim connection: the locks of a rescue must not ride on the worker's."""

    def __init__(
        self,
        store_url: str,
        index: SessionIndex,
        open_runner: RunnerOpener,
        backoff: Backoff,
        clock: Clock,
        say: _Say,
        poll_seconds: float,
        busy: _Busy,
    ) -> None:
        super().__init__(name="distill_es-rescue", daemon=True)  # daemon: an interrupted worker exits
        self.store_url, self.index, self.open_runner = store_url, index, open_runner
        self.backoff, self.clock, self.say = backoff, clock, say
        self.poll_seconds, self.busy = max(poll_seconds, RESCUE_MIN_POLL_SECONDS), busy
        self.report = WorkerReport()
        self._stopping = threading.Event()

    def stop(self, *, wait: bool) -> None:
        self._stopping.set()
        if wait and self.is_alive():
            self.join()

    def run(self) -> None:
        claims = Claims(self.store_url)  # its own claim connection, opened at its first look
        failing = ""  # the store error said last (said once per episode)
        try:
            while not self._stopping.wait(self.poll_seconds):
                own = self.busy.workspace
                if own is None:
                    continue  # the worker is looking itself
                try:
                    self._look(claims, own)
                    failing = ""
                except DistillError as exc:  # the store is away: look again next poll
                    if str(exc) != failing:
                        log.warning("the rescue thread could not look at the queue: %s", exc)
                        failing = str(exc)
        except Exception:  # a bug: the worker goes on without it (its main loop still takes over)
            log.exception("the rescue thread stopped")
        finally:
            claims.close()

    def _look(self, claims: Claims, own: str) -> None:
        self.report.polls += 1
        looking = time.perf_counter()
        if not _claim_and_run(
            self.index, claims, self.store_url, self.open_runner, self.backoff, self.clock,
            self.report, self.say, looking, under_way_only=True, besides=own,
        ):  # fmt: skip
            self.report.claim_seconds += time.perf_counter() - looking


def _claim_and_run(
    index: SessionIndex,
    claims: Claims,
    store_url: str,
    open_runner: RunnerOpener,
    backoff: Backoff,
    clock: Clock,
    report: WorkerReport,
    say: _Say,
    looking: float,
    *,
    under_way_only: bool = False,
    besides: str | None = None,
    running: _Busy | None = None,
) -> bool:
    """One look at the queue: claim the first session free to run (its session and workspace locks,
    on the claim connection) and run it; True when one ran. Sessions whose locks are taken now are
    skipped without a try, so workers spread over the queue instead of racing for its head.
    `under_way_only`: leave the queued (`initiated`) sessions alone, and the workspace `besides` (the
    rescue thread, beside the worker's own session). `running` hears which workspace is being run."""
    taken = claims.taken()  # one query for all; None on SQLite (there the try-lock decides)
    busy_workspaces = {besides} if besides else set()  # one busy session there: the workspace is taken
    for row in runnable_sessions(index):
        if under_way_only and row["status"] == "initiated":
            break  # they come last (runnable_sessions)
        workspace = row["workspace"]
        if workspace in busy_workspaces or row["session_id"] in report.damaged:
            continue
        if _backing_off(row, backoff, clock(), report):
            continue
        wanted = (session_lock(row["session_id"]), workspace_lock(workspace))
        if claims.is_taken(taken, *(name for name, _ in wanted)):
            busy_workspaces.add(workspace)
            continue
        try:
            with claims.claim(Path(workspace) / STATE_DIR, *wanted), _running(running, workspace):
                if _run_one(row, store_url, open_runner, report, say, looking, rescue=under_way_only):
                    return True
        except SessionBusy:
            report.busy_skips += 1  # another worker claimed it since the look: try the next one
        busy_workspaces.add(workspace)
    return False


class _Busy:
    """The workspace whose session the worker's main loop runs now (None: it runs none): the rescue
    thread looks only while it runs one, and leaves that workspace alone."""

    def __init__(self) -> None:
        self.workspace: str | None = None


@contextmanager
def _running(busy: _Busy | None, workspace: str) -> Iterator[None]:
    if busy is None:
        yield
        return
    busy.workspace = workspace
    try:
        yield
    finally:
        busy.workspace = None


def _accounts(report: WorkerReport) -> str:
    return (
        f"{len(report.finished)} finished ({len(report.rescued)} taken over while busy), "
        f"{len(report.interrupted)} interrupted; seconds claiming "
        f"{report.claim_seconds:.2f}, running {report.run_seconds:.2f}, idle {report.idle_seconds:.2f}; "
        f"{report.polls} polls, {report.busy_skips} claims lost"
    )


class _Say:
    """Builds and hands out the worker's notes (a no-op without a listener)."""

    def __init__(self, notes: Notes | None, clock: Clock) -> None:
        self.notes, self.clock, self.worker = notes, clock, worker_name()

    def __call__(self, event: str, row: dict[str, Any] | None = None, **fields: Any) -> None:
        if self.notes is None:
            return
        if row is not None:
            fields.setdefault("session_id", row["session_id"])
            fields.setdefault("workspace", row["workspace"])
        at = fields.pop("at", None) or self.clock()
        self.notes(WorkerNote(event=event, at=at, worker=self.worker, **fields))

    def queued_for(self, row: dict[str, Any]) -> float:
        return max(0.0, (self.clock() - datetime.fromisoformat(row["started_at"])).total_seconds())


def _backing_off(row: dict[str, Any], backoff: Backoff, now: datetime, report: WorkerReport) -> bool:
    """True while the session's recorded interruptions say to leave it alone (said once per episode)."""
    until = backoff.until(row)
    session_id = row["session_id"]
    if until is None or until <= now:
        return False
    why = backoff.why(row, until)
    if report.backed_off.get(session_id) != why:
        log.warning("session %s backed off: %s", session_id, why)
        report.backed_off[session_id] = why
    return True


def _run_one(
    row: dict[str, Any],
    store_url: str,
    open_runner: RunnerOpener,
    report: WorkerReport,
    say: _Say,
    looking: float,
    *,
    rescue: bool = False,
) -> bool:
    """Run a claimed session to rest; False when it did not get there (said why, and noted).
    `rescue`: claimed by the rescue thread, beside the worker's own session (said in the note)."""
    session_id = row["session_id"]
    claimed, claimed_at = time.perf_counter(), say.clock()
    report.claim_seconds += claimed - looking
    say("claimed", row, at=claimed_at, status=row["status"], queued_seconds=round(say.queued_for(row), 3),
        detail=RESCUE_NOTE if rescue else "")  # fmt: skip
    outcome, detail = "error", ""
    try:
        runner = open_runner(Path(row["workspace"]), store_url)
        try:
            session = runner.run(session_id)
        finally:
            runner.close()
        outcome = session.status.value
    except LockLost as exc:  # its locks died with their connection: another worker may run it now
        log.warning("session %s stopped: %s", session_id, exc)
        outcome, detail = "lock_lost", str(exc)
        return False
    except ConcurrentSessionWrite as exc:  # not ours after all: another process holds or wrote it
        report.busy_skips += 1
        outcome, detail = "busy", str(exc)
        return False
    except DamagedSession as exc:
        log.error("session %s skipped: %s", session_id, exc)  # no retry can mend a damaged log
        report.damaged.append(session_id)
        outcome, detail = "damaged", str(exc)
        return False
    except SessionInterrupted as exc:  # recorded in its log by the engine: every worker backs off
        log.warning("session %s interrupted (recorded; backing off): %s", session_id, exc)
        report.interrupted.append(session_id)
        outcome, detail = "interrupted", str(exc)
        return False
    except DistillError as exc:  # the workspace is gone, or the store failed: the worker goes on
        log.error("session %s could not run: %s", session_id, exc)
        report.interrupted.append(session_id)
        detail = str(exc)
        return False
    finally:
        ran = time.perf_counter() - claimed
        report.run_seconds += ran
        say("finished", row, run_seconds=round(ran, 3), outcome=outcome, detail=detail)
    log.info("session %s rests %s", session_id, session.status.value)
    report.finished.append(session_id)
    return True
