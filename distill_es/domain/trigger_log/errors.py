"""The trigger log's typed errors."""

from __future__ import annotations

from distill_es.domain.errors import TraceNotFound  # one error for a trace the source lacks, flag or start

__all__ = ["TraceNotFound"]
