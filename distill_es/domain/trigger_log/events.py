"""The trigger log's event catalogue: explicit stable topics, JSON-only payloads, chained digests."""

from __future__ import annotations

from typing import Any

from distill_es.domain import chain


class TriggerLogEvent(chain.ChainedEvent):
    """Base of every non-initial TriggerLog event."""


class TriggerLogOpened(chain.ChainedCreated):
    TOPIC = "distill_es.TriggerLogOpened.v1"
    workspace: str


class TraceFlagged(TriggerLogEvent):
    TOPIC = "distill_es.TraceFlagged.v1"
    flag_id: str
    trace_id: str
    note: str
    flagged_by: str


class TriggerFired(TriggerLogEvent):
    """Intent: this trigger fired (consuming its flags or cron slot); its session starts next."""

    TOPIC = "distill_es.TriggerFired.v1"
    firing_id: str
    kind: str
    reason: str
    clock_at: str  # the daemon's clock when it decided (ISO 8601), which tests inject
    trigger: dict[str, Any]
    flag_ids: list[str]
    cron: str | None
    slot: str | None  # the cron slot this firing used up (ISO 8601, UTC)


class SessionLaunched(TriggerLogEvent):
    TOPIC = "distill_es.SessionLaunched.v1"
    firing_id: str
    session_id: str
    adopted: bool  # found already started after a crash
