"""The lifecycle against CONTRACT.md's table, pair by pair.

`ORACLE` below is written out by hand from CONTRACT.md (moves) and the list of facts a session may
record while resting in a state. It is deliberately not derived from `lifecycle.MOVES`: every
(state, command) pair is checked against it, so a move added, dropped or redirected in the machine
fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from distill_es.domain.errors import GuardRejected, IllegalTransition, UnknownCommand
from distill_es.domain.session import lifecycle
from distill_es.domain.vocabulary import SessionStatus

STATES = [
    "initiated",
    "diagnosing",
    "planning",
    "executing",
    "awaiting_review",
    "completed",
    "failed",
    "rolled_back",
]
EXECUTING_FACTS = [
    "record_teacher_call",
    "route_edit",
    "validate_edit",
    "start_apply",
    "record_apply",
    "skip_edit",
    "record_training",
    "choose_gate_tasks",
    "record_scores",
    "capture_benchmark",
    "record_gate",
    "revert_edit",
    "record_interruption",
]

# (state, command) -> the states the session may be in afterwards. Anything absent is illegal.
ORACLE: dict[tuple[str, str], set[str]] = {
    # initiated: the engine checks readiness, then starts diagnosing or fails (cold start, error)
    ("initiated", "check_readiness"): {"initiated"},
    ("initiated", "begin_diagnosis"): {"diagnosing"},
    ("initiated", "fail"): {"failed"},
    ("initiated", "cancel"): {"failed"},
    ("initiated", "record_interruption"): {"initiated"},
    # diagnosing: a teacher tool loop, ended by the submitted diagnosis
    ("diagnosing", "record_teacher_call"): {"diagnosing"},
    ("diagnosing", "record_tool_result"): {"diagnosing"},
    ("diagnosing", "submit_diagnosis"): {"planning"},
    ("diagnosing", "fail"): {"failed"},
    ("diagnosing", "cancel"): {"failed"},
    ("diagnosing", "record_interruption"): {"diagnosing"},
    # planning: one teacher call, then the plan is frozen
    ("planning", "record_teacher_call"): {"planning"},
    ("planning", "freeze_plan"): {"executing"},
    ("planning", "fail"): {"failed"},
    ("planning", "cancel"): {"failed"},
    ("planning", "record_interruption"): {"planning"},
    # executing: facts about edits, then rest (review, completed) or fail
    **{("executing", fact): {"executing"} for fact in EXECUTING_FACTS},
    ("executing", "await_review"): {"awaiting_review"},
    ("executing", "complete"): {"completed"},
    ("executing", "fail"): {"failed"},
    ("executing", "cancel"): {"failed"},
    # awaiting_review: a reviewer decides; the last decision may complete the session
    ("awaiting_review", "approve_edit"): {"executing"},
    ("awaiting_review", "reject_edit"): {"executing", "completed"},
    ("awaiting_review", "request_rollback"): {"awaiting_review"},
    ("awaiting_review", "roll_back_edit"): {"awaiting_review"},
    ("awaiting_review", "roll_back"): {"rolled_back"},
    # completed / failed: only rollback
    ("completed", "request_rollback"): {"completed"},
    ("completed", "roll_back_edit"): {"completed"},
    ("completed", "roll_back"): {"rolled_back"},
    ("failed", "request_rollback"): {"failed"},
    ("failed", "roll_back_edit"): {"failed"},
    ("failed", "roll_back"): {"rolled_back"},
    # rolled_back: terminal, nothing at all
}
ALL_COMMANDS = sorted({command for _, command in ORACLE})
ROLLBACK_COMMANDS = {"request_rollback", "roll_back_edit", "roll_back"}


@dataclass
class Facts:
    """What the guards may read about a session, set by hand."""

    status: str
    ready: bool | None = True
    has_clusters: bool = True
    rollback_requested: bool = False
    pending: list[str] = field(default_factory=list)
    approved_unapplied: list[str] = field(default_factory=list)
    applied_unreverted: list[str] = field(default_factory=list)
    gate_seed: int | None = None
    gate_task_ids: list[str] | None = None  # not chosen yet

    def pending_edit_ids(self) -> list[str]:
        return list(self.pending)

    def approved_unapplied_ids(self) -> list[str]:
        return list(self.approved_unapplied)

    def applied_unreverted_ids(self) -> list[str]:
        return list(self.applied_unreverted)


def scenarios(state: str, command: str) -> list[tuple[Facts, dict[str, Any]]]:
    """Facts and command data under which the command's guards hold (several where it branches)."""
    if command in {"approve_edit", "reject_edit"}:
        return [
            (Facts(state, pending=["e1"]), {"edit_id": "e1"}),  # the last pending edit
            (Facts(state, pending=["e1", "e2"]), {"edit_id": "e1"}),  # one of several
        ]
    if command == "await_review":
        return [(Facts(state, pending=["e1"]), {})]
    if command in {"roll_back", "roll_back_edit"}:
        return [(Facts(state, rollback_requested=True), {})]
    if command == "submit_diagnosis":
        return [(Facts(state), {"clusters": [{"id": "c1"}]})]
    return [(Facts(state), {})]


LEGAL = sorted(ORACLE)
ILLEGAL = [(s, c) for s in STATES for c in ALL_COMMANDS if (s, c) not in ORACLE]


def test_the_oracle_covers_every_command_the_lifecycle_knows() -> None:
    assert set(ALL_COMMANDS) == set(lifecycle.COMMANDS)
    assert set(STATES) == set(lifecycle.STATES) == {s.value for s in SessionStatus}


@pytest.mark.parametrize("state", STATES)
def test_legal_commands_are_exactly_the_oracles(state: str) -> None:
    expected = sorted(c for s, c in ORACLE if s == state)
    assert lifecycle.legal_commands(state) == expected


@pytest.mark.parametrize(("state", "command"), LEGAL)
def test_every_legal_pair_lands_where_the_contract_says(state: str, command: str) -> None:
    reached = set()
    for facts, data in scenarios(state, command):
        source, dest = lifecycle.decide(facts, command, data)
        assert source == state
        reached.add(dest)
    assert reached == ORACLE[(state, command)]


@pytest.mark.parametrize(("state", "command"), ILLEGAL)
def test_every_illegal_pair_is_refused_with_what_is_legal(state: str, command: str) -> None:
    legal = sorted(c for s, c in ORACLE if s == state)
    for facts, data in scenarios(state, command):  # guards that would hold do not make it legal
        with pytest.raises(IllegalTransition) as caught:
            lifecycle.decide(facts, command, data, session_id="s-1")
        error = caught.value
        assert type(error) is IllegalTransition  # not a guard's refusal: the move does not exist
        assert (error.command, error.state, error.legal, error.session_id) == (command, state, legal, "s-1")
        message = str(error)
        assert repr(command) in message and repr(state) in message and "session s-1" in message
        for name in legal:
            assert name in message
        if not legal:
            assert "none (terminal state)" in message


def test_an_unknown_command_is_refused_in_every_state() -> None:
    for state in STATES:
        with pytest.raises(UnknownCommand) as caught:
            lifecycle.decide(Facts(state), "teleport")
        assert isinstance(caught.value, IllegalTransition)
        assert "'teleport'" in str(caught.value) and repr(state) in str(caught.value)


def test_a_completed_session_accepts_only_rollback() -> None:
    assert set(lifecycle.legal_commands("completed")) == ROLLBACK_COMMANDS
    for command in ("approve_edit", "reject_edit"):
        facts = Facts("completed", pending=["e1"])  # even with an edit that looks pending
        with pytest.raises(IllegalTransition, match=r"legal commands from 'completed': request_rollback"):
            lifecycle.decide(facts, command, {"edit_id": "e1"})


def test_rolled_back_accepts_nothing() -> None:
    assert lifecycle.legal_commands("rolled_back") == []
    assert set(lifecycle.TERMINAL) == {"rolled_back"}
    for command in ALL_COMMANDS:
        for facts, data in scenarios("rolled_back", command):
            with pytest.raises(IllegalTransition):
                lifecycle.decide(facts, command, data)


@pytest.mark.parametrize(
    ("state", "command", "facts", "data", "reason"),
    [
        ("initiated", "begin_diagnosis", Facts("initiated", ready=None), {}, "readiness"),
        ("initiated", "begin_diagnosis", Facts("initiated", ready=False), {}, "readiness"),
        ("diagnosing", "submit_diagnosis", Facts("diagnosing"), {"clusters": []}, "no clusters"),
        ("executing", "await_review", Facts("executing"), {}, "no edit is pending"),
        ("executing", "complete", Facts("executing", pending=["e1"]), {}, "pending review"),
        ("executing", "complete", Facts("executing", approved_unapplied=["e1"]), {}, "approved but not"),
        ("awaiting_review", "approve_edit", Facts("awaiting_review", pending=["e1"]), {"edit_id": "e9"},
         "'e9' is not pending"),
        ("awaiting_review", "reject_edit", Facts("awaiting_review"), {"edit_id": "e1"},
         "'e1' is not pending"),
        ("awaiting_review", "approve_edit",
         Facts("awaiting_review", pending=["e1"], rollback_requested=True), {"edit_id": "e1"}, ""),
        ("completed", "roll_back", Facts("completed"), {}, "no rollback was requested"),
        ("failed", "roll_back", Facts("failed", rollback_requested=True, applied_unreverted=["e1"]), {},
         "not reverted yet"),
        ("completed", "request_rollback", Facts("completed", rollback_requested=True), {},
         "already under way"),
        ("failed", "roll_back_edit", Facts("failed"), {}, "no rollback was requested"),
    ],
)  # fmt: skip
def test_guards_refuse_with_a_reason(
    state: str, command: str, facts: Facts, data: dict[str, Any], reason: str
) -> None:
    with pytest.raises(GuardRejected) as caught:
        lifecycle.decide(facts, command, data)
    assert caught.value.state == state and caught.value.command == command
    assert reason in str(caught.value)


def test_approve_last_pending_goes_on_executing_reject_last_pending_completes() -> None:
    last = Facts("awaiting_review", pending=["e1"])
    assert lifecycle.decide(last, "approve_edit", {"edit_id": "e1"}) == ("awaiting_review", "executing")
    assert lifecycle.decide(last, "reject_edit", {"edit_id": "e1"}) == ("awaiting_review", "completed")
    # An approved edit still waiting to be applied keeps the session going after the last rejection.
    waiting = Facts("awaiting_review", pending=["e1"], approved_unapplied=["e0"])
    assert lifecycle.decide(waiting, "reject_edit", {"edit_id": "e1"}) == ("awaiting_review", "executing")


def test_deciding_changes_nothing_on_the_session() -> None:
    facts = Facts("initiated")
    before = repr(facts)
    lifecycle.decide(facts, "begin_diagnosis")
    assert repr(facts) == before and facts.status == "initiated"


def _mermaid_edges(text: str) -> set[tuple[str, str, str]]:
    edges = set()
    for line in text.splitlines():
        line = line.strip()
        if "-->" in line and ":" in line:
            arrow, label = line.split(":", 1)
            source, dest = (part.strip() for part in arrow.split("-->"))
            edges.add((source, dest, label.strip()))
    return edges


def test_mermaid_draws_every_move_and_only_moves() -> None:
    text = lifecycle.mermaid()
    assert text.startswith("stateDiagram-v2\n")
    assert "[*] --> initiated" in text and "rolled_back --> [*]" in text
    moves = set()
    for (state, command), dests in ORACLE.items():
        for dest in dests - {state}:  # a fact does not move, so it is not drawn
            moves.add((state, dest, command))
    assert _mermaid_edges(text) == moves


def test_mermaid_needs_no_graphviz() -> None:
    code = (
        "import sys\n"
        "sys.modules['graphviz'] = None; sys.modules['pygraphviz'] = None  # importing them now fails\n"
        "from distill_es.domain.session.lifecycle import mermaid\n"
        "print(mermaid(), end='')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == lifecycle.mermaid()


def test_the_architecture_page_shows_the_machines_own_diagram() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks == [lifecycle.mermaid()], "docs/architecture.md: paste the output of lifecycle.mermaid()"
