"""The testing kit: hypothesis strategies, a session state machine, scripted fakes and fixtures.

Names are imported on first use: the pytest plugin lives in this package, so everything imported here
would load in every pytest run of every project that has distill_es installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_STRATEGIES = (
    "BOGUS_COMMAND",
    "Command",
    "autonomy_modes",
    "benchmark_snapshots",
    "clusters",
    "commands",
    "edits",
    "event_histories",
    "fire",
    "plans",
    "started_sessions",
    "triggers",
)
_MACHINE = ("MACHINE_SETTINGS", "SessionMachineTest")
_LAZY = {
    **dict.fromkeys(_STRATEGIES, "distill_es.testing.strategies"),
    **dict.fromkeys(_MACHINE, "distill_es.testing.machine"),
    "CONTRACT": "distill_es.testing.contracts",
    "ScriptedJudge": "distill_es.testing.fakes",
    "ScriptedStudent": "distill_es.testing.fakes",
    "ScriptedTeacher": "distill_es.testing.fakes",
}

if TYPE_CHECKING:
    from distill_es.testing.contracts import CONTRACT
    from distill_es.testing.fakes import ScriptedJudge, ScriptedStudent, ScriptedTeacher
    from distill_es.testing.machine import MACHINE_SETTINGS, SessionMachineTest
    from distill_es.testing.strategies import (
        BOGUS_COMMAND,
        Command,
        autonomy_modes,
        benchmark_snapshots,
        clusters,
        commands,
        edits,
        event_histories,
        fire,
        plans,
        started_sessions,
        triggers,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BOGUS_COMMAND",
    "CONTRACT",
    "MACHINE_SETTINGS",
    "Command",
    "ScriptedJudge",
    "ScriptedStudent",
    "ScriptedTeacher",
    "SessionMachineTest",
    "autonomy_modes",
    "benchmark_snapshots",
    "clusters",
    "commands",
    "edits",
    "event_histories",
    "fire",
    "plans",
    "started_sessions",
    "triggers",
]
