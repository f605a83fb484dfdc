"""The handler table covers every step `next_step` can choose, once, by type."""

from __future__ import annotations

import inspect

from distill_es.app.activities import HANDLERS
from distill_es.domain.session import next_step as steps
from distill_es.domain.session.react import RECORDS, react


def step_classes() -> set[type[steps.Step]]:
    """Every Step subclass defined in next_step.py (Rest is the absence of a step: nothing to perform)."""
    return {
        cls
        for _, cls in inspect.getmembers(steps, inspect.isclass)
        if issubclass(cls, steps.Step) and cls is not steps.Step and cls.__module__ == steps.__name__
    }


def test_every_step_but_rest_has_exactly_one_handler() -> None:
    performed = step_classes() - {steps.Rest}
    assert set(HANDLERS) == performed  # a dict: one handler per type, and no handler for anything else
    assert steps.Rest not in HANDLERS


def test_the_handler_table_is_keyed_by_type_not_by_name() -> None:
    assert all(isinstance(key, type) for key in HANDLERS)
    assert all(callable(handler) for handler in HANDLERS.values())


def test_every_performed_step_has_a_reaction() -> None:
    """`react` knows what to record for every step's `Done`: a default command or its own rule."""
    special = {steps.RunTool, steps.SubmitDiagnosis}
    assert set(RECORDS) | special == set(HANDLERS)
    assert callable(react)
