"""Adopting a session a crash left unrecorded: one rule for loops and the daemon."""

from __future__ import annotations

from typing import Any

from distill_es.app.adoption import Launch, adopt_or_start, started_for

ROWS: list[dict[str, Any]] = [
    {"session_id": "s3", "trigger_metadata": {"firing_id": "f1"}},
    {"session_id": "s2", "trigger_metadata": {"loop_id": "L", "loop_iteration": 2}},
    {"session_id": "s1", "trigger_metadata": {"loop_id": "L", "loop_iteration": 1}},
    {"session_id": "s0", "trigger_metadata": None},
]


def test_the_session_carrying_every_item_of_the_key_is_found() -> None:
    assert started_for(ROWS, {"loop_id": "L", "loop_iteration": 1}) == "s1"
    assert started_for(ROWS, {"firing_id": "f1"}) == "s3"
    assert started_for(ROWS, {"loop_id": "L", "loop_iteration": 3}) is None
    assert started_for(ROWS, {"loop_id": "other", "loop_iteration": 1}) is None


def test_a_found_session_is_adopted_and_nothing_is_started() -> None:
    def start() -> str:
        raise AssertionError("a session was started although one was there to adopt")

    assert adopt_or_start(ROWS, {"firing_id": "f1"}, start) == Launch("s3", adopted=True)


def test_without_one_a_session_is_started() -> None:
    assert adopt_or_start(ROWS, {"firing_id": "f2"}, lambda: "new") == Launch("new", adopted=False)
