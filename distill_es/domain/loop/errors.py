"""The loop's typed errors."""

from __future__ import annotations

from distill_es.domain.errors import SessionNotFound


class LoopNotFound(SessionNotFound):
    """No loop with that id in this store (a SessionNotFound, so the CLI exits 3)."""
