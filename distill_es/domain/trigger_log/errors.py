"""The trigger log's typed errors."""

from __future__ import annotations

from distill_es.domain.errors import DistillError


class TraceNotFound(DistillError):
    pass
