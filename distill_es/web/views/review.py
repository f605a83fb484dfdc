"""The review queue: pending edits with their diffs (read-only; decide with `distill-es approve`)."""

from __future__ import annotations

from typing import Any

from distill_es.web.reads import AuditReader


def context(reader: AuditReader) -> dict[str, Any]:
    return {"items": reader.pending_reviews()}
