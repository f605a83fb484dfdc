"""The session state machine test, and proof that its properties catch real mistakes.

`TestSessionMachine` runs `SessionMachineTest` (a live session, a SQLite store, the index) with random
legal and illegal commands. The mutation tests below plant a bug the way a careless change would —
an extra move in the lifecycle, a command that changes state outside an event, an index that folds
wrongly — and assert that hypothesis finds a failing example each time.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from transitions import Machine

from distill_es.domain import chain
from distill_es.domain import errors as lifecycle_errors
from distill_es.domain.payloads import parse_payload
from distill_es.domain.policy import assign_tier
from distill_es.domain.session import events as ev
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.vocabulary import OP_PILLAR, Edit, LearningPlan, SessionStatus, TriggerKind
from distill_es.store import projections
from distill_es.testing import strategies
from distill_es.testing.machine import MACHINE_SETTINGS, SessionMachineTest, session_state

TestSessionMachine = SessionMachineTest.TestCase
TestSessionMachine.settings = MACHINE_SETTINGS

# A failing example is found, reported and not shrunk (shrinking a stateful run is slow and the
# point here is only that the properties bite).
HUNT = settings(
    MACHINE_SETTINGS,
    max_examples=300,
    database=None,
    phases=[Phase.generate],
    report_multiple_bugs=False,
)


def _machine_with(extra: dict) -> Machine:
    return Machine(
        model=None,
        states=lifecycle.STATES,
        transitions=[*lifecycle._TRANSITIONS, extra],
        initial=None,
        auto_transitions=False,
        send_event=True,
        after_state_change="capture",
        name="Mutated",
    )


def test_an_illegal_move_added_to_the_machine_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan frozen straight from diagnosing, skipping the diagnosis: not a move CONTRACT.md knows.
    mutated = _machine_with({"trigger": "freeze_plan", "source": "diagnosing", "dest": "executing"})
    monkeypatch.setattr(lifecycle, "MACHINE", mutated)
    assert "freeze_plan" in lifecycle.legal_commands("diagnosing")  # the mutation is live

    # Caught by whichever comes first: the invariant on what is offered, or the check on what was accepted.
    caught = (
        r"in diagnosing the lifecycle offers .*'freeze_plan'|freeze_plan\(.* was accepted in state diagnosing"
    )
    with pytest.raises(AssertionError, match=caught):
        run_state_machine_as_test(SessionMachineTest, settings=HUNT)


def test_a_command_recording_the_wrong_move_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The machine still decides initiated -> diagnosing, but the aggregate records another phase.
    def begin_diagnosis_badly(self: Session) -> None:
        self._move("begin_diagnosis", SessionStatus.PLANNING)

    monkeypatch.setattr(Session, "begin_diagnosis", begin_diagnosis_badly)

    with pytest.raises(
        AssertionError, match=r"moved initiated -> planning; the contract allows \['diagnosing'\]"
    ):
        run_state_machine_as_test(SessionMachineTest, settings=HUNT)


def test_escaping_the_terminal_state_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    mutated = _machine_with({"trigger": "begin_diagnosis", "source": "rolled_back", "dest": "diagnosing"})
    monkeypatch.setattr(lifecycle, "MACHINE", mutated)

    with pytest.raises(AssertionError, match=r"rolled_back"):
        run_state_machine_as_test(SessionMachineTest, settings=HUNT)


def test_state_changed_outside_an_event_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Session.fail

    def fail_and_scribble(self: Session, *, error: str, reason_code: str) -> None:
        original(self, error=error, reason_code=reason_code)
        self.error = f"{error} (noted live only)"  # not in any event: replay cannot know it

    monkeypatch.setattr(Session, "fail", fail_and_scribble)

    with pytest.raises(
        AssertionError, match=r"(replay|snapshot) differs from the live session:\s+error: (replay|snapshot)="
    ):
        run_state_machine_as_test(SessionMachineTest, settings=HUNT)


def test_an_index_that_folds_wrongly_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = projections.fold_index_row

    def forgets_failures(row: dict | None, event: object) -> dict:
        folded = original(row, event)
        if folded["status"] == "failed":
            folded["status"] = "executing"  # a projection that missed the SessionFailed case
        return folded

    monkeypatch.setattr(projections, "fold_index_row", forgets_failures)

    with pytest.raises(AssertionError):
        run_state_machine_as_test(SessionMachineTest, settings=HUNT)


# --- the kit's strategies keep their promises ---------------------------------------------------------

KIT = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@KIT
@given(edit=strategies.edits())
def test_edits_are_valid_for_their_op(edit: Edit) -> None:
    assert edit.pillar == OP_PILLAR[edit.op]
    parse_payload(edit)  # raises InvalidEdit otherwise


@KIT
@given(plan=strategies.plans(session_id="s-1", min_edits=1))
def test_plans_have_unique_edits_aimed_at_their_clusters(plan: LearningPlan) -> None:
    assert plan.session_id == "s-1" and plan.failure_clusters
    assert len({e.id for e in plan.edits}) == len(plan.edits)
    assert {e.expected_improvement for e in plan.edits} <= {c.id for c in plan.failure_clusters}
    assert all(e.risk_tier == assign_tier(e.op) for e in plan.edits)


def test_triggers_cover_every_kind_and_commands_the_unknown_one() -> None:
    first = settings(database=None, phases=[Phase.generate], max_examples=2000)  # first match, unshrunk
    for kind in TriggerKind:
        assert find(strategies.triggers(), lambda t, kind=kind: t.kind == kind, settings=first).kind == kind
    bogus = strategies.BOGUS_COMMAND
    assert find(strategies.commands(), lambda c: c.name == bogus, settings=first).name == bogus


@settings(KIT, max_examples=10)
@given(data=st.data())
def test_every_command_gets_the_arguments_its_method_takes(data: st.DataObject) -> None:
    for name in sorted(lifecycle.COMMANDS):
        command = data.draw(strategies.commands(names=[name]), label=name)
        inspect.signature(getattr(Session, name)).bind(None, **command.kwargs)  # TypeError otherwise


@KIT
@given(data=st.data(), session=strategies.event_histories(max_steps=15))
def test_legal_only_commands_are_legal_and_histories_replay(data: st.DataObject, session: Session) -> None:
    events = list(session.pending_events)
    assert [e.originator_version for e in events] == list(range(1, session.version + 1))
    previous = chain.genesis_digest(str(session.id))
    for event in events:
        assert event.digest != previous
        previous = event.digest
    replayed: Any = None
    for event in events:
        replayed = event.mutate(replayed)
    assert session_state(replayed) == session_state(session)
    legal = lifecycle.legal_commands(session.status)
    if legal:
        command = data.draw(strategies.commands(session, legal_only=True))
        assert command.name in legal


# --- cancel: a person's way out, from every state the contract names ------------------------------

CANCELLABLE = {"initiated", "diagnosing", "planning", "executing"}


@settings(KIT, max_examples=80)
@given(session=strategies.event_histories(max_steps=25), data=st.data())
def test_cancel_ends_every_unfinished_session_and_nothing_else(session: Session, data: st.DataObject) -> None:
    command = data.draw(strategies.commands(session, names=["cancel"]))
    status, version = session.status, session.version
    if status not in CANCELLABLE:
        with pytest.raises(lifecycle_errors.IllegalTransition):
            strategies.fire(session, command)
        assert (session.status, session.version) == (status, version)
        return
    strategies.fire(session, command)
    assert session.status == SessionStatus.FAILED and session.reason_code == "cancelled"
    by, reason = command.kwargs["cancelled_by"], command.kwargs["reason"]
    assert session.error == f"cancelled by {by}: {reason}"
    assert session.version == version + 1
    event = list(session.pending_events)[-1]
    assert isinstance(event, ev.SessionCancelled) and event.cancelled_by == by and event.reason == reason
    replayed: Any = None
    for each in session.pending_events:
        replayed = each.mutate(replayed)
    assert session_state(replayed) == session_state(session)
    assert "cancel" not in lifecycle.legal_commands(session.status)  # once is enough
    assert "request_rollback" in lifecycle.legal_commands(session.status)  # its accepted edits can go
