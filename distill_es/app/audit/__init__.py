"""Audit reads over recorded sessions: what-if re-gating (`regate`) and the lineage of an edit
(`explain`). Pure functions of a session's events; see docs/audit.md."""

from distill_es.app.audit.explain import explain_events
from distill_es.app.audit.links import CommitFacts
from distill_es.app.audit.models import (
    CitedTrace,
    ClusterChange,
    EditLineage,
    GatePolicy,
    Link,
    RegatedGate,
    RegateReport,
    SessionRegate,
)
from distill_es.app.audit.regate import LIMITS, InvalidPolicy, check_policy, regate_events

__all__ = [
    "LIMITS",
    "CitedTrace",
    "ClusterChange",
    "CommitFacts",
    "EditLineage",
    "GatePolicy",
    "InvalidPolicy",
    "Link",
    "RegateReport",
    "RegatedGate",
    "SessionRegate",
    "check_policy",
    "explain_events",
    "regate_events",
]
