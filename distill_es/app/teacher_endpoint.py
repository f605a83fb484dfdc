"""Where a teacher client sends its requests, for messages (never a key)."""

from __future__ import annotations

import os
from typing import Any

from distill_es.adapters.retry import safe_url


def teacher_endpoint(teacher: Any) -> str:
    """The base URL of `teacher` (or of the client it wraps), else the environment's, else Anthropic's."""
    for candidate in (teacher, getattr(teacher, "inner", None), getattr(teacher, "_client", None)):
        url = getattr(candidate, "base_url", None)
        if url:
            return safe_url(str(url))
    return safe_url(os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")
