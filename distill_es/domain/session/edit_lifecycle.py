"""The edit lifecycle: where one planned edit may go, written down once.

A table like the session's (`lifecycle.py`) on the same rulebook: states, then the moves between them
with their guards. Every per-edit command of the session aggregate asks `decide()` for the edit it
names, after the session's own lifecycle allowed the command at all. The edit record keeps the state it
is in; the outcome a user sees (`EditOutcome.status`) is derived from that state by `outcome()`, and
`next_step` reads the state too.

Guards read the command's data (the route chosen, the check's verdict, the gate's verdict, the training
run's result) and the edit itself (its op); a move whose dest depends on such data has one row per dest,
tried in order, exactly like the session's `reject_edit`.
"""

from __future__ import annotations

from typing import Any, Protocol

from distill_es.domain import rulebook
from distill_es.domain.session.errors import EditGuardRejected, IllegalEditTransition, UnknownEditCommand
from distill_es.domain.vocabulary import EditOp


class EditState:
    """The states, as the plain strings an edit record holds (like `SessionStatus` values)."""

    PLANNED = "planned"  # frozen into the plan, not routed yet
    ROUTED = "routed"  # routed to be applied now
    QUEUED_FOR_REVIEW = "queued_for_review"  # waits for a named reviewer
    APPROVED = "approved"
    REJECTED = "rejected"  # by a reviewer
    VALIDATED = "validated"  # its check passed
    INVALID = "invalid"  # its check failed: never applied
    APPLY_FAILED = "apply_failed"  # its check passed, then writing it failed (the op did not fit)
    APPLY_STARTED = "apply_started"  # the intent (pre-apply HEAD and tree) is recorded
    APPLIED = "applied"  # committed, no gate verdict yet
    GATED = "gated"  # the gate accepted it: it stays
    GATE_REJECTED = "gate_rejected"  # the gate refused it; its commit is still in place
    REVERTED = "reverted"  # refused by the gate, and its commit reverted
    WITHDRAWN = "withdrawn"  # committed, then reverted before its gate (a cancelled session)
    TRAINED = "trained"  # lora_finetune: its training run produced deployable weights
    TRAINING_REJECTED = "training_rejected"  # the run completed, its weights are not deployable
    TRAINING_FAILED = "training_failed"  # the run did not complete
    SKIPPED = "skipped"
    ROLLED_BACK = "rolled_back"  # a landed edit, reverted by a session rollback
    REFUSED = "refused"  # refused when the plan was frozen (`PlanFrozen.rejected`): never in the plan


E = EditState
STATES: list[str] = [v for k, v in vars(EditState).items() if k.isupper()]
INITIAL = E.PLANNED
# Freezing the plan puts every edit the teacher proposed in one of these: accepted into the plan
# (planned), or refused there with its reason (refused, where it ends).
ENTRY: tuple[str, ...] = (E.PLANNED, E.REFUSED)
# The worked-on states: the engine still has something to do for an edit in one of them.
_ON_ITS_WAY = [E.ROUTED, E.APPROVED, E.VALIDATED, E.APPLY_STARTED, E.WITHDRAWN]


# --- moves: (trigger, source(s), dest, guards) -------------------------------------------------
# Guards are `_Decision` method names; several rows for one trigger are tried in order.
MOVES: list[dict[str, Any]] = [
    {"trigger": "route_edit", "source": E.PLANNED, "dest": E.QUEUED_FOR_REVIEW,
     "conditions": ["routed_to_review"]},
    {"trigger": "route_edit", "source": E.PLANNED, "dest": E.ROUTED},
    {"trigger": "approve_edit", "source": E.QUEUED_FOR_REVIEW, "dest": E.APPROVED},
    {"trigger": "reject_edit", "source": E.QUEUED_FOR_REVIEW, "dest": E.REJECTED},
    {"trigger": "validate_edit", "source": [E.ROUTED, E.APPROVED], "dest": E.VALIDATED,
     "conditions": ["check_passed"]},
    {"trigger": "validate_edit", "source": [E.ROUTED, E.APPROVED], "dest": E.INVALID},
    # Applying can still fail (the op does not fit the workspace): recorded as a failed check.
    {"trigger": "validate_edit", "source": E.APPLY_STARTED, "dest": E.APPLY_FAILED,
     "conditions": ["check_failed"]},
    {"trigger": "start_apply", "source": E.VALIDATED, "dest": E.APPLY_STARTED,
     "conditions": ["is_not_training"]},
    {"trigger": "record_apply", "source": E.APPLY_STARTED, "dest": E.APPLIED},
    {"trigger": "record_gate", "source": E.APPLIED, "dest": E.GATED, "conditions": ["gate_accepted"]},
    {"trigger": "record_gate", "source": E.APPLIED, "dest": E.GATE_REJECTED},
    {"trigger": "revert_edit", "source": E.GATE_REJECTED, "dest": E.REVERTED},
    {"trigger": "revert_edit", "source": E.APPLIED, "dest": E.WITHDRAWN},  # cancelling before the gate
    # lora_finetune: weights, not files: one training run instead of apply and gate.
    {"trigger": "record_training", "source": E.VALIDATED, "dest": E.TRAINED,
     "conditions": ["is_training", "training_deployable"]},
    {"trigger": "record_training", "source": E.VALIDATED, "dest": E.TRAINING_REJECTED,
     "conditions": ["is_training", "training_completed"]},
    {"trigger": "record_training", "source": E.VALIDATED, "dest": E.TRAINING_FAILED,
     "conditions": ["is_training"]},
    {"trigger": "skip_edit", "source": _ON_ITS_WAY, "dest": E.SKIPPED},
    {"trigger": "roll_back_edit", "source": [E.GATED, E.TRAINED], "dest": E.ROLLED_BACK},
]  # fmt: skip

# Edits whose effect on the workspace is not final: being applied, committed without a gate verdict,
# or refused by the gate and not reverted yet (a cancel settles them first).
UNSETTLED: frozenset[str] = frozenset({E.APPLY_STARTED, E.APPLIED, E.GATE_REJECTED})

MACHINE = rulebook.build_machine("Edit", STATES, rulebook.transition_table(MOVES, {}, {}))
COMMANDS: frozenset[str] = frozenset(MACHINE.events)
TERMINAL: frozenset[str] = frozenset(s for s in STATES if not MACHINE.get_triggers(s))

# --- what a user sees: the contract's outcome of an edit, from its state -----------------------
# None: still on its way (not shown among a session's edit outcomes).
OUTCOMES: dict[str, str | None] = {
    E.PLANNED: None,
    E.ROUTED: None,
    E.QUEUED_FOR_REVIEW: "pending_review",
    E.APPROVED: None,
    E.REJECTED: "rejected_by_user",
    E.VALIDATED: None,
    E.INVALID: "invalid",
    E.APPLY_FAILED: "apply_failed",
    E.APPLY_STARTED: None,
    E.APPLIED: None,
    E.GATED: "applied",
    E.GATE_REJECTED: "rejected_by_gate",
    E.REVERTED: "rejected_by_gate",
    E.WITHDRAWN: None,
    E.TRAINED: "applied",
    E.TRAINING_REJECTED: "rejected_by_gate",
    E.TRAINING_FAILED: "skipped",
    E.SKIPPED: "skipped",
    E.ROLLED_BACK: "rolled_back",
    E.REFUSED: "refused",
}


def outcome(state: str) -> str | None:
    """The contract's outcome status of an edit in `state`, or None while it is on its way."""
    return OUTCOMES[state]


# How a refusal names the edit's situation (with what was recorded, where it helps).
_SITUATION: dict[str, str] = {
    E.PLANNED: "has not been routed yet",
    E.QUEUED_FOR_REVIEW: "is waiting for a reviewer's decision; only an approved edit is worked on",
    E.REJECTED: "was rejected by {rejected_by}; only an approved edit is worked on",
}
# What a command needs, said where it is refused for want of it.
_NEEDS: dict[str, str] = {
    "route_edit": "an edit is routed once",
    "record_apply": "an edit cannot be applied without a recorded intent (start_apply)",
    "record_gate": "an edit cannot be gated before it is applied",
    "revert_edit": "only an applied edit that has not landed is reverted",
    "roll_back_edit": "only an applied edit is rolled back",
    "start_apply": "only a validated edit is applied",
    "record_training": "only a validated edit is trained",
}


class EditFacts(Protocol):
    """What guards and refusals may read about an edit."""

    state: str
    rejected_by: str | None

    @property
    def op(self) -> str: ...


class _Decision(rulebook.Decision):
    """Reads the edit and the command's data for the guards; never changes either."""

    def __init__(self, edit: EditFacts, data: dict[str, Any]) -> None:
        super().__init__(edit.state)
        self.edit, self.data = edit, data

    # Row selectors: a false one picks the next row for the same trigger (no refusal note).
    def routed_to_review(self, _: Any) -> bool:
        return self.data.get("route") == "review"

    def check_passed(self, _: Any) -> bool:
        return self.data.get("ok") is True

    def check_failed(self, _: Any) -> bool:
        failed = self.data.get("ok") is False
        return self._check(failed, "once applying has started, only a failed check is recorded")

    def gate_accepted(self, _: Any) -> bool:
        return self.data.get("accepted") is True

    def training_deployable(self, _: Any) -> bool:
        return bool(self.data.get("deployable"))

    def training_completed(self, _: Any) -> bool:
        return self.data.get("state") == "completed"

    def is_training(self, _: Any) -> bool:
        return self._check(self.edit.op == EditOp.LORA_FINETUNE, "only a lora_finetune edit is trained")

    def is_not_training(self, _: Any) -> bool:
        ok = self.edit.op != EditOp.LORA_FINETUNE
        return self._check(ok, "a lora_finetune edit is trained, never applied")


def legal_commands(state: str) -> list[str]:
    """Per-edit commands that exist from `state` (their guards may still refuse)."""
    return rulebook.legal_commands(MACHINE, state)


def decide(
    edit: EditFacts,
    command: str,
    data: dict[str, Any] | None = None,
    *,
    edit_id: str = "",
    session_id: str = "",
) -> tuple[str, str]:
    """(source, dest) of a per-edit command on `edit`; a typed refusal (a `GuardRejected`) otherwise."""
    state = edit.state
    situation = _SITUATION.get(state, "is {state!r}").format(state=state, rejected_by=edit.rejected_by)
    where = {
        "edit_id": edit_id,
        "session_id": session_id,
        "situation": situation,
        "needs": _NEEDS.get(command, ""),
    }
    return rulebook.decide(
        MACHINE,
        _Decision(edit, data or {}),
        command,
        unknown=lambda *a: UnknownEditCommand(*a, **where),
        illegal=lambda *a: IllegalEditTransition(*a, **where),
        rejected=lambda *a: EditGuardRejected(*a, **where),
    )


def mermaid() -> str:
    """The edit lifecycle as a Mermaid state diagram (refused edits enter, and end, at plan time)."""
    lines = rulebook.mermaid(INITIAL, MOVES, TERMINAL).splitlines()
    entries = [f"    [*] --> {state}: freeze_plan" for state in ENTRY if state != INITIAL]
    return "\n".join([*lines[:2], *entries, *lines[2:]]) + "\n"
