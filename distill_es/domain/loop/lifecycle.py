"""The loop's rulebook: running → stopped, plus the facts a running loop records, with their guards."""

from __future__ import annotations

from typing import Any

from distill_es.domain import rulebook
from distill_es.domain.errors import IllegalTransition

MOVES: list[dict[str, Any]] = [
    {"trigger": "stop", "source": "running", "dest": "stopped", "conditions": ["nothing_in_flight"]},
]
FACTS: dict[str, list[str]] = {
    "record_session_started": ["running"],
    "record_session_finished": ["running"],
}
FACT_GUARDS: dict[str, list[str]] = {
    "record_session_started": ["nothing_in_flight"],
    "record_session_finished": ["session_in_flight"],
}
MACHINE = rulebook.build_machine(
    "Loop", ["running", "stopped"], rulebook.transition_table(MOVES, FACTS, FACT_GUARDS)
)


class _Decision(rulebook.Decision):
    """Throw-away model the machine runs on: guards only read the loop."""

    def __init__(self, state: str, in_flight: str | None, data: dict[str, Any]) -> None:
        super().__init__(state)
        self.in_flight, self.data = in_flight, data

    def nothing_in_flight(self, _: Any) -> bool:
        return self._check(
            self.in_flight is None, f"session {self.in_flight} was started and has not finished"
        )

    def session_in_flight(self, _: Any) -> bool:
        session_id = self.data.get("session_id")
        ok = self.in_flight is not None and self.in_flight == session_id
        return self._check(ok, f"session {session_id} is not the loop's session in flight")


def decide(state: str, in_flight: str | None, command: str, data: dict[str, Any], loop_id: str) -> None:
    try:
        rulebook.decide(MACHINE, _Decision(state, in_flight, data), command)
    except IllegalTransition as exc:
        raise _named(exc, loop_id) from None


def _named(exc: IllegalTransition, loop_id: str) -> IllegalTransition:
    exc.args = (str(exc.args[0]).replace("the session is", f"loop {loop_id} is", 1),)
    return exc
