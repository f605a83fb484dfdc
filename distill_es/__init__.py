"""distill_es: event-sourced learning sessions for local AI agents.

from distill_es import Engine, OnDemandTrigger
session = Engine.open("~/agent").run_session(OnDemandTrigger())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distill_es import _moved
from distill_es._version import __version__ as __version__
from distill_es.domain.triggers import ClusterTrigger, OnDemandTrigger, ScheduledTrigger, UserFlagTrigger
from distill_es.domain.vocabulary import (
    AutonomyMode,
    BenchmarkSnapshot,
    Edit,
    EditOp,
    EditOutcome,
    EditPillar,
    EditRiskTier,
    FailureCluster,
    LearningPlan,
    LearningSession,
    SessionStatus,
    Trigger,
    TriggerKind,
)

_moved.install()  # the module paths earlier releases documented still import

if TYPE_CHECKING:
    from distill_es.api import Engine
    from distill_es.config.settings import Settings

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


def __getattr__(name: str) -> Any:
    # The engine pulls in the anthropic and openai SDKs; load it only when someone asks for it.
    if name == "Engine":
        from distill_es.api import Engine

        return Engine
    if name == "Settings":
        from distill_es.config.settings import Settings

        return Settings
    raise AttributeError(f"module 'distill_es' has no attribute {name!r}")
