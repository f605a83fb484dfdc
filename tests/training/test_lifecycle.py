"""The training lifecycle table: every command from every state, against an independent oracle."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from distill_es.domain.errors import GuardRejected, IllegalTransition, UnknownCommand
from distill_es.domain.training import lifecycle
from distill_es.domain.training.errors import IllegalRunTransition, RunGuardRejected, UnknownRunCommand


@dataclass
class Facts:
    state: str
    has_dataset: bool = False
    has_checkpoint: bool = False
    has_eval: bool = False
    has_promotion: bool = False


# The oracle, written out by hand: (command, state) -> destination; anything missing is illegal.
LEGAL = {
    ("export_dataset", "pending"): "pending",
    ("start", "pending"): "running",
    ("complete_dry_run", "pending"): "dry_run",
    ("fail", "pending"): "failed",
    ("restart", "running"): "running",
    ("register_checkpoint", "running"): "running",
    ("finish", "running"): "completed",
    ("complete_dry_run", "running"): "dry_run",
    ("fail", "running"): "failed",
    ("attach_eval", "completed"): "completed",
    ("decide_promotion", "completed"): "completed",
}
# Facts that make every guard pass for the row above.
PASSING = {
    "start": {"has_dataset": True},
    "finish": {"has_checkpoint": True},
    "attach_eval": {"has_checkpoint": True},
    "decide_promotion": {"has_checkpoint": True, "has_eval": True},
}


@pytest.mark.parametrize("state", lifecycle.STATES)
@pytest.mark.parametrize("command", sorted(lifecycle.COMMANDS))
def test_table(command: str, state: str) -> None:
    facts = Facts(state=state, **PASSING.get(command, {}))
    if (command, state) in LEGAL:
        assert lifecycle.decide(facts, command) == (state, LEGAL[(command, state)])
    else:
        with pytest.raises(IllegalRunTransition) as info:
            lifecycle.decide(facts, command, run_id="r1")
        assert info.value.command == command and info.value.state == state
        assert info.value.legal == lifecycle.legal_commands(state)
        assert f"training run r1 is {state!r}" in str(info.value)


def test_the_oracle_covers_the_machine() -> None:
    assert {c for c, _ in LEGAL} == set(lifecycle.COMMANDS)
    assert {"completed", "failed", "dry_run"} == lifecycle.TERMINAL
    for state in ("failed", "dry_run"):
        assert lifecycle.legal_commands(state) == []


@pytest.mark.parametrize(
    ("command", "facts", "reason"),
    [
        ("start", Facts("pending"), "the dataset has not been exported"),
        ("export_dataset", Facts("pending", has_dataset=True), "the dataset is already exported"),
        ("finish", Facts("running"), "no checkpoint is registered"),
        ("register_checkpoint", Facts("running", has_checkpoint=True), "a checkpoint is already registered"),
        ("attach_eval", Facts("completed", has_checkpoint=True, has_eval=True), "already attached"),
        ("decide_promotion", Facts("completed", has_checkpoint=True), "no eval summary is attached"),
        ("decide_promotion", Facts("completed", has_eval=True, has_promotion=True), "already decided"),
    ],
)
def test_guards_refuse_with_a_reason(command: str, facts: Facts, reason: str) -> None:
    with pytest.raises(RunGuardRejected, match=reason) as info:
        lifecycle.decide(facts, command)
    assert isinstance(info.value, GuardRejected | IllegalTransition)


def test_unknown_command_lists_what_is_legal() -> None:
    with pytest.raises(UnknownRunCommand, match="unknown command 'teleport'") as info:
        lifecycle.decide(Facts("pending"), "teleport")
    assert isinstance(info.value, UnknownCommand)
    assert info.value.legal == ["complete_dry_run", "export_dataset", "fail", "start"]


def test_machine_is_shared_and_never_bound() -> None:
    facts = Facts("pending", has_dataset=True)
    lifecycle.decide(facts, "start")
    assert facts.state == "pending"  # deciding never moves the model: only recorded events do
    assert not hasattr(facts, "trigger") and lifecycle.MACHINE.models == []


def test_mermaid_lists_every_move() -> None:
    text = lifecycle.mermaid()
    assert text.startswith("stateDiagram-v2\n    [*] --> pending\n")
    for line in (
        "pending --> running: start",
        "running --> completed: finish",
        "pending --> dry_run: complete_dry_run",
        "running --> dry_run: complete_dry_run",
        "pending --> failed: fail",
        "running --> failed: fail",
        "completed --> [*]",
        "dry_run --> [*]",
        "failed --> [*]",
    ):
        assert f"    {line}\n" in text
