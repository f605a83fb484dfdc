"""distill_es: event-sourced learning sessions for local AI agents.

from distill_es import Engine, OnDemandTrigger
session = Engine.open("~/agent").run_session(OnDemandTrigger())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distill_es import _moved
from distill_es._version import __version__ as __version__
from distill_es.domain.enums import (
    AutonomyMode,
    EditOp,
    EditPillar,
    EditRiskTier,
    SessionStatus,
    TriggerKind,
)

_moved.install()  # the module paths earlier releases documented still import

if TYPE_CHECKING:
    from distill_es.api import Engine
    from distill_es.config.settings import Settings
    from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, ScheduledTrigger, UserFlagTrigger
    from distill_es.domain.vocabulary import (
        BenchmarkSnapshot,
        Edit,
        EditOutcome,
        FailureCluster,
        LearningPlan,
        LearningSession,
        Trigger,
    )

__all__ = [
    "AutonomyMode",
    "BenchmarkSnapshot",
    "ClusterTrigger",
    "Edit",
    "EditOp",
    "EditOutcome",
    "EditPillar",
    "EditRiskTier",
    "Engine",
    "FailureCluster",
    "LearningPlan",
    "LearningSession",
    "OnDemandTrigger",
    "ScheduledTrigger",
    "SessionStatus",
    "Settings",
    "Trigger",
    "TriggerKind",
    "UserFlagTrigger",
]

# The names that need pydantic models or the engine are imported on first use: `import distill_es`
# (which every `distill-es` command does) then costs no model building (docs/performance.md).
_TRIGGERS = ("ClusterTrigger", "OnDemandTrigger", "ScheduledTrigger", "UserFlagTrigger")
_VALUES = ("BenchmarkSnapshot", "Edit", "EditOutcome", "FailureCluster", "LearningPlan", "LearningSession")
_LAZY = {
    "Engine": "distill_es.api",
    "Settings": "distill_es.config.settings",
    **dict.fromkeys(_TRIGGERS, "distill_es.domain.triggers"),
    **dict.fromkeys((*_VALUES, "Trigger"), "distill_es.domain.vocabulary"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'distill_es' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
