"""What can start a session. Each constructor returns a `Trigger` value (kind + metadata)."""

from __future__ import annotations

from typing import Any

from distill_es.domain.vocabulary import Trigger, TriggerKind


def OnDemandTrigger(metadata: dict[str, Any] | None = None) -> Trigger:
    return Trigger(kind=TriggerKind.ON_DEMAND, metadata=dict(metadata or {}))


def UserFlagTrigger(trace_id: str) -> Trigger:
    return Trigger(kind=TriggerKind.USER_FLAG, metadata={"trace_id": trace_id})


def ScheduledTrigger(cron: str = "0 3 * * *", new_trace_count: int = 0) -> Trigger:
    return Trigger(kind=TriggerKind.SCHEDULED, metadata={"cron": cron, "new_trace_count": new_trace_count})


def ClusterTrigger(
    cluster_description: str, trace_ids: list[str] | None = None, failure_rate: float = 0.0
) -> Trigger:
    if not 0.0 <= failure_rate <= 1.0:
        raise ValueError(f"failure_rate must be within [0, 1], got {failure_rate}")
    return Trigger(
        kind=TriggerKind.CLUSTER,
        metadata={
            "cluster_description": cluster_description,
            "trace_ids": list(trace_ids or []),
            "failure_rate": failure_rate,
        },
    )
