"""Each trigger kind's verdict at one tick, pure: settings and facts in, a `Decision` out.

- scheduled: cron slots; a slot fires once, when at least `min_new_traces` traces arrived since the
  workspace's last session;
- cluster: the failure rate over the most recent traces is above a threshold, and some of those
  traces are newer than the last session (old failures already had theirs);
- user_flag: traces flagged with `distill-es flag TRACE_ID`; a flag is consumed by the session it starts.

The settings are read through Protocols (`config.trigger_settings` fits them): the domain imports no
config and no ports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from croniter import croniter

from distill_es.domain.trigger_log.events import TraceFlagged
from distill_es.domain.triggers import ClusterTrigger, ScheduledTrigger
from distill_es.domain.vocabulary import Trigger, TriggerKind


# --- what the rules read -------------------------------------------------------------------------------
class ScheduledRule(Protocol):
    @property
    def cron(self) -> Sequence[str]: ...
    @property
    def min_new_traces(self) -> int: ...
    @property
    def zone(self) -> tzinfo: ...


class ClusterRule(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def threshold(self) -> float: ...
    @property
    def min_traces(self) -> int: ...


class UserFlagRule(Protocol):
    @property
    def enabled(self) -> bool: ...


class TriggerRules(Protocol):
    """`[triggers]` as the rules read it (`config.trigger_settings.TriggerSettings` fits)."""

    @property
    def scheduled(self) -> ScheduledRule: ...
    @property
    def user_flag(self) -> UserFlagRule: ...


class TracePoint(Protocol):
    """A trace as the cluster rule reads it (`ports.TraceRecord` fits)."""

    @property
    def trace_id(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def started_at(self) -> float | None: ...


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
    settings: TriggerRules,
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
    settings: ClusterRule, recent: Sequence[TracePoint], last_session_epoch: float | None
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


def evaluate_user_flag(settings: TriggerRules, pending: list[TraceFlagged]) -> Decision:
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


# --- firing one of them --------------------------------------------------------------------------------
def fired(chosen: Decision, firing_id: str) -> Decision:
    """The chosen decision, fired: its trigger says why the session started, and names the firing (the
    key that reconciles a crash between the firing and its session's start)."""
    assert chosen.trigger is not None
    stamp = {**firing_key(firing_id), "fired_because": chosen.reason}
    if chosen.slot is not None:
        stamp["slot"] = chosen.slot.isoformat()
    stamped = chosen.trigger.model_copy(update={"metadata": {**chosen.trigger.metadata, **stamp}})
    return replace(chosen, trigger=stamped, fired=True)


def firing_key(firing_id: str) -> dict[str, str]:
    """The trigger metadata naming a firing's session: the key that finds a session a crash started
    before the firing's launch was recorded."""
    return {"firing_id": firing_id}


def settled(decisions: list[Decision], chosen: Decision) -> list[Decision]:
    """The tick's decisions once `chosen` fired: every other eligible one says it was deferred."""
    note = f"deferred: {chosen.kind} started this tick's session"
    return [chosen if d.kind == chosen.kind and d.cron == chosen.cron else defer(d, note) for d in decisions]


def defer(decision: Decision, note: str) -> Decision:
    if not decision.eligible:
        return decision
    return replace(decision, reason=f"{decision.reason} — {note}")


def deferred(decisions: list[Decision], note: str) -> list[Decision]:
    return [defer(d, f"not started: {note}") for d in decisions]
