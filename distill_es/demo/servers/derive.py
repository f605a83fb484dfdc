"""Ids and token counts derived from a request, so every answer is deterministic."""

from __future__ import annotations

import hashlib
from typing import Any

from distill_es.domain.chain import canonical_json


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_id(request: Any) -> str:
    """sha256 hex of the request's canonical JSON (the one definition, `domain.chain`)."""
    return sha(canonical_json(request))


def tokens(value: Any) -> int:
    # A stand-in tokenizer: about four characters a token, at least one.
    return max(1, len(canonical_json(value)) // 4)
