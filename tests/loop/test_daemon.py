"""The daemon: each trigger kind firing and not firing (injected clock), one active session per
workspace, flags consumed once, and crash reconciliation between "fired" and "session started"."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from distill_es.api import Engine
from distill_es.app import daemon as daemon_module
from distill_es.app.daemon import flag_trace, list_flags, run_daemon, tick
from distill_es.config.trigger_settings import ClusterSettings, TriggerSettings
from distill_es.domain.errors import SessionInterrupted, WorkspaceConflict
from distill_es.domain.trigger_log.aggregate import TriggerLog
from distill_es.domain.trigger_log.errors import TraceNotFound
from distill_es.domain.trigger_log.events import TraceFlagged
from distill_es.domain.trigger_log.rules import evaluate_cluster, evaluate_scheduled
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import SessionStatus, TriggerKind
from distill_es.ports import TraceRecord
from distill_es.store.locks import exclusive
from distill_es.store.verify import verify_chain
from tests.loop.conftest import LoopWorld
from tests.loop.scripted import append_traces

AUTO = {"session": {"autonomy_mode": "auto"}}
NOVEMBER_24_0305 = datetime(2026, 11, 24, 3, 5, tzinfo=UTC)


def settings(**tables: Any) -> TriggerSettings:
    return TriggerSettings.from_table(tables)


def decision(result: Any, kind: str) -> Any:
    return next(d for d in result.decisions if d.kind == kind)


# --- scheduled -------------------------------------------------------------------------------------------


def test_scheduled_fires_once_per_slot_and_only_with_enough_new_traces(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    nightly = settings(scheduled={"cron": ["0 3 * * *"], "min_new_traces": 3})

    first = tick(engine, now=NOVEMBER_24_0305, settings=nightly)
    assert first.action == "started" and decision(first, "scheduled").fired
    assert "30 new trace(s)" in decision(first, "scheduled").reason  # no session yet: every trace is new
    view = engine.get(first.session_id)
    assert view.trigger == TriggerKind.SCHEDULED and view.status == SessionStatus.COMPLETED
    assert view.trigger_metadata["cron"] == "0 3 * * *" and view.trigger_metadata["new_trace_count"] == 30
    assert view.trigger_metadata["slot"] == "2026-11-24T03:00:00+00:00"
    assert view.trigger_metadata["fired_because"] == decision(first, "scheduled").reason

    later_that_day = tick(engine, now=NOVEMBER_24_0305 + timedelta(hours=7), settings=nightly)
    assert later_that_day.action == "idle"
    assert "slot 2026-11-24 03:00 UTC already fired" in decision(later_that_day, "scheduled").reason

    next_night = tick(engine, now=NOVEMBER_24_0305 + timedelta(days=1), settings=nightly)
    scheduled = decision(next_night, "scheduled")
    assert next_night.action == "idle" and not scheduled.eligible
    assert "only 0 new trace(s) since the last session (need 3)" in scheduled.reason

    append_traces(loop_world.home, 3, outcome="success")
    caught_up = tick(engine, now=NOVEMBER_24_0305 + timedelta(days=1, hours=2), settings=nightly)
    assert caught_up.action == "started" and decision(caught_up, "scheduled").fired
    assert engine.get(caught_up.session_id).trigger_metadata["new_trace_count"] == 3
    assert len(engine.sessions()) == 2
    engine.close()


def test_cron_slots_are_read_in_the_configured_time_zone() -> None:
    never: Any = lambda _cron: None  # noqa: E731
    now = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # 03:30 in Paris (UTC+1 in November)
    paris = settings(scheduled={"cron": ["0 3 * * *"], "timezone": "Europe/Paris"})
    [due] = evaluate_scheduled(paris, now, never, new_traces=0)
    assert due.eligible and due.slot == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    [utc] = evaluate_scheduled(settings(scheduled={"cron": ["0 3 * * *"]}), now, never, new_traces=0)
    assert utc.slot == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    fired_today: Any = lambda _cron: datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # noqa: E731
    [done] = evaluate_scheduled(paris, now, fired_today, new_traces=0)
    assert not done.eligible and "already fired" in done.reason
    [off] = evaluate_scheduled(settings(), now, never, new_traces=99)
    assert not off.eligible and "no cron expressions" in off.reason


class ListedTraces:
    """A TraceSource of `n` dated traces (plus undated ones), recording the limits it was asked for."""

    def __init__(self, n: int, undated: int = 0) -> None:
        dated = [TraceRecord(trace_id=f"d{i}", started_at=float(i)) for i in range(n, 0, -1)]
        self.records = dated + [TraceRecord(trace_id=f"u{i}") for i in range(undated)]
        self.limits: list[int] = []

    def count(self) -> int:
        return len(self.records)

    def list(self, limit: int = 20, agent: Any = None, outcome: Any = None) -> list[TraceRecord]:
        self.limits.append(limit)
        return self.records[:limit]


@pytest.mark.parametrize(
    ("n", "undated", "epoch", "expected", "limits"),
    [
        (300, 0, 50.0, 250, [64, 256]),  # reads a growing prefix, never the whole store at once
        (300, 0, 290.0, 10, [64]),
        (300, 5, None, 305, []),  # no session yet: every trace is new
        (40, 5, 0.0, 40, [64]),  # undated traces never count as new
    ],
)
def test_new_traces_since(
    n: int, undated: int, epoch: float | None, expected: int, limits: list[int]
) -> None:
    source = ListedTraces(n, undated)
    assert daemon_module.new_traces_since(source, epoch) == expected
    assert source.limits == limits


# --- cluster ---------------------------------------------------------------------------------------------


def _traces(outcomes: str, start: float = 1000.0) -> list[TraceRecord]:
    """Newest first, as a TraceSource lists them: 'f' failure, 's' success, '-' no outcome."""
    names = {"f": "failure", "s": "success", "-": None}
    return [
        TraceRecord(trace_id=f"x{i}", outcome=names[c], started_at=start - i) for i, c in enumerate(outcomes)
    ]


@pytest.mark.parametrize(
    ("outcomes", "last_session", "eligible", "says"),
    [
        ("ffff------", None, False, "only 4 of the 10 most recent traces have an outcome (need 5)"),
        ("ffsssfssss", None, False, "failure rate 30% over the 10 most recent traces with an outcome is not"),
        ("ffffssfffs", None, True, "failure rate 70%"),
        ("ffffssfffs", 1000.0, False, "no trace in the window is newer than the last session"),
        ("ffffssfffs", 999.5, True, "is above 50%"),
    ],
)
def test_cluster_verdicts(outcomes: str, last_session: float | None, eligible: bool, says: str) -> None:
    rule = ClusterSettings(enabled=True, window=10, threshold=0.5, min_traces=5)
    verdict = evaluate_cluster(rule, _traces(outcomes), last_session)
    assert verdict.eligible is eligible and says in verdict.reason
    if eligible:
        assert verdict.trigger is not None and verdict.trigger.kind == TriggerKind.CLUSTER
        assert verdict.trigger.metadata["failure_rate"] == 0.7
        assert verdict.trigger.metadata["trace_ids"] == ["x0", "x1", "x2", "x3", "x6", "x7", "x8"]
    assert not evaluate_cluster(ClusterSettings(), _traces(outcomes), None).eligible  # off by default


def test_cluster_fires_on_new_failures_only(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    rule = settings(cluster={"enabled": True, "window": 10, "threshold": 0.5, "min_traces": 5})
    now = NOVEMBER_24_0305

    first = tick(engine, now=now, settings=rule)  # the demo's recent traces fail 80% of the time
    assert first.action == "started" and decision(first, "cluster").fired
    assert engine.get(first.session_id).trigger_metadata["failure_rate"] == 0.8

    same_failures = tick(engine, now=now, settings=rule)
    assert same_failures.action == "idle"
    assert "already had their session" in decision(same_failures, "cluster").reason

    append_traces(loop_world.home, 10, outcome="success")
    healthy = tick(engine, now=now, settings=rule)
    assert healthy.action == "idle" and "0% " in decision(healthy, "cluster").reason

    failing = append_traces(loop_world.home, 10, outcome="failure", offset=120)
    again = tick(engine, now=now, settings=rule)
    assert again.action == "started" and decision(again, "cluster").fired
    assert engine.get(again.session_id).trigger_metadata["trace_ids"] == failing[::-1]
    engine.close()


# --- user flags ------------------------------------------------------------------------------------------


def test_a_flag_starts_one_session_and_is_consumed_by_it(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    with pytest.raises(TraceNotFound, match="no trace 'nope'"):
        flag_trace(engine, "nope")
    flag = flag_trace(engine, "t003", note="Toronto is not the capital")
    assert flag_trace(engine, "t003").flag_id == flag.flag_id  # pending: flagging again adds nothing
    flag_trace(engine, "t005")

    fired = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert fired.action == "started" and decision(fired, "user_flag").fired
    view = engine.get(fired.session_id)
    assert view.trigger == TriggerKind.USER_FLAG
    assert view.trigger_metadata["trace_id"] == "t003"
    assert view.trigger_metadata["trace_ids"] == ["t003", "t005"]
    assert view.trigger_metadata["notes"] == {"t003": "Toronto is not the capital"}
    flags = list_flags(engine)
    assert {(f.trace_id, f.status, f.session_id) for f in flags} == {
        ("t003", "consumed", fired.session_id),
        ("t005", "consumed", fired.session_id),
    }

    after = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert after.action == "idle" and decision(after, "user_flag").reason == "no trace is flagged"
    assert len(engine.sessions()) == 1

    # Flags are auditable events with a verifiable digest chain.
    log_id = TriggerLog.id_for(str(engine.home))
    events = engine.store.stored_events(log_id)
    assert [e.topic for e in events].count(TraceFlagged.TOPIC) == 2
    count, damage, _ = verify_chain(engine.store, log_id)
    assert count == len(events) and damage == []
    assert all(report.ok for report in engine.verify())
    engine.close()


def test_disabled_user_flags_wait(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")
    result = tick(engine, now=NOVEMBER_24_0305, settings=settings(user_flag={"enabled": False}))
    assert result.action == "idle" and "1 flag(s) wait" in decision(result, "user_flag").reason
    assert [f.status for f in list_flags(engine)] == ["pending"]
    engine.close()


# --- one session at a time --------------------------------------------------------------------------------


def test_nothing_starts_while_a_session_is_active(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    active = engine.start(OnDemandTrigger())  # recorded, not run: initiated is active
    flag_trace(engine, "t003")

    blocked = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert blocked.action == "blocked" and blocked.session_id == active
    user_flag = decision(blocked, "user_flag")
    assert user_flag.eligible and not user_flag.fired
    assert f"session {active} is active (initiated)" in user_flag.reason
    assert [f.status for f in list_flags(engine)] == ["pending"]
    assert [v.id for v in engine.sessions()] == [active]

    engine.run(active)
    started = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert started.action == "started" and started.session_id != active
    engine.close()


def test_a_session_awaiting_review_pauses_the_daemon_unless_configured_not_to(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(session={"autonomy_mode": "manual"})  # every edit waits for a reviewer
    flag_trace(engine, "t003")
    first = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert first.session is not None and first.session.status == SessionStatus.AWAITING_REVIEW
    flag_trace(engine, "t005")

    paused = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert paused.action == "blocked" and "awaits review" in paused.note
    go_on = tick(engine, now=NOVEMBER_24_0305, settings=settings(pause_while_review_pending=False))
    assert go_on.action == "started" and decision(go_on, "user_flag").fired
    engine.close()


def test_the_daemon_resumes_its_own_interrupted_session(
    loop_world: LoopWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")

    def unreachable(_sid: str) -> Any:
        raise SessionInterrupted("the teacher is unreachable")

    monkeypatch.setattr(engine, "run", unreachable)
    with pytest.raises(SessionInterrupted):
        run_daemon(engine, once=True, clock=lambda: NOVEMBER_24_0305, settings=settings())
    monkeypatch.undo()
    [interrupted] = engine.sessions()
    assert interrupted.status == SessionStatus.INITIATED

    resumed = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert resumed.action == "resumed" and resumed.session_id == interrupted.id
    assert resumed.session is not None and resumed.session.status == SessionStatus.COMPLETED
    assert [v.id for v in engine.sessions()] == [interrupted.id]
    engine.close()


def test_a_firing_whose_session_never_started_is_launched_on_the_next_tick(loop_world: LoopWorld) -> None:
    """A dirty workspace refuses the start after the firing was recorded (as a crash would leave it)."""
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")
    config = loop_world.home / "config.toml"
    config.write_text(config.read_text() + "\n# a local change\n")

    ticks: list[Any] = []
    last = run_daemon(engine, once=False, max_ticks=1, clock=lambda: NOVEMBER_24_0305,
                      settings=settings(), on_tick=ticks.append)  # fmt: skip
    assert last.action == "error" and "WorkspaceConflict" in last.note and ticks == [last]
    assert engine.sessions() == []
    assert [f.status for f in list_flags(engine)] == ["consumed"]  # by the recorded firing

    subprocess.run(["git", "-C", str(loop_world.home), "checkout", "--", "config.toml"], check=True)
    someone_else = engine.start(OnDemandTrigger())  # the one-active rule holds for recorded firings too
    waits = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert waits.action == "blocked" and waits.session_id == someone_else
    assert "its session waits" in waits.note
    engine.run(someone_else)

    launched = tick(engine, now=NOVEMBER_24_0305 + timedelta(minutes=1), settings=settings())
    assert launched.action == "started" and "its session is started now" in launched.note
    assert launched.session is not None and launched.session.trigger == TriggerKind.USER_FLAG
    [flag] = list_flags(engine)
    assert flag.session_id == launched.session_id
    assert tick(engine, now=NOVEMBER_24_0305, settings=settings()).action == "idle"
    assert len(engine.sessions()) == 2
    engine.close()


def test_a_session_started_but_not_recorded_is_adopted_not_started_again(
    loop_world: LoopWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")

    def crash(*_args: Any, **_options: Any) -> None:
        raise RuntimeError("killed between the session's start and its record")

    monkeypatch.setattr(TriggerLog, "launched", crash)
    with pytest.raises(RuntimeError):
        tick(engine, now=NOVEMBER_24_0305, settings=settings())
    monkeypatch.undo()
    [orphan] = engine.sessions()

    result = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert result.action == "started" and result.session_id == orphan.id
    assert [v.id for v in engine.sessions()] == [orphan.id]
    trigger_log = daemon_module._load_log(engine)
    assert trigger_log is not None
    [firing] = trigger_log.firings.values()
    assert firing.session_id == orphan.id
    engine.close()


# --- the foreground loop -----------------------------------------------------------------------------------


def test_run_daemon_ticks_on_the_injected_clock_and_explains_itself(loop_world: LoopWorld) -> None:
    engine: Engine = loop_world.engine(**AUTO)
    clock = [NOVEMBER_24_0305 - timedelta(minutes=10)]
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    ticks: list[Any] = []
    nightly = settings(scheduled={"cron": ["0 3 * * *"]})
    # 02:55 is after the 2026-11-23 03:00 slot: it fires at once; 03:05 is the next night's slot.
    run_daemon(engine, once=False, clock=lambda: clock[0], sleep=sleep, interval_seconds=300,
               settings=nightly, on_tick=ticks.append, max_ticks=3)  # fmt: skip
    assert naps == [300, 300]
    assert [t.at for t in ticks] == [NOVEMBER_24_0305 - timedelta(minutes=m) for m in (10, 5, 0)]
    assert [t.action for t in ticks] == ["started", "idle", "started"]
    lines = ticks[1].lines()
    assert lines[0].startswith("2026-11-24 03:00:00 idle")
    assert "  scheduled [0 3 * * *]: no — slot 2026-11-23 03:00 UTC already fired" in "\n".join(lines)
    assert any(line.startswith("  user_flag: no — no trace is flagged") for line in lines)
    engine.close()


def test_an_error_in_once_mode_is_raised(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")
    config = loop_world.home / "config.toml"
    config.write_text(config.read_text() + "\n# a local change\n")
    with pytest.raises(WorkspaceConflict):
        run_daemon(engine, once=True, clock=lambda: NOVEMBER_24_0305, settings=settings())
    engine.close()


def test_a_second_daemon_on_the_same_workspace_starts_nothing(loop_world: LoopWorld) -> None:
    engine = loop_world.engine(**AUTO)
    flag_trace(engine, "t003")
    with exclusive(engine.store.url, engine.state_dir, f"daemon:{engine.home}", "daemon"):
        result = tick(engine, now=NOVEMBER_24_0305, settings=settings())
    assert result.action == "blocked" and "another daemon" in result.note
    assert engine.sessions() == [] and [f.status for f in list_flags(engine)] == ["pending"]
    engine.close()
