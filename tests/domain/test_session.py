"""The session aggregate: commands ask the lifecycle and record; evolve only assigns; the view reads.

Also the storage-facing contract of a session: optimistic concurrency (`ConcurrentSessionWrite`) and
reading a v1 `SessionFailed` written before `reason_code` existed.
"""

from __future__ import annotations

import json
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from distill_es.config.settings import Settings
from distill_es.domain import chain
from distill_es.domain.errors import ConcurrentSessionWrite, DistillError, GuardRejected, IllegalTransition
from distill_es.domain.session import events as ev
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.triggers import OnDemandTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    Edit,
    EditOp,
    EditPillar,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    SessionStatus,
)
from distill_es.store.app import EventStore
from distill_es.store.verify import verify_session
from distill_es.testing.machine import session_state

SHA = {name: name[0] * 40 for name in ("apple", "bread", "cider", "dough", "eagle", "fjord", "grape")}
CLUSTER = FailureCluster(
    id="c-math", description="arithmetic", student_failure_rate=0.6, teacher_success_rate=1.0
)
AUTO_EDIT = Edit(
    id="e-route",
    pillar=EditPillar.INTELLIGENCE,
    op=EditOp.SET_MODEL_FOR_QUERY_CLASS,
    payload={"query_class": "math", "model": "qwen2.5-math"},
    expected_improvement="c-math",
    risk_tier=EditRiskTier.AUTO,
)
REVIEW_EDIT = Edit(
    id="e-prompt",
    pillar=EditPillar.AGENT,
    op=EditOp.REPLACE_SYSTEM_PROMPT,
    payload={"agent": "helper", "new_content": "Show your working."},
    expected_improvement="c-math",
    risk_tier=EditRiskTier.REVIEW,
)


def snapshot(score: float, tree: str | None = None) -> BenchmarkSnapshot:
    return BenchmarkSnapshot(
        benchmark_version="personal_v1", overall_score=score, task_count=4, tree_sha=tree
    )


def new_session(**overrides: Any) -> Session:
    options = {
        "trigger": OnDemandTrigger({"requested_by": "alice"}),
        "autonomy_mode": AutonomyMode.TIERED,
        "settings": Settings().model_dump(mode="json"),
        "workspace": "/home/alice/agent",
    }
    return Session.start(**{**options, **overrides})


def to_executing(session: Session, edits: list[Edit]) -> Session:
    session.check_readiness(trace_count=30, min_traces=20, git_head=SHA["apple"], git_tree=SHA["bread"])
    session.begin_diagnosis()
    session.record_teacher_call(
        call_key="diagnose/1",
        purpose="diagnose",
        model="claude-opus-4-6",
        request_digest="d" * 64,
        response={"content": [{"type": "tool_use", "id": "toolu_1", "name": "list_traces", "input": {}}]},
        usage={"input_tokens": 1200, "output_tokens": 300},
        cost_usd=0.25,
    )
    session.record_tool_result(
        call_key="diagnose/1", tool_use_id="toolu_1", tool="list_traces", content="[...]", is_error=False
    )
    session.submit_diagnosis(markdown="# Arithmetic is weak", clusters=[CLUSTER])
    session.record_teacher_call(
        call_key="plan",
        purpose="plan",
        model="claude-opus-4-6",
        request_digest="e" * 64,
        response={"content": []},
        usage={"input_tokens": 900, "output_tokens": 500},
        cost_usd=0.5,
    )
    plan = LearningPlan(session_id=str(session.id), failure_clusters=[CLUSTER], edits=edits)
    session.freeze_plan(plan=plan, rejected=[], tier_changes=[], downgrades=[])
    return session


def apply_and_gate(session: Session, edit_id: str, *, accepted: bool, pre: str, post: str) -> None:
    session.validate_edit(edit_id=edit_id, ok=True, reason="")
    session.start_apply(edit_id=edit_id, pre_sha=SHA[pre], pre_tree=SHA[pre])
    session.record_apply(
        edit_id=edit_id, commit_sha=SHA[post], tree_sha=SHA[post], changed_files=["config.toml"]
    )
    session.record_gate(
        edit_id=edit_id,
        before=snapshot(0.5, SHA[pre]),
        after=snapshot(0.75 if accepted else 0.25, SHA[post]),
        delta=0.25 if accepted else -0.25,
        cluster_deltas={"c-math": 0.5 if accepted else -0.5},
        accepted=accepted,
        reason="" if accepted else "regressed",
    )


def replay(events: list[Any]) -> Session:
    session: Any = None
    for event in events:
        session = event.mutate(session)
    return session


# --- commands and evolve ----------------------------------------------------------------------------


def test_a_new_session_is_initiated_and_holds_only_its_start() -> None:
    session = new_session(trigger=UserFlagTrigger("trace-42"), autonomy_mode=AutonomyMode.MANUAL)
    [started] = session.pending_events
    assert isinstance(started, ev.SessionStarted)
    assert (session.version, session.status) == (1, SessionStatus.INITIATED)
    assert started.digest == session.last_digest
    view = session.view()
    assert (view.status, view.trigger, view.trigger_metadata) == (
        "initiated",
        "user_flag",
        {"trace_id": "trace-42"},
    )
    assert (view.autonomy_mode, view.version, view.ended_at, view.edit_outcomes) == ("manual", 1, None, [])
    assert session.legal_commands() == [
        "begin_diagnosis",
        "cancel",
        "check_readiness",
        "fail",
        "record_interruption",
    ]


def test_a_whole_session_through_review_to_completion() -> None:
    session = to_executing(new_session(), [AUTO_EDIT, REVIEW_EDIT])
    assert session.status == "executing" and list(session.edits) == ["e-route", "e-prompt"]

    session.route_edit(edit_id="e-route", route="apply")
    session.choose_gate_tasks(seed=7, task_ids=["t1", "t2"])
    session.capture_benchmark(label="before", snapshot=snapshot(0.5, SHA["apple"]))
    apply_and_gate(session, "e-route", accepted=True, pre="apple", post="cider")
    session.route_edit(edit_id="e-prompt", route="review", preview="- old\n+ Show your working.")
    assert session.pending_edit_ids() == ["e-prompt"]
    session.await_review(git_post=SHA["cider"])
    assert session.status == "awaiting_review"
    assert session.view().pending_edit_ids == ["e-prompt"]

    session.approve_edit(edit_id="e-prompt", reviewer="bob", note="fine")
    assert session.status == "executing" and session.approved_unapplied_ids() == ["e-prompt"]
    apply_and_gate(session, "e-prompt", accepted=False, pre="cider", post="dough")
    session.revert_edit(edit_id="e-prompt", revert_sha=SHA["eagle"], tree_sha=SHA["cider"])
    session.capture_benchmark(label="after", snapshot=snapshot(0.75, SHA["cider"]))
    session.complete(git_post=SHA["eagle"])

    view = session.view()
    assert view.status == "completed" and view.ended_at is not None
    assert {o.edit_id: o.status for o in view.edit_outcomes} == {
        "e-route": "applied",
        "e-prompt": "rejected_by_gate",
    }
    route_outcome = next(o for o in view.edit_outcomes if o.edit_id == "e-route")
    assert (route_outcome.benchmark_delta, route_outcome.cluster_deltas) == (0.25, {"c-math": 0.5})
    assert route_outcome.commit_sha == SHA["cider"] and route_outcome.applied_at is not None
    assert (view.git_checkpoint_pre, view.git_checkpoint_post) == (SHA["apple"], SHA["eagle"])
    assert view.teacher_cost_usd == 0.75
    assert (view.benchmark_before.overall_score, view.benchmark_after.overall_score) == (0.5, 0.75)
    assert view.version == session.version == len(session.pending_events)
    assert session.legal_commands() == ["request_rollback", "roll_back", "roll_back_edit"]

    session.request_rollback(requested_by="carol")
    with pytest.raises(GuardRejected, match="applied edits are not reverted yet"):
        session.roll_back(git_post=None)
    session.roll_back_edit(edit_id="e-route", revert_sha=SHA["fjord"])
    session.roll_back(git_post=SHA["fjord"])
    assert session.status == "rolled_back" and session.legal_commands() == []
    assert {o.edit_id: o.status for o in session.view().edit_outcomes}["e-route"] == "rolled_back"
    assert session.pending_events[-1].reverted_edit_ids == ["e-route"]


def test_every_event_chains_to_the_one_before() -> None:
    session = to_executing(new_session(), [AUTO_EDIT])
    previous = chain.genesis_digest(str(session.id))
    for event in session.pending_events:
        payload = {k: v for k, v in vars(event).items() if k not in {"originator_id", "originator_version"}}
        payload = {k: v for k, v in payload.items() if k not in chain.ENVELOPE_KEYS}
        expected = chain.chain_digest(
            previous, event.TOPIC, event.originator_version, event.timestamp, payload
        )
        assert event.digest == expected
        previous = event.digest
    assert session.last_digest == previous


def test_replay_reproduces_the_live_state_without_asking_the_lifecycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = to_executing(new_session(), [AUTO_EDIT, REVIEW_EDIT])
    session.route_edit(edit_id="e-prompt", route="review", preview="diff")
    events = list(session.pending_events)

    def no_deciding(*args: object, **kwargs: object) -> None:
        raise AssertionError("replay consulted the lifecycle")

    monkeypatch.setattr(lifecycle, "decide", no_deciding)  # evolve must not decide anything
    rebuilt = replay(events)
    assert session_state(rebuilt) == session_state(session)
    assert rebuilt.view() == session.view()
    assert session_state(replay(events)) == session_state(rebuilt)  # and it is repeatable


@pytest.mark.parametrize("reviewer", ["bob", ""])
def test_approving_on_a_completed_session_is_illegal_and_records_nothing(reviewer: str) -> None:
    session = to_executing(new_session(), [])
    session.complete(git_post=None)
    version, pending = session.version, len(session.pending_events)
    for command, kwargs in [
        ("approve_edit", {"edit_id": "e-route", "reviewer": reviewer}),
        ("reject_edit", {"edit_id": "e-route", "reviewer": reviewer, "reason": "no"}),
    ]:
        with pytest.raises(IllegalTransition) as caught:
            getattr(session, command)(**kwargs)
        assert type(caught.value) is IllegalTransition
        message = str(caught.value)
        assert f"'{command}'" in message and "'completed'" in message and str(session.id) in message
        assert "request_rollback, roll_back, roll_back_edit" in message
    assert (session.version, len(session.pending_events)) == (version, pending)


@pytest.mark.parametrize(
    ("setup", "attempt", "error", "message"),
    [
        ("cold", lambda s: s.begin_diagnosis(), GuardRejected, "readiness has not been established"),
        ("diagnosing", lambda s: s.submit_diagnosis(markdown="#", clusters=[]), GuardRejected, "no clusters"),
        (
            "diagnosing",
            lambda s: s.record_tool_result(
                call_key="nope", tool_use_id="t", tool="x", content="", is_error=False
            ),
            DistillError,
            "no diagnose turn 'nope'",
        ),
        (
            "executing",
            lambda s: s.route_edit(edit_id="e-ghost", route="apply"),
            DistillError,
            "no edit 'e-ghost'",
        ),
        (
            "executing",
            lambda s: s.record_apply(edit_id="e-route", commit_sha="c", tree_sha="t", changed_files=[]),
            DistillError,
            "without a recorded intent",
        ),
        ("executing", lambda s: s.await_review(git_post=None), GuardRejected, "no edit is pending review"),
        (
            "executing",
            lambda s: s.record_teacher_call(
                call_key="plan",
                purpose="plan",
                model="m",
                request_digest="x",
                response={},
                usage={},
                cost_usd=0.0,
            ),
            DistillError,
            "already recorded",
        ),
        (
            "review",
            lambda s: s.reject_edit(edit_id="e-prompt", reviewer="bob", reason=" "),
            DistillError,
            "reason",
        ),
        (
            "review",
            lambda s: s.approve_edit(edit_id="e-prompt", reviewer=" "),
            DistillError,
            "reviewer's name",
        ),
        ("review", lambda s: s.approve_edit(edit_id="e-route", reviewer="bob"), GuardRejected, "not pending"),
    ],
)
def test_refused_commands_append_nothing_and_change_nothing(
    setup: str, attempt, error: type, message: str
) -> None:
    session = new_session()
    if setup == "cold":
        session.check_readiness(trace_count=3, min_traces=20, git_head=None, git_tree=None)
    elif setup == "diagnosing":
        session.check_readiness(trace_count=30, min_traces=20, git_head=None, git_tree=None)
        session.begin_diagnosis()
    else:
        to_executing(session, [AUTO_EDIT, REVIEW_EDIT])
        if setup == "review":
            session.route_edit(edit_id="e-prompt", route="review", preview="diff")
            session.await_review(git_post=None)
    before, pending = session_state(session), len(session.pending_events)
    with pytest.raises(error, match=message):
        attempt(session)
    assert len(session.pending_events) == pending and session.version == pending
    assert session_state(session) == before


@pytest.mark.parametrize(
    "attempt",
    [
        lambda s: s.start_apply(edit_id="e-prompt", pre_sha=SHA["apple"], pre_tree=SHA["bread"]),
        lambda s: s.validate_edit(edit_id="e-prompt", ok=False, reason="looked at it early"),
        lambda s: s.skip_edit(edit_id="e-prompt", reason="never mind"),
        lambda s: s.record_training(
            edit_id="e-prompt", run_id="r1", state="completed", deployable=True, summary=""
        ),
    ],
)
def test_an_edit_waiting_for_a_reviewer_is_not_worked_on(attempt) -> None:
    # Found by SessionMachineTest: an unapproved edit could be applied, or leave the review queue
    # behind the index's back by being skipped or failed before anyone decided it.
    session = to_executing(new_session(), [AUTO_EDIT, REVIEW_EDIT])
    session.route_edit(edit_id="e-prompt", route="review", preview="diff")
    pending = len(session.pending_events)
    with pytest.raises(DistillError, match=r"'e-prompt' .* is waiting for a reviewer's decision"):
        attempt(session)
    assert len(session.pending_events) == pending and session.pending_edit_ids() == ["e-prompt"]
    session.route_edit(edit_id="e-route", route="apply")
    session.validate_edit(edit_id="e-route", ok=True, reason="")  # edits not waiting go on as before
    session.await_review(git_post=None)
    session.approve_edit(edit_id="e-prompt", reviewer="bob")
    session.validate_edit(edit_id="e-prompt", ok=True, reason="")  # now it may (validated, as every edit)
    session.start_apply(edit_id="e-prompt", pre_sha=SHA["apple"], pre_tree=SHA["bread"])


def test_an_edit_is_routed_before_anything_else_happens_to_it() -> None:
    session = to_executing(new_session(), [REVIEW_EDIT])
    with pytest.raises(DistillError, match=r"'e-prompt' .* has not been routed yet"):
        session.start_apply(edit_id="e-prompt", pre_sha=SHA["apple"], pre_tree=SHA["bread"])
    session.route_edit(edit_id="e-prompt", route="review", preview="diff")
    assert session.pending_edit_ids() == ["e-prompt"]  # a reviewer decides it, not an earlier apply


def test_rejecting_the_last_pending_edit_completes_the_session() -> None:
    second = REVIEW_EDIT.model_copy(update={"id": "e-prompt-2"})
    session = to_executing(new_session(autonomy_mode=AutonomyMode.MANUAL), [REVIEW_EDIT, second])
    session.route_edit(edit_id="e-prompt", route="review", preview="a")
    session.route_edit(edit_id="e-prompt-2", route="review", preview="b")
    session.await_review(git_post=None)

    session.reject_edit(edit_id="e-prompt", reviewer="bob", reason="too long")
    assert session.status == "executing"  # another edit still waits: the engine goes on, then rests again
    session.await_review(git_post=None)
    session.reject_edit(edit_id="e-prompt-2", reviewer="bob", reason="same")
    assert session.status == "completed"
    assert isinstance(session.pending_events[-1], ev.SessionCompleted)
    assert [o.status for o in session.view().edit_outcomes] == ["rejected_by_user", "rejected_by_user"]
    assert session.view().edit_outcomes[0].error == "rejected by bob: too long"


def test_a_failed_session_says_why() -> None:
    session = new_session()
    session.check_readiness(trace_count=3, min_traces=20, git_head=None, git_tree=None)
    session.fail(error="not enough traces to learn from: have 3, need at least 20", reason_code="cold_start")
    view = session.view()
    assert (view.status, session.reason_code) == ("failed", "cold_start")
    assert view.error.startswith("not enough traces") and view.ended_at is not None


# --- optimistic concurrency ------------------------------------------------------------------------


def test_a_second_writer_from_the_same_version_conflicts_and_stores_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    store, other = EventStore(url), EventStore(url)
    try:
        session = to_executing(new_session(), [AUTO_EDIT])
        store.save(session)
        mine, theirs = store.load(session.id), other.load(session.id)
        loaded_at = mine.version

        mine.route_edit(edit_id="e-route", route="apply")
        store.save(mine)
        theirs.route_edit(edit_id="e-route", route="review", preview="we got here first")
        theirs.fail(error="gave up", reason_code="error")
        with pytest.raises(ConcurrentSessionWrite) as caught:
            other.save(theirs)
        message = str(caught.value)
        assert str(session.id) in message and f"from version {loaded_at + 1}" in message
        assert "reload" in message

        stored = store.domain_events(session.id)
        assert [type(e).__name__ for e in stored[loaded_at:]] == ["EditRouted"]
        assert store.load(session.id).status == "executing"

        retry = other.load(session.id)  # reload, decide again, save
        retry.skip_edit(edit_id="e-route", reason="second try")
        other.save(retry)
        assert store.load(session.id).version == loaded_at + 2
    finally:
        store.close()
        other.close()


# --- schema versions ---------------------------------------------------------------------------------


def test_a_v1_session_failed_loads_with_the_default_reason_code_and_still_verifies(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}")
    try:
        session = new_session()
        session.check_readiness(trace_count=2, min_traces=20, git_head=None, git_tree=None)
        store.save(session)

        # A SessionFailed as the first release wrote it: no reason_code, no class_version in the state.
        at = datetime.fromisoformat("2026-01-05T10:00:00+00:00")
        payload = {"error": "too few traces"}
        version = session.version + 1
        digest = chain.chain_digest(session.last_digest, ev.SessionFailed.TOPIC, version, at, payload)
        mapper = store.app.mapper
        raw = mapper.transcoder.encode({"timestamp": at, "digest": digest, **payload})
        stored = StoredEvent(
            originator_id=session.id,
            originator_version=version,
            topic=ev.SessionFailed.TOPIC,
            state=mapper.compressor.compress(raw),
        )
        store.app.recorder.insert_events([stored])

        state = store.decode_state(store.stored_events(session.id)[-1])
        assert "reason_code" not in state and "class_version" not in state  # really the old shape
        loaded = store.load(session.id)
        assert (loaded.status, loaded.error, loaded.reason_code) == ("failed", "too few traces", "error")
        [failed] = [e for e in store.domain_events(session.id) if isinstance(e, ev.SessionFailed)]
        assert failed.reason_code == "error"

        report = verify_session(store, None, session.id)  # digests cover the raw stored payload
        assert report.ok, report.damage

        assert store.load(session.id, version=2).status == "initiated"  # and the history before it
    finally:
        store.close()


def test_a_v2_session_failed_is_stored_with_its_class_version(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}")
    try:
        session = new_session()
        session.fail(error="boom", reason_code="error")
        store.save(session)
        state = store.decode_state(store.stored_events(session.id)[-1])
        assert state["class_version"] == 2 and state["reason_code"] == "error"
        assert json.loads(json.dumps(state, default=str))["error"] == "boom"
        assert verify_session(store, None, session.id).ok
    finally:
        store.close()


def test_the_architecture_page_lists_every_event_with_its_fields() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")}
    envelope = {"originator_id", "originator_version", "timestamp", "originator_topic", "originator_id_type"}
    for cls in ev.EVENT_TYPES:
        assert cls.__name__ in rows, f"docs/architecture.md does not describe {cls.__name__}"
        fields = [
            f for f in typing.get_type_hints(cls) if f not in envelope | {"digest", "TOPIC", "class_version"}
        ]
        fields = [f for f in fields if not f.startswith("_")]
        assert rows[cls.__name__].split("|")[3].strip() == ", ".join(f"`{f}`" for f in fields), cls.__name__
        assert f"| {getattr(cls, 'class_version', 1)} |" in rows[cls.__name__]
