"""The trigger log's read model."""

from __future__ import annotations

from datetime import datetime

from distill_es.domain.vocabulary import Value


class Flag(Value):
    flag_id: str
    trace_id: str
    note: str = ""
    flagged_by: str = ""
    flagged_at: datetime
    status: str  # pending | consumed
    firing_id: str | None = None
    session_id: str | None = None
