"""The edit lifecycle table, on its own and inside the aggregate.

A state machine drives one edit through `edit_lifecycle.decide` with random commands and data and
checks every answer against the hand-written `EDIT_CONTRACT`; properties over random histories check
the two guards the aggregate used to miss (reverting an edit that was never applied, choosing the gate
tasks twice) and that the aggregate's per-edit commands land exactly where the table decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from distill_es.domain.errors import DistillError, GuardRejected
from distill_es.domain.session import edit_lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.edit_lifecycle import EditState as E
from distill_es.domain.session.errors import EditGuardRejected, IllegalEditTransition
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import Edit, EditOp, FailureCluster, LearningPlan
from distill_es.testing import strategies
from distill_es.testing.contracts import EDIT_CONTRACT
from distill_es.testing.machine import MACHINE_SETTINGS, session_state

KIT = settings(MACHINE_SETTINGS, max_examples=120)  # about one history in six is executing
EDIT_COMMANDS = sorted({c for moves in EDIT_CONTRACT.values() for c in moves})
# What each command's data may say (the guards read it): every value the aggregate can pass.
DATA = st.fixed_dictionaries(
    {
        "route": st.sampled_from(["apply", "review"]),
        "ok": st.booleans(),
        "accepted": st.booleans(),
        "state": st.sampled_from(["completed", "failed", "dry_run"]),
        "deployable": st.one_of(st.none(), st.booleans()),
    }
)


@dataclass
class FakeEdit:
    """What the table may read about an edit, set by hand."""

    state: str
    op: str = EditOp.SET_AGENT_PARAM
    rejected_by: str | None = None


# --- the table on its own -------------------------------------------------------------------------


class EditTableMachine(RuleBasedStateMachine):
    """One edit, moved only by what `decide` answers; every answer checked against the contract."""

    def __init__(self) -> None:
        super().__init__()
        self.edit = FakeEdit(E.PLANNED)
        self.path: list[str] = [E.PLANNED]

    @rule(op=st.sampled_from([EditOp.SET_AGENT_PARAM, EditOp.LORA_FINETUNE]))
    def the_plan_holds_another_op(self, op: str) -> None:
        if self.edit.state == E.PLANNED:  # an edit's op is fixed by its plan
            self.edit.op = op

    @rule(command=st.sampled_from(EDIT_COMMANDS), data=DATA)
    def decide(self, command: str, data: dict[str, Any]) -> None:
        state, moves = self.edit.state, EDIT_CONTRACT[self.edit.state]
        try:
            source, dest = edit_lifecycle.decide(self.edit, command, data, edit_id="e1", session_id="s1")
        except IllegalEditTransition as exc:
            assert isinstance(exc, GuardRejected)  # from the session's side: a precondition failed
            assert exc.state == state and exc.edit_id == "e1"
            if command in moves:
                assert isinstance(exc, EditGuardRejected), exc
            else:
                assert not isinstance(exc, EditGuardRejected), exc
                assert command in str(exc) and repr(state) in str(exc) and "'e1'" in str(exc)
                assert all(legal in str(exc) for legal in moves), str(exc)
            assert self.edit.state == state  # deciding never moves the edit
            return
        assert command in moves and source == state and dest in moves[command], (command, state, dest)
        self._expect_data_picked(command, data, dest)
        self.edit.state = dest
        self.path.append(dest)

    def _expect_data_picked(self, command: str, data: dict[str, Any], dest: str) -> None:
        """Where a command has several dests, the recorded data picks one, as `evolve` will."""
        lora = self.edit.op == EditOp.LORA_FINETUNE
        expected = {
            "route_edit": E.QUEUED_FOR_REVIEW if data["route"] == "review" else E.ROUTED,
            "record_gate": E.GATED if data["accepted"] else E.GATE_REJECTED,
            "record_training": E.TRAINED
            if data["deployable"]
            else (E.TRAINING_REJECTED if data["state"] == "completed" else E.TRAINING_FAILED),
        }.get(command)
        if command == "validate_edit":
            failed = E.APPLY_FAILED if self.edit.state == E.APPLY_STARTED else E.INVALID
            expected = E.VALIDATED if data["ok"] else failed
        if command == "record_training":
            assert lora, "a non-lora edit was trained"
        if command == "start_apply":
            assert not lora, "a lora edit was applied"
        if expected is not None:
            assert dest == expected, (command, data, dest)

    @invariant()
    def offers_the_contract(self) -> None:
        assert set(edit_lifecycle.legal_commands(self.edit.state)) == set(EDIT_CONTRACT[self.edit.state])

    @invariant()
    def outcome_is_derived_from_the_state(self) -> None:
        outcome = edit_lifecycle.outcome(self.edit.state)
        assert outcome in {None, *edit_lifecycle.OUTCOMES.values()}
        if self.edit.state in edit_lifecycle.TERMINAL:
            assert outcome is not None, "an edit at the end of its lifecycle has no outcome"

    @invariant()
    def never_reverted_unless_applied(self) -> None:
        if self.edit.state in {E.REVERTED, E.WITHDRAWN}:
            assert E.APPLIED in self.path, self.path


TestEditTable = EditTableMachine.TestCase
TestEditTable.settings = settings(MACHINE_SETTINGS, max_examples=150, stateful_step_count=20)


def test_every_state_is_reachable_and_named_in_the_contract() -> None:
    assert set(edit_lifecycle.STATES) == set(EDIT_CONTRACT) == set(edit_lifecycle.OUTCOMES)
    # Freezing the plan is where an edit enters: planned, or refused (where it also ends).
    assert set(edit_lifecycle.ENTRY) == {E.PLANNED, E.REFUSED}
    reached, frontier = set(edit_lifecycle.ENTRY), list(edit_lifecycle.ENTRY)
    while frontier:
        state = frontier.pop()
        for dests in EDIT_CONTRACT[state].values():
            for dest in dests - reached:
                reached.add(dest)
                frontier.append(dest)
    assert reached == set(edit_lifecycle.STATES)
    assert {s for s, moves in EDIT_CONTRACT.items() if not moves} == edit_lifecycle.TERMINAL


def test_the_mermaid_diagram_draws_every_move() -> None:
    diagram = edit_lifecycle.mermaid()
    assert diagram.startswith("stateDiagram-v2\n    [*] --> planned\n")
    for state, moves in EDIT_CONTRACT.items():
        for command, dests in moves.items():
            for dest in dests:
                assert f"    {state} --> {dest}: {command}\n" in diagram
    for state in edit_lifecycle.TERMINAL:
        assert f"    {state} --> [*]\n" in diagram


# --- the guards the aggregate used to miss, over random histories ---------------------------------


@KIT
@given(session=strategies.event_histories(max_steps=30), data=st.data())
def test_an_edit_that_was_never_applied_is_never_reverted(session: Session, data: st.DataObject) -> None:
    unapplied = [eid for eid, p in session.edits.items() if p.commit_sha is None]
    if session.status != "executing" or not unapplied:
        return
    edit_id = data.draw(st.sampled_from(unapplied))
    before, version, tree = session_state(session), session.version, session.current_tree
    with pytest.raises(IllegalEditTransition) as caught:
        session.revert_edit(edit_id=edit_id, revert_sha="e" * 40, tree_sha="f" * 40)
    assert isinstance(caught.value, GuardRejected) and "revert_edit" in str(caught.value)
    assert (session.version, session.current_tree) == (version, tree) and session_state(session) == before


@KIT
@given(session=strategies.event_histories(max_steps=30), seed=st.integers(0, 2**32 - 1))
def test_the_gate_tasks_are_chosen_once(session: Session, seed: int) -> None:
    if session.status != "executing":
        return
    if session.gate_task_ids is None:
        session.choose_gate_tasks(seed=seed, task_ids=["t1"])
    before, version, chosen = session_state(session), session.version, session.gate_seed
    with pytest.raises(GuardRejected, match="gate tasks are already chosen") as caught:
        session.choose_gate_tasks(seed=seed + 1, task_ids=["t2"])
    assert not isinstance(caught.value, IllegalEditTransition)
    assert (session.version, session.gate_seed) == (version, chosen) and session_state(session) == before


@KIT
@given(session=strategies.event_histories(max_steps=30), data=st.data())
def test_per_edit_commands_land_where_the_table_decides(session: Session, data: st.DataObject) -> None:
    """The aggregate asks the table, and `evolve` then puts the edit exactly in the decided state."""
    for _ in range(8):
        if session.status not in {"executing", "awaiting_review", "completed", "failed"} or not session.edits:
            return
        edit_id = data.draw(st.sampled_from(sorted(session.edits)))
        name = data.draw(st.sampled_from(EDIT_COMMANDS))
        command = data.draw(strategies.commands(session, names=[name]))
        kwargs = {**command.kwargs, "edit_id": edit_id}
        progress = session.edits[edit_id]
        try:
            expected = edit_lifecycle.decide(progress, name, kwargs)[1]
        except IllegalEditTransition:
            expected = None
        version = session.version
        try:
            strategies.fire(session, strategies.Command(name, kwargs))
        except DistillError as exc:
            assert session.version == version
            if isinstance(exc, IllegalEditTransition):
                assert expected is None, (
                    f"the table allows {name} for {edit_id}, the aggregate refused: {exc}"
                )
            continue
        assert expected is not None, f"the table refuses {name} for {edit_id}, the aggregate accepted it"
        assert session.edits[edit_id].state == expected


def test_reverting_an_edit_before_it_is_applied_names_what_is_missing() -> None:
    session = Session.start(trigger=OnDemandTrigger(), autonomy_mode="auto", settings={}, workspace="/w")
    session.check_readiness(trace_count=30, min_traces=20, git_head="a" * 40, git_tree="b" * 40)
    session.begin_diagnosis()
    cluster = FailureCluster(id="c", student_failure_rate=1.0, teacher_success_rate=1.0)
    session.submit_diagnosis(markdown="d", clusters=[cluster])
    edit = Edit(
        id="e1", pillar="agent", op="set_agent_param", payload={"agent": "a", "param": "p", "value": 1}
    )
    plan = LearningPlan(session_id=str(session.id), edits=[edit])
    session.freeze_plan(plan=plan, rejected=[], tier_changes=[], downgrades=[])
    session.route_edit(edit_id="e1", route="apply")
    session.validate_edit(edit_id="e1", ok=True, reason="")
    with pytest.raises(
        IllegalEditTransition, match=r"cannot 'revert_edit': edit 'e1' of session .* 'validated'"
    ):
        session.revert_edit(edit_id="e1", revert_sha="e" * 40, tree_sha="f" * 40)
    assert session.current_tree == "b" * 40 and session.edits["e1"].revert_sha is None


def test_the_documented_diagram_is_the_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "engine.md").read_text(encoding="utf-8")
    diagram = re.search(r"### Edits: a lifecycle of their own.*?```mermaid\n(.*?)```", text, re.S)
    assert diagram is not None and diagram.group(1) == edit_lifecycle.mermaid()


@KIT
@given(session=strategies.event_histories(max_steps=30))
def test_unsettled_edits_are_the_ones_a_cancel_must_settle(session: Session) -> None:
    """In flight (intent recorded, no gate verdict) or refused by the gate and not reverted yet."""
    expected = [
        eid
        for eid, p in session.edits.items()
        if (p.outcome is None and p.pre_sha is not None and p.gate is None)
        or (p.outcome == "rejected_by_gate" and p.gate is not None and p.revert_sha is None)
    ]
    assert session.unsettled_edit_ids() == expected
