"""What-if: every recorded gate re-decided under a policy chosen in a GET form (`regate`), with the
verdicts that would flip and the per-cluster before/after. Zero model calls; nothing recorded."""

from __future__ import annotations

import math
from typing import Any

from distill_es.web.reads import AuditReader


class BadPolicy(ValueError):
    """A policy value that is not a number in range (a 400 page)."""


def _number(name: str, raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadPolicy(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise BadPolicy(f"{name} must be a finite number ≥ 0, not {raw!r}")
    return value


def context(
    reader: AuditReader, max_regression: str | None, min_improvement: str | None, session: str | None
) -> dict[str, Any]:
    eps, gain = _number("max_regression", max_regression), _number("min_improvement", min_improvement)
    sid = reader.resolve(session) if session and session.strip() else None  # unknown: 404; ambiguous: 400
    report = reader.regate(sid, eps, gain) if hasattr(reader.engine, "regate") else None
    return {
        "report": report,
        "max_regression": "" if eps is None else max_regression,
        "min_improvement": "" if gain is None else min_improvement,
        "session": session or "",
    }
