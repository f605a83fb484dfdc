"""The benchmark run's rulebook: running → finished | failed, and the scores a running run records."""

from __future__ import annotations

from typing import Any

from distill_es.domain import rulebook
from distill_es.domain.errors import IllegalTransition

MOVES: list[dict[str, Any]] = [
    {"trigger": "finish", "source": "running", "dest": "finished", "conditions": ["all_scored"]},
    {"trigger": "fail", "source": "running", "dest": "failed"},
]
FACTS: dict[str, list[str]] = {"record_scores": ["running"]}
FACT_GUARDS: dict[str, list[str]] = {"record_scores": ["tasks_of_the_run"]}
STATES = ["running", "finished", "failed"]
MACHINE = rulebook.build_machine("BenchmarkRun", STATES, rulebook.transition_table(MOVES, FACTS, FACT_GUARDS))


class _Decision(rulebook.Decision):
    """Throw-away model the machine runs on: guards only read the run's facts."""

    def __init__(self, state: str, unscored: list[str], data: dict[str, Any]) -> None:
        super().__init__(state)
        self.unscored, self.data = unscored, data

    def all_scored(self, _: Any) -> bool:
        return self._check(not self.unscored, f"task(s) without a score: {', '.join(self.unscored[:10])}")

    def tasks_of_the_run(self, _: Any) -> bool:
        task_ids = [str(t) for t in self.data.get("task_ids", [])]
        strays = [t for t in task_ids if t not in self.unscored]
        return self._check(not strays, f"not unscored tasks of this run: {', '.join(strays[:10])}")


def decide(state: str, unscored: list[str], command: str, data: dict[str, Any], run_id: str) -> None:
    try:
        rulebook.decide(MACHINE, _Decision(state, unscored, data), command)
    except IllegalTransition as exc:
        exc.args = (str(exc.args[0]).replace("the session is", f"benchmark run {run_id} is", 1),)
        raise
