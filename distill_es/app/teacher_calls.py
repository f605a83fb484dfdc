"""Teacher calls as the engine reports and records them: where they went, and what they cost."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from distill_es.adapters.pricing import cost_of, overrides_from
from distill_es.adapters.retry import safe_url
from distill_es.adapters.teacher import request_digest, response_to_dict


def teacher_endpoint(teacher: Any) -> str:
    """Where a teacher client sends its requests, for messages (never a key): the base URL of
    `teacher` (or of the client it wraps), else the environment's, else Anthropic's."""
    for candidate in (teacher, getattr(teacher, "inner", None), getattr(teacher, "_client", None)):
        url = getattr(candidate, "base_url", None)
        if url:
            return safe_url(str(url))
    return safe_url(os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")


def paid_call(
    call_key: str,
    purpose: str,
    params: dict[str, Any],
    message: Any,
    usage: dict[str, int],
    pricing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`record_teacher_call`'s arguments for a reply whose `usage` was read (and checked) already:
    the model that answered (else the one asked), the request's digest, the reply, its price (under
    the session's recorded `[pricing]` table, when it has one)."""
    model = str(getattr(message, "model", None) or params["model"])
    return {
        "call_key": call_key,
        "purpose": purpose,
        "model": model,
        "request_digest": request_digest(params),
        "response": response_to_dict(message),
        "usage": usage,
        "cost_usd": cost_of(model, usage, overrides_from(pricing)),
    }
