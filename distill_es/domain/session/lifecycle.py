"""The session lifecycle: the one place where legal moves are written down.

Read it top to bottom: states, then the moves between them (with their guards), then the facts a
session may record while it rests in a state. Every command on a session asks `decide()` first;
nothing else in the code base knows the graph.

`transitions` is used as a shared, stateless rulebook (its FAQ's pattern): one module-level
`Machine(model=None)` fired on a throw-away `_Decision` that only *reads* the session. The session
aggregate is never bound to the machine — binding resets its state and gives it trigger methods
that change state without recording an event.
"""

from __future__ import annotations

from typing import Any, Protocol

from distill_es.domain import rulebook
from distill_es.domain.vocabulary import SessionStatus as S

STATES: list[str] = [s.value for s in S]
TERMINAL: frozenset[str] = frozenset({S.ROLLED_BACK.value})
RESTING: frozenset[str] = frozenset(
    {S.AWAITING_REVIEW.value, S.COMPLETED.value, S.FAILED.value, S.ROLLED_BACK.value}
)
# Not at rest: a session in one of these has a next step to run (workers claim them, loops wait).
ACTIVE: frozenset[str] = frozenset(STATES) - RESTING

# --- moves: (trigger, source(s), dest, guards) ------------------------------------------------
# Guards are `_Decision` method names; several rows for one trigger are tried in order.
MOVES: list[dict[str, Any]] = [
    {"trigger": "begin_diagnosis", "source": "initiated", "dest": "diagnosing",
     "conditions": ["readiness_holds"]},
    {"trigger": "submit_diagnosis", "source": "diagnosing", "dest": "planning",
     "conditions": ["diagnosis_has_clusters"]},
    {"trigger": "freeze_plan", "source": "planning", "dest": "executing"},
    {"trigger": "await_review", "source": "executing", "dest": "awaiting_review",
     "conditions": ["edits_pending"]},
    {"trigger": "complete", "source": "executing", "dest": "completed",
     "conditions": ["nothing_pending"]},
    {"trigger": "fail", "source": ["initiated", "diagnosing", "planning", "executing"],
     "dest": "failed"},
    # A person ends a session that cannot go on (recorded with who and why); it rests failed.
    {"trigger": "cancel", "source": ["initiated", "diagnosing", "planning", "executing"],
     "dest": "failed"},
    {"trigger": "approve_edit", "source": "awaiting_review", "dest": "executing",
     "conditions": ["edit_is_pending"], "unless": ["rollback_is_requested"]},
    # Rejecting the last pending edit (with nothing approved left to apply) ends the session.
    {"trigger": "reject_edit", "source": "awaiting_review", "dest": "completed",
     "conditions": ["edit_is_pending", "decides_last_pending"], "unless": ["rollback_is_requested"]},
    {"trigger": "reject_edit", "source": "awaiting_review", "dest": "executing",
     "conditions": ["edit_is_pending"], "unless": ["rollback_is_requested"]},
    {"trigger": "roll_back", "source": ["completed", "awaiting_review", "failed"],
     "dest": "rolled_back", "conditions": ["rollback_is_requested", "nothing_left_to_revert"]},
]  # fmt: skip

# --- facts: what a session may record without changing state -----------------------------------
FACTS: dict[str, list[str]] = {
    "check_readiness": ["initiated"],
    "record_teacher_call": ["diagnosing", "planning", "executing"],
    "record_tool_result": ["diagnosing"],
    "route_edit": ["executing"],
    "validate_edit": ["executing"],
    "start_apply": ["executing"],
    "record_apply": ["executing"],
    "choose_gate_tasks": ["executing"],
    "record_scores": ["executing"],
    "capture_benchmark": ["executing"],
    "record_gate": ["executing"],
    "revert_edit": ["executing"],
    "skip_edit": ["executing"],
    "record_training": ["executing"],
    "request_rollback": ["completed", "awaiting_review", "failed"],
    "roll_back_edit": ["completed", "awaiting_review", "failed"],
    # An outside endpoint failed under a step (resting states run only git steps: never recorded there).
    "record_interruption": ["initiated", "diagnosing", "planning", "executing"],
}
FACT_GUARDS: dict[str, list[str]] = {
    "request_rollback": ["rollback_not_requested"],
    "roll_back_edit": ["rollback_is_requested"],
    # The gate's tasks are chosen once: every score of the session is keyed by that seed.
    "choose_gate_tasks": ["gate_tasks_not_chosen"],
}

_TRANSITIONS: list[dict[str, Any]] = rulebook.transition_table(MOVES, FACTS, FACT_GUARDS)
MACHINE = rulebook.build_machine("LearningSession", STATES, _TRANSITIONS)
COMMANDS: frozenset[str] = frozenset(MACHINE.events)


class SessionFacts(Protocol):
    """What guards may read about a session."""

    status: str
    ready: bool | None
    has_clusters: bool
    rollback_requested: bool
    gate_seed: int | None
    gate_task_ids: list[str] | None

    def pending_edit_ids(self) -> list[str]: ...

    def approved_unapplied_ids(self) -> list[str]: ...

    def applied_unreverted_ids(self) -> list[str]: ...


class _Decision(rulebook.Decision):
    """Reads the session for the guards; never changes it."""

    def __init__(self, state: str, session: SessionFacts, data: dict[str, Any]) -> None:
        super().__init__(state)
        self.session, self.data = session, data

    def readiness_holds(self, _: Any) -> bool:
        return self._check(self.session.ready is True, "readiness has not been established")

    def diagnosis_has_clusters(self, _: Any) -> bool:
        return self._check(bool(self.data.get("clusters")), "the diagnosis has no clusters")

    def edits_pending(self, _: Any) -> bool:
        return self._check(bool(self.session.pending_edit_ids()), "no edit is pending review")

    def nothing_pending(self, _: Any) -> bool:
        ok = not self.session.pending_edit_ids() and not self.session.approved_unapplied_ids()
        return self._check(ok, "edits are still pending review or approved but not applied")

    def edit_is_pending(self, _: Any) -> bool:
        edit_id = self.data.get("edit_id")
        return self._check(
            edit_id in self.session.pending_edit_ids(), f"edit {edit_id!r} is not pending review"
        )

    def decides_last_pending(self, _: Any) -> bool:
        # No failed_guard note: a false here just selects the next row for the same trigger.
        return self.session.pending_edit_ids() == [self.data.get("edit_id")] and not (
            self.session.approved_unapplied_ids()
        )

    def rollback_is_requested(self, _: Any) -> bool:
        return self._check(self.session.rollback_requested, "no rollback was requested")

    def rollback_not_requested(self, _: Any) -> bool:
        return self._check(not self.session.rollback_requested, "a rollback is already under way")

    def gate_tasks_not_chosen(self, _: Any) -> bool:
        chosen = self.session.gate_task_ids is not None
        return self._check(not chosen, f"the gate tasks are already chosen (seed {self.session.gate_seed})")

    def nothing_left_to_revert(self, _: Any) -> bool:
        return self._check(not self.session.applied_unreverted_ids(), "applied edits are not reverted yet")


def legal_commands(state: str) -> list[str]:
    """Commands that exist from `state` (their guards may still refuse)."""
    return rulebook.legal_commands(MACHINE, state)


def decide(
    session: SessionFacts, command: str, data: dict[str, Any] | None = None, session_id: str = ""
) -> tuple[str, str]:
    """Return (source, dest) for a legal command, dest == source for a fact. Raise otherwise."""
    decision = _Decision(str(session.status), session, data or {})
    return rulebook.decide(MACHINE, decision, command, session_id)


def is_fact(command: str) -> bool:
    return command in FACTS


def mermaid() -> str:
    """The lifecycle as a Mermaid state diagram (moves only; facts do not change state)."""
    return rulebook.mermaid(S.INITIATED.value, MOVES, TERMINAL)
