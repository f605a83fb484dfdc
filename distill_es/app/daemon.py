"""Triggers that fire: the daemon evaluates `[triggers]` and starts (and runs) sessions.

- scheduled: cron slots; a slot fires once, when at least `min_new_traces` traces arrived since the
  workspace's last session;
- cluster: the failure rate over the most recent traces is above a threshold, and some of those
  traces are newer than the last session (old failures already had theirs);
- user_flag: traces flagged with `distill-es flag TRACE_ID`; a flag is consumed by the session it starts.

Flags, firings and the sessions they launched are events on a per-workspace `TriggerLog` aggregate in
the same store, so every decision that started something is auditable and a crash between "fired"
and "session started" is reconciled on the next tick (the firing id in the session's trigger metadata
is the idempotency key). At most one session is active (initiated…executing) per workspace: the daemon
starts nothing while one is, and resumes it if it was its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from croniter import croniter
from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from distill_es.adapters.terminal_safe import inert
from distill_es.config.trigger_settings import ClusterSettings, TriggerSettings
from distill_es.domain import chain
from distill_es.domain.errors import ConcurrentSessionWrite, DistillError, SessionBusy
from distill_es.domain.session.lifecycle import ACTIVE
from distill_es.domain.triggers import ClusterTrigger, ScheduledTrigger
from distill_es.domain.vocabulary import LearningSession, SessionStatus, Trigger, TriggerKind, Value
from distill_es.ports import TraceRecord, TraceSource
from distill_es.store.locks import exclusive

if TYPE_CHECKING:
    from distill_es.ports import SessionRunner as Engine

log = logging.getLogger("distill_es.daemon")
WRITE_ATTEMPTS = 5


class TraceNotFound(DistillError):
    pass


# --- the trigger log: flags, firings, launches --------------------------------------------------------
class TriggerLogEvent(chain.ChainedEvent):
    """Base of every non-initial TriggerLog event."""


class TriggerLogOpened(Aggregate.Created):
    TOPIC: ClassVar[str] = "distill_es.TriggerLogOpened.v1"
    digest: str
    workspace: str

    def apply(self, aggregate: Any) -> None:
        aggregate.evolve(self)


register_topic(TriggerLogOpened.TOPIC, TriggerLogOpened)


class TraceFlagged(TriggerLogEvent):
    TOPIC = "distill_es.TraceFlagged.v1"
    flag_id: str
    trace_id: str
    note: str
    flagged_by: str


class TriggerFired(TriggerLogEvent):
    """Intent: this trigger fired (consuming its flags or cron slot); its session starts next."""

    TOPIC = "distill_es.TriggerFired.v1"
    firing_id: str
    kind: str
    reason: str
    clock_at: str  # the daemon's clock when it decided (ISO 8601), which tests inject
    trigger: dict[str, Any]
    flag_ids: list[str]
    cron: str | None
    slot: str | None  # the cron slot this firing used up (ISO 8601, UTC)


class SessionLaunched(TriggerLogEvent):
    TOPIC = "distill_es.SessionLaunched.v1"
    firing_id: str
    session_id: str
    adopted: bool  # found already started after a crash


@dataclass
class _Flag:
    event: TraceFlagged
    firing_id: str | None = None


@dataclass
class _Firing:
    event: TriggerFired
    session_id: str | None = None


class Flag(Value):
    flag_id: str
    trace_id: str
    note: str = ""
    flagged_by: str = ""
    flagged_at: datetime
    status: str  # pending | consumed
    firing_id: str | None = None
    session_id: str | None = None


class TriggerLog(chain.ChainedRecording, Aggregate):
    """One per workspace; its id is derived from the workspace path."""

    @staticmethod
    def id_for(workspace: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"distill_es:trigger-log:{workspace}")

    @classmethod
    def open(cls, workspace: str) -> TriggerLog:
        return cls._create_chained(TriggerLogOpened, cls.id_for(workspace), workspace=workspace)

    def __init__(self) -> None:
        pass

    # --- commands ----------------------------------------------------------------------------------
    def flag(self, *, trace_id: str, note: str, flagged_by: str) -> str:
        """Flag a trace; an unconsumed flag on the same trace is returned instead of a second one."""
        for existing in self.flags.values():
            if existing.event.trace_id == trace_id and existing.firing_id is None:
                return existing.event.flag_id
        flag_id = uuid4().hex[:12]
        self._record(TraceFlagged, flag_id=flag_id, trace_id=trace_id, note=note, flagged_by=flagged_by)
        return flag_id

    def fire(self, *, firing_id: str, decision: Decision, clock_at: datetime) -> TriggerFired:
        if firing_id in self.firings:
            raise DistillError(f"firing {firing_id} is already recorded")
        consumed = [f for f in decision.flag_ids if self.flags.get(f) is None or self.flags[f].firing_id]
        if consumed:
            raise DistillError(f"flags {', '.join(consumed)} are no longer pending")
        assert decision.trigger is not None
        self._record(
            TriggerFired,
            firing_id=firing_id,
            kind=decision.kind,
            reason=decision.reason,
            clock_at=clock_at.isoformat(),
            trigger=decision.trigger.model_dump(mode="json"),
            flag_ids=list(decision.flag_ids),
            cron=decision.cron,
            slot=decision.slot.isoformat() if decision.slot else None,
        )
        return self.firings[firing_id].event

    def launched(self, *, firing_id: str, session_id: str, adopted: bool) -> None:
        firing = self.firings.get(firing_id)
        if firing is None or firing.session_id is not None:
            raise DistillError(f"firing {firing_id} is unknown or already has its session")
        self._record(SessionLaunched, firing_id=firing_id, session_id=session_id, adopted=adopted)

    # --- reads -------------------------------------------------------------------------------------
    def pending_flags(self) -> list[TraceFlagged]:
        return [f.event for f in self.flags.values() if f.firing_id is None]

    def unlaunched(self) -> list[TriggerFired]:
        return [f.event for f in self.firings.values() if f.session_id is None]

    def launched_session_ids(self) -> set[str]:
        return {f.session_id for f in self.firings.values() if f.session_id}

    def last_slot(self, cron: str) -> datetime | None:
        slots = [f.event.slot for f in self.firings.values() if f.event.cron == cron and f.event.slot]
        return max(datetime.fromisoformat(s) for s in slots) if slots else None

    def flag_views(self) -> list[Flag]:
        views = []
        for f in self.flags.values():
            firing = self.firings.get(f.firing_id) if f.firing_id else None
            views.append(
                Flag(
                    flag_id=f.event.flag_id,
                    trace_id=f.event.trace_id,
                    note=f.event.note,
                    flagged_by=f.event.flagged_by,
                    flagged_at=f.event.timestamp,
                    status="consumed" if f.firing_id else "pending",
                    firing_id=f.firing_id,
                    session_id=firing.session_id if firing else None,
                )
            )
        return views

    # --- evolve: assignments only -----------------------------------------------------------------
    @singledispatchmethod
    def evolve(self, event: Any) -> None:
        raise DistillError(f"no evolve rule for {type(event).__name__} on a trigger log")

    @evolve.register
    def _(self, e: TriggerLogOpened) -> None:
        self.workspace = e.workspace
        self.flags: dict[str, _Flag] = {}
        self.firings: dict[str, _Firing] = {}
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: TraceFlagged) -> None:
        self.flags[e.flag_id] = _Flag(e)
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: TriggerFired) -> None:
        self.firings[e.firing_id] = _Firing(e)
        for flag_id in e.flag_ids:
            self.flags[flag_id].firing_id = e.firing_id
        self.last_digest = e.digest

    @evolve.register
    def _(self, e: SessionLaunched) -> None:
        self.firings[e.firing_id].session_id = e.session_id
        self.last_digest = e.digest


TriggerLog.TOPIC = "distill_es.TriggerLog"
register_topic(TriggerLog.TOPIC, TriggerLog)


def _load_log(engine: Engine) -> TriggerLog | None:
    found = engine.store.find(TriggerLog.id_for(str(engine.home)))
    return found if isinstance(found, TriggerLog) else None


def _write(engine: Engine, command: Callable[[TriggerLog], Any]) -> Any:
    """Load (or open) the log, run the command, save; retry when another process wrote in between."""
    for attempt in range(WRITE_ATTEMPTS):
        trigger_log = _load_log(engine) or TriggerLog.open(str(engine.home))
        result = command(trigger_log)
        try:
            engine.store.save(trigger_log)  # type: ignore[arg-type]  # the store takes any aggregate
            return result
        except ConcurrentSessionWrite:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    return None  # unreachable


# --- flags ---------------------------------------------------------------------------------------------
def flag_trace(engine: Engine, trace_id: str, *, note: str = "", flagged_by: str = "user") -> Flag:
    """Flag a trace for the next user_flag session (idempotent while the flag is pending)."""
    if engine.traces.get(trace_id) is None:
        raise TraceNotFound(f"no trace {trace_id!r} in {engine.home}'s traces")
    flag_id = _write(engine, lambda lg: lg.flag(trace_id=trace_id, note=note, flagged_by=flagged_by))
    return next(f for f in list_flags(engine) if f.flag_id == flag_id)


def list_flags(engine: Engine) -> list[Flag]:
    trigger_log = _load_log(engine)
    return trigger_log.flag_views() if trigger_log else []


# --- decisions -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """One trigger's verdict at one tick: whether its conditions hold, and why (or why not)."""

    kind: str  # scheduled | cluster | user_flag
    eligible: bool  # its conditions hold
    reason: str
    trigger: Trigger | None = None
    cron: str | None = None
    slot: datetime | None = None
    flag_ids: tuple[str, ...] = ()
    fired: bool = False  # it started this tick's session

    def line(self) -> str:
        name = f"{self.kind} [{self.cron}]" if self.cron else self.kind
        verdict = "FIRED" if self.fired else ("eligible" if self.eligible else "no")
        return f"{name}: {verdict} — {self.reason}"


def evaluate_scheduled(
    settings: TriggerSettings,
    now: datetime,
    last_slot: Callable[[str], datetime | None],
    new_traces: int,
) -> list[Decision]:
    scheduled = settings.scheduled
    if not scheduled.cron:
        return [Decision("scheduled", False, "no cron expressions in [triggers.scheduled]")]
    decisions = []
    local_now = now.astimezone(scheduled.zone)
    for expression in scheduled.cron:
        slot = croniter(expression, local_now).get_prev(datetime).astimezone(UTC)
        upcoming = croniter(expression, local_now).get_next(datetime).astimezone(UTC)
        fired = last_slot(expression)
        if fired is not None and slot <= fired:
            reason = f"slot {slot:%Y-%m-%d %H:%M} UTC already fired; next slot {upcoming:%Y-%m-%d %H:%M} UTC"
            decisions.append(Decision("scheduled", False, reason, cron=expression))
        elif new_traces < scheduled.min_new_traces:
            reason = (
                f"slot {slot:%Y-%m-%d %H:%M} UTC is due, but only {new_traces} new trace(s) since the last "
                f"session (need {scheduled.min_new_traces})"
            )
            decisions.append(Decision("scheduled", False, reason, cron=expression))
        else:
            trigger = ScheduledTrigger(cron=expression, new_trace_count=new_traces)
            reason = (
                f"slot {slot:%Y-%m-%d %H:%M} UTC is due; {new_traces} new trace(s) since the last session"
            )
            decisions.append(Decision("scheduled", True, reason, trigger, cron=expression, slot=slot))
    return decisions


def evaluate_cluster(
    settings: ClusterSettings, recent: list[TraceRecord], last_session_epoch: float | None
) -> Decision:
    if not settings.enabled:
        return Decision("cluster", False, "disabled ([triggers.cluster] enabled = false)")
    labelled = [r for r in recent if r.outcome in ("success", "failure")]
    if len(labelled) < settings.min_traces:
        return Decision(
            "cluster", False, f"only {len(labelled)} of the {len(recent)} most recent traces have an outcome "
            f"(need {settings.min_traces})",
        )  # fmt: skip
    failures = [r for r in labelled if r.outcome == "failure"]
    rate = len(failures) / len(labelled)
    measured = f"failure rate {rate:.0%} over the {len(labelled)} most recent traces with an outcome"
    if rate <= settings.threshold:
        return Decision("cluster", False, f"{measured} is not above {settings.threshold:.0%}")
    if last_session_epoch is not None and not any(
        r.started_at is not None and r.started_at > last_session_epoch for r in recent
    ):
        return Decision(
            "cluster", False, f"{measured} is above {settings.threshold:.0%}, but no trace in the window is "
            "newer than the last session: those failures already had their session",
        )  # fmt: skip
    trigger = ClusterTrigger(
        cluster_description=measured,
        trace_ids=[r.trace_id for r in failures][:100],
        failure_rate=round(rate, 4),
    )
    return Decision("cluster", True, f"{measured} is above {settings.threshold:.0%}", trigger)


def evaluate_user_flag(settings: TriggerSettings, pending: list[TraceFlagged]) -> Decision:
    if not pending:
        return Decision("user_flag", False, "no trace is flagged")
    if not settings.user_flag.enabled:
        return Decision(
            "user_flag",
            False,
            f"disabled ([triggers.user_flag] enabled = false); {len(pending)} flag(s) wait",
        )
    traces = [f.trace_id for f in pending]
    trigger = Trigger(
        kind=TriggerKind.USER_FLAG,
        metadata={
            "trace_id": traces[0],  # UserFlagTrigger's field; all of them below
            "trace_ids": traces,
            "flag_ids": [f.flag_id for f in pending],
            "notes": {f.trace_id: f.note for f in pending if f.note},
        },
    )
    reason = f"{len(pending)} flagged trace(s): {', '.join(traces[:5])}" + (" …" if len(traces) > 5 else "")
    return Decision("user_flag", True, reason, trigger, flag_ids=tuple(f.flag_id for f in pending))


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


def tick(engine: Engine, *, now: datetime, settings: TriggerSettings | None = None) -> DaemonTick:
    """Evaluate every trigger once; start and run at most one session."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    settings = settings or TriggerSettings.load(engine.home)
    with ExitStack() as stack:
        try:
            stack.enter_context(
                exclusive(engine.store.url, engine.state_dir, f"daemon:{engine.home}", "daemon")
            )
        except SessionBusy:
            result = DaemonTick(now, action="blocked", note="another daemon is evaluating this workspace now")
        else:
            result = _tick(engine, now, settings)
    for line in result.lines():
        log.info(line)
    return result


def _tick(engine: Engine, now: datetime, settings: TriggerSettings) -> DaemonTick:
    trigger_log = _load_log(engine)
    rows = engine.index.rows(workspace=str(engine.home))
    active = [r for r in rows if r["status"] in ACTIVE]
    # A firing recorded before a crash, its session never recorded: launch it before anything else.
    for firing in trigger_log.unlaunched() if trigger_log else []:
        adopted = _session_of(rows, firing.firing_id)
        if adopted is None and active:
            note = f"{firing.kind} fired at {firing.clock_at}; its session waits: session "
            note += f"{active[0]['session_id']} is active ({active[0]['status']})"
            return DaemonTick(now, action="blocked", session_id=str(active[0]["session_id"]), note=note)
        sid = _launch(engine, firing, adopted)
        note = f"{firing.kind} fired at {firing.clock_at} ({firing.reason}); its session is started now"
        return _drive(engine, DaemonTick(now, action="started", session_id=sid, note=note))

    last_epoch = datetime.fromisoformat(rows[0]["started_at"]).timestamp() if rows else None
    recent = engine.traces.list(limit=settings.cluster.window) if settings.cluster.enabled else []
    decisions = [
        evaluate_user_flag(settings, trigger_log.pending_flags() if trigger_log else []),
        evaluate_cluster(settings.cluster, recent, last_epoch),
        *evaluate_scheduled(
            settings,
            now,
            trigger_log.last_slot if trigger_log else (lambda _cron: None),
            new_traces_since(engine.traces, last_epoch) if settings.scheduled.cron else 0,
        ),
    ]
    if active:
        row = active[0]
        sid = str(row["session_id"])
        if trigger_log and sid in trigger_log.launched_session_ids():  # ours, interrupted: finish it
            tick_ = DaemonTick(now, decisions, "resumed", sid, note=f"resuming its session ({row['status']})")
            return _drive(engine, tick_)
        note = f"session {sid} is active ({row['status']}): one session at a time per workspace"
        return DaemonTick(now, _deferred(decisions, note), "blocked", sid, note=note)
    waiting = [r for r in rows if r["status"] == SessionStatus.AWAITING_REVIEW]
    if waiting and settings.pause_while_review_pending:
        sid = str(waiting[0]["session_id"])
        note = f"session {sid} awaits review ([triggers] pause_while_review_pending): decide its edits first"
        return DaemonTick(now, _deferred(decisions, note), "blocked", sid, note=note)
    chosen = next((d for d in decisions if d.eligible), None)
    if chosen is None:
        return DaemonTick(now, decisions, "idle", note="nothing fired")
    firing_id = uuid4().hex
    assert chosen.trigger is not None
    # The session says why it started; the firing id is also the key that reconciles a crash.
    stamp = {"firing_id": firing_id, "fired_because": chosen.reason}
    if chosen.slot is not None:
        stamp["slot"] = chosen.slot.isoformat()
    stamped = chosen.trigger.model_copy(update={"metadata": {**chosen.trigger.metadata, **stamp}})
    chosen = replace(chosen, trigger=stamped, fired=True)
    firing = _write(engine, lambda lg: lg.fire(firing_id=firing_id, decision=chosen, clock_at=now))
    sid = _launch(engine, firing, adopted=None)
    note = f"deferred: {chosen.kind} started this tick's session"
    decisions = [
        chosen if d.kind == chosen.kind and d.cron == chosen.cron else _defer(d, note) for d in decisions
    ]
    return _drive(engine, DaemonTick(now, decisions, "started", sid, note=chosen.reason))


def _defer(decision: Decision, note: str) -> Decision:
    if not decision.eligible:
        return decision
    return replace(decision, reason=f"{decision.reason} — {note}")


def _deferred(decisions: list[Decision], note: str) -> list[Decision]:
    return [_defer(d, f"not started: {note}") for d in decisions]


def _session_of(rows: list[dict[str, Any]], firing_id: str) -> str | None:
    """The session a crashed tick started for this firing (its trigger metadata names the firing)."""
    for row in rows:
        if (row.get("trigger_metadata") or {}).get("firing_id") == firing_id:
            return str(row["session_id"])
    return None


def _launch(engine: Engine, firing: TriggerFired, adopted: str | None) -> str:
    """Start the firing's session (or adopt the one a crashed tick started) and record the link."""
    sid = adopted or engine.start(Trigger.model_validate(firing.trigger))
    _write(engine, lambda lg: lg.launched(firing_id=firing.firing_id, session_id=sid, adopted=bool(adopted)))
    return sid


def _drive(engine: Engine, result: DaemonTick) -> DaemonTick:
    assert result.session_id is not None
    try:
        result.session = engine.run(result.session_id)
    except SessionBusy:
        result.action, result.note = "blocked", f"session {result.session_id} is being run by another process"
    return result


# --- the daemon ----------------------------------------------------------------------------------------
def run_daemon(
    engine: Engine,
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
            result = tick(engine, now=clock(), settings=settings)
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
