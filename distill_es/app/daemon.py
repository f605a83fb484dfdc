"""Triggers that fire: the daemon evaluates `[triggers]` and starts (and runs) sessions.

The trigger kinds and their rules are `distill_es.domain.trigger_log.rules`. Flags, firings and the
sessions they launched are events on a per-workspace `TriggerLog` aggregate in the same store, so
every decision that started something is auditable and a crash between "fired" and "session started"
is reconciled on the next tick (the firing id in the session's trigger metadata is the key, see
`app.adoption`). At most one session is active (initiated…executing) per workspace: the daemon starts
nothing while one is, and resumes it if it was its own.

Depends on a `SessionRunner` (`distill_es.ports`), not on the engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from distill_es.adapters.terminal_safe import inert
from distill_es.app.adoption import adopt_or_start, started_for
from distill_es.config.trigger_settings import TriggerSettings
from distill_es.domain.errors import ConcurrentSessionWrite, DistillError, SessionBusy
from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.domain.trigger_log.aggregate import TriggerLog
from distill_es.domain.trigger_log.errors import TraceNotFound
from distill_es.domain.trigger_log.events import TriggerFired
from distill_es.domain.trigger_log.rules import (
    Decision,
    deferred,
    evaluate_cluster,
    evaluate_scheduled,
    evaluate_user_flag,
    fired,
    firing_key,
    settled,
)
from distill_es.domain.trigger_log.views import Flag
from distill_es.domain.vocabulary import LearningSession, SessionStatus, Trigger
from distill_es.ports import SessionRunner, TraceSource
from distill_es.store.locks import exclusive

log = logging.getLogger("distill_es.daemon")
WRITE_ATTEMPTS = 5


# --- the trigger log in the store ----------------------------------------------------------------------
def _load_log(runner: SessionRunner) -> TriggerLog | None:
    found = runner.store.find(TriggerLog.id_for(str(runner.home)))
    return found if isinstance(found, TriggerLog) else None


def _write(runner: SessionRunner, command: Callable[[TriggerLog], Any]) -> Any:
    """Load (or open) the log, run the command, save; retry when another process wrote in between."""
    for attempt in range(WRITE_ATTEMPTS):
        trigger_log = _load_log(runner) or TriggerLog.open(str(runner.home))
        result = command(trigger_log)
        try:
            runner.store.save(trigger_log)
            return result
        except ConcurrentSessionWrite:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    return None  # unreachable


# --- flags ---------------------------------------------------------------------------------------------
def flag_trace(runner: SessionRunner, trace_id: str, *, note: str = "", flagged_by: str = "user") -> Flag:
    """Flag a trace for the next user_flag session (idempotent while the flag is pending)."""
    if runner.traces.get(trace_id) is None:
        raise TraceNotFound(f"no trace {trace_id!r} in {runner.home}'s traces")
    flag_id = _write(runner, lambda lg: lg.flag(trace_id=trace_id, note=note, flagged_by=flagged_by))
    return next(f for f in list_flags(runner) if f.flag_id == flag_id)


def list_flags(runner: SessionRunner) -> list[Flag]:
    trigger_log = _load_log(runner)
    return trigger_log.flag_views() if trigger_log else []


def new_traces_since(traces: TraceSource, epoch: float | None) -> int:
    """Traces started after `epoch` (all of them when there was no session yet); undated ones never count."""
    if epoch is None:
        return traces.count()
    limit = 64
    while True:  # newest first: read a growing prefix until it reaches an old (or undated) trace
        records = traces.list(limit=limit)
        fresh = 0
        for record in records:
            if record.started_at is None or record.started_at <= epoch:
                return fresh
            fresh += 1
        if len(records) < limit:
            return fresh
        limit *= 4


# --- the tick ------------------------------------------------------------------------------------------
@dataclass
class DaemonTick:
    """What one evaluation saw, decided and did — the daemon's explanation of itself."""

    at: datetime
    decisions: list[Decision] = field(default_factory=list)
    action: str = "idle"  # started | resumed | blocked | idle | error
    session_id: str | None = None
    session: LearningSession | None = None
    note: str = ""

    def lines(self) -> list[str]:
        head = f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}"
        if self.session_id:
            head += f" session {self.session_id}"
        if self.session is not None:
            head += f" ({self.session.status.value})"
        if self.note:
            head += f": {self.note}"
        return [head, *(f"  {d.line()}" for d in self.decisions)]


def _now() -> datetime:
    return datetime.now(UTC)


def tick(runner: SessionRunner, *, now: datetime, settings: TriggerSettings | None = None) -> DaemonTick:
    """Evaluate every trigger once; start and run at most one session."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    settings = settings or TriggerSettings.load(runner.home)
    with ExitStack() as stack:
        try:
            stack.enter_context(
                exclusive(runner.store.url, runner.state_dir, f"daemon:{runner.home}", "daemon")
            )
        except SessionBusy:
            result = DaemonTick(now, action="blocked", note="another daemon is evaluating this workspace now")
        else:
            result = _tick(runner, now, settings)
    for line in result.lines():
        log.info(line)
    return result


def _tick(runner: SessionRunner, now: datetime, settings: TriggerSettings) -> DaemonTick:
    trigger_log = _load_log(runner)
    rows = runner.index.rows(workspace=str(runner.home))
    active = [r for r in rows if r["status"] in ACTIVE]
    # A firing recorded before a crash, its session never recorded: launch it before anything else.
    for firing in trigger_log.unlaunched() if trigger_log else []:
        if started_for(rows, firing_key(firing.firing_id)) is None and active:
            note = f"{firing.kind} fired at {firing.clock_at}; its session waits: session "
            note += f"{active[0]['session_id']} is active ({active[0]['status']})"
            return DaemonTick(now, action="blocked", session_id=str(active[0]["session_id"]), note=note)
        sid = _launch(runner, firing, rows)
        note = f"{firing.kind} fired at {firing.clock_at} ({firing.reason}); its session is started now"
        return _drive(runner, DaemonTick(now, action="started", session_id=sid, note=note))

    last_epoch = datetime.fromisoformat(rows[0]["started_at"]).timestamp() if rows else None
    recent = runner.traces.list(limit=settings.cluster.window) if settings.cluster.enabled else []
    decisions = [
        evaluate_user_flag(settings, trigger_log.pending_flags() if trigger_log else []),
        evaluate_cluster(settings.cluster, recent, last_epoch),
        *evaluate_scheduled(
            settings,
            now,
            trigger_log.last_slot if trigger_log else (lambda _cron: None),
            new_traces_since(runner.traces, last_epoch) if settings.scheduled.cron else 0,
        ),
    ]
    if active:
        row = active[0]
        sid = str(row["session_id"])
        if trigger_log and sid in trigger_log.launched_session_ids():  # ours, interrupted: finish it
            tick_ = DaemonTick(now, decisions, "resumed", sid, note=f"resuming its session ({row['status']})")
            return _drive(runner, tick_)
        note = f"session {sid} is active ({row['status']}): one session at a time per workspace"
        return DaemonTick(now, deferred(decisions, note), "blocked", sid, note=note)
    waiting = [r for r in rows if r["status"] == SessionStatus.AWAITING_REVIEW]
    if waiting and settings.pause_while_review_pending:
        sid = str(waiting[0]["session_id"])
        note = f"session {sid} awaits review ([triggers] pause_while_review_pending): decide its edits first"
        return DaemonTick(now, deferred(decisions, note), "blocked", sid, note=note)
    chosen = next((d for d in decisions if d.eligible), None)
    if chosen is None:
        return DaemonTick(now, decisions, "idle", note="nothing fired")
    firing_id = uuid4().hex
    chosen = fired(chosen, firing_id)  # the session says why it started, and names its firing
    firing = _write(runner, lambda lg: lg.fire(firing_id=firing_id, decision=chosen, clock_at=now))
    sid = _launch(runner, firing, rows=[])  # a new firing: no session can carry its id yet
    return _drive(runner, DaemonTick(now, settled(decisions, chosen), "started", sid, note=chosen.reason))


def _launch(runner: SessionRunner, firing: TriggerFired, rows: list[dict[str, Any]]) -> str:
    """Start the firing's session (or adopt the one a crashed tick started) and record the link."""
    launch = adopt_or_start(
        rows, firing_key(firing.firing_id), lambda: runner.start(Trigger.model_validate(firing.trigger))
    )
    _write(runner, lambda lg: lg.launched(firing_id=firing.firing_id, session_id=launch.session_id,
                                          adopted=launch.adopted))  # fmt: skip
    return launch.session_id


def _drive(runner: SessionRunner, result: DaemonTick) -> DaemonTick:
    assert result.session_id is not None
    try:
        result.session = runner.run(result.session_id)
    except SessionBusy:
        result.action, result.note = "blocked", f"session {result.session_id} is being run by another process"
    return result


# --- the daemon ----------------------------------------------------------------------------------------
def run_daemon(
    runner: SessionRunner,
    *,
    once: bool,
    clock: Callable[[], datetime] = _now,
    sleep: Callable[[float], None] = time.sleep,
    interval_seconds: float = 60.0,
    settings: TriggerSettings | None = None,
    on_tick: Callable[[DaemonTick], None] | None = None,
    max_ticks: int | None = None,
) -> DaemonTick:
    """Tick now, then every `interval_seconds` (foreground) until `once`, `max_ticks` or Ctrl-C.

    Settings are re-read every tick unless given, so editing `[triggers]` needs no restart. An error
    in one tick (a dirty workspace, an unreachable teacher) is reported in that tick and the daemon
    goes on; with `once` it is raised.
    """
    ticks = 0
    while True:
        try:
            result = tick(runner, now=clock(), settings=settings)
        except DistillError as exc:
            if once:
                raise
            result = DaemonTick(clock(), action="error", note=f"{type(exc).__name__}: {exc}")
            log.warning(inert(result.note))  # no handler configured: Python prints it to stderr as is
        ticks += 1
        if on_tick is not None:
            on_tick(result)
        if once or (max_ticks is not None and ticks >= max_ticks):
            return result
        sleep(interval_seconds)
