"""The benchmark run's typed errors."""

from __future__ import annotations

from distill_es.domain.errors import SessionNotFound


class BenchmarkRunNotFound(SessionNotFound):
    """No benchmark run with that id in this store (a SessionNotFound, so the CLI exits 3)."""


class UnknownRef(BenchmarkRunNotFound):
    """The git ref names no commit of the workspace (exit 3, like any other not-found)."""
