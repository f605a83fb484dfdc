"""The session state machine test, and proof that its properties catch real mistakes.

`TestSessionMachine` runs `SessionMachineTest` (a live session, a SQLite store, the index) with random
legal and illegal commands. The mutation tests below plant a bug the way a careless change would —
an extra move in the lifecycle, a command that changes state outside an event, an index that folds
wrongly — and assert that hypothesis finds a failing example each time.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from transitions import Machine

from distill_es.domain import lifecycle
from distill_es.domain.session import Session
from distill_es.domain.vocabulary import SessionStatus
from distill_es.store import projections
from distill_es.testing.machine import MACHINE_SETTINGS, SessionMachineTest

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

    with pytest.raises(AssertionError, match=r"in diagnosing the lifecycle offers .*'freeze_plan'"):
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

    with pytest.raises(AssertionError, match=r"replay differs from the live session:\s+error: replayed="):
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
