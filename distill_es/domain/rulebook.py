"""The mechanism every lifecycle shares: `transitions` as a stateless rulebook.

A lifecycle module (sessions, training runs, loops) writes down its states, moves, facts and guards;
these functions turn that table into one module-level `Machine(model=None)` and fire it on a
throw-away `Decision` that only reads the aggregate. The aggregate is never bound to the machine.
Functions take the machine as an argument so a module (or a test) can swap its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from transitions import Machine, MachineError

from distill_es.domain.errors import GuardRejected, IllegalTransition, UnknownCommand


def transition_table(
    moves: list[dict[str, Any]], facts: Mapping[str, list[str]], fact_guards: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    """Moves change state; facts are internal transitions (dest None) allowed in the listed states."""
    return moves + [
        {"trigger": fact, "source": sources, "dest": None, "conditions": fact_guards.get(fact, [])}
        for fact, sources in facts.items()
    ]


def build_machine(name: str, states: list[str], transitions: list[dict[str, Any]]) -> Machine:
    return Machine(
        model=None,
        states=states,
        transitions=transitions,
        initial=None,
        auto_transitions=False,  # no to_<state>() shortcuts around the table
        send_event=True,
        after_state_change="capture",
        name=name,
    )


class Decision:
    """Throw-away model a machine runs on. Guards only read; `capture` only notes the outcome."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.outcome: tuple[str, str] | None = None
        self.failed_guard = ""

    def _check(self, ok: bool, reason: str) -> bool:
        if not ok and not self.failed_guard:  # the first refusal is the one to report
            self.failed_guard = reason
        return ok

    def capture(self, event: Any) -> None:
        source = event.transition.source
        self.outcome = (source, event.transition.dest or source)


def legal_commands(machine: Machine, state: str) -> list[str]:
    """Commands that exist from `state` (their guards may still refuse)."""
    return sorted(machine.get_triggers(state))


def decide(
    machine: Machine,
    decision: Decision,
    command: str,
    subject_id: str = "",
    *,
    unknown: Callable[..., UnknownCommand] = UnknownCommand,
    illegal: Callable[..., IllegalTransition] = IllegalTransition,
    rejected: Callable[..., GuardRejected] = GuardRejected,
) -> tuple[str, str]:
    """(source, dest) for a legal command, dest == source for a fact; the typed error otherwise."""
    state = decision.state
    event = machine.events.get(command)
    if event is None:
        raise unknown(command, state, legal_commands(machine, state), subject_id)
    try:
        moved = event.trigger(decision)
    except MachineError:
        raise illegal(command, state, legal_commands(machine, state), subject_id) from None
    if not moved:
        reason = decision.failed_guard or "guard refused"
        raise rejected(command, state, legal_commands(machine, state), reason, subject_id)
    return decision.outcome or (state, state)


def mermaid(initial: str, moves: Iterable[dict[str, Any]], terminal: Iterable[str]) -> str:
    """The lifecycle as a Mermaid state diagram (moves only; facts do not change state)."""
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    seen: set[tuple[str, str, str]] = set()
    for move in moves:
        sources = move["source"] if isinstance(move["source"], list) else [move["source"]]
        for source in sources:
            key = (source, move["dest"], move["trigger"])
            if key not in seen:
                seen.add(key)
                lines.append(f"    {source} --> {move['dest']}: {move['trigger']}")
    for state in sorted(terminal):
        lines.append(f"    {state} --> [*]")
    return "\n".join(lines) + "\n"
