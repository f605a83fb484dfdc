"""The sessions list: status, trigger, cost, benchmark before → after, verify verdict; filtered by
status and trigger from the query string."""

from __future__ import annotations

from typing import Any

from distill_es.domain.vocabulary import SessionStatus, TriggerKind
from distill_es.web.reads import AuditReader

STATUSES = [s.value for s in SessionStatus]
TRIGGERS = [t.value for t in TriggerKind]


class BadFilter(ValueError):
    """A filter value the list does not know (a 400 page)."""


def context(reader: AuditReader, status: str | None, trigger: str | None) -> dict[str, Any]:
    status, trigger = status or None, trigger or None
    if status is not None and status not in STATUSES:
        raise BadFilter(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    if trigger is not None and trigger not in TRIGGERS:
        raise BadFilter(f"unknown trigger {trigger!r} (one of {', '.join(TRIGGERS)})")
    return {
        "sessions": reader.sessions(status=status, trigger=trigger),
        "status": status or "",
        "trigger": trigger or "",
        "statuses": STATUSES,
        "triggers": TRIGGERS,
    }
