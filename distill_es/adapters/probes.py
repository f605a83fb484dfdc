"""Cheap probes of the outside endpoints for `distill-es doctor`: they cost nothing and wait little.

The teacher is asked for its models list (a free GET, never a paid completion); the student answers a
one-token request through `OpenAIStudent.probe`, with a short timeout and at most one retry.
"""

from __future__ import annotations

import os
from pathlib import Path

from distill_es.adapters.retry import RetryPolicy, call_with_retries, safe_url
from distill_es.config.settings import NetworkSettings, StudentSettings
from distill_es.ports import StudentResult

PROBE_TIMEOUT_SECONDS = 5.0
DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"


def anthropic_base_url() -> str:
    """Where the teacher's SDK sends requests ($ANTHROPIC_BASE_URL, else the API), for messages."""
    return safe_url(os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_ANTHROPIC_URL)


def probe_teacher(timeout: float = PROBE_TIMEOUT_SECONDS) -> int:
    """GET /v1/models with the environment's key: how many models the key may use. A refused key or an
    endpoint that does not answer raises (`EndpointUnavailable`, `RequestRefused`)."""
    import anthropic

    client = anthropic.Anthropic(max_retries=0, timeout=timeout)
    policy = RetryPolicy(
        max_retries=1, backoff_seconds=0.2, max_backoff_seconds=0.5, max_rate_limit_wait_seconds=1
    )
    page = call_with_retries(
        lambda: client.models.list(limit=20), role="teacher", endpoint=anthropic_base_url(), policy=policy
    )
    return len(page.data)


def probe_student(home: Path, settings: StudentSettings, model: str) -> StudentResult:
    """The student endpoint's answer to one token of `model`, timed out and retried briefly."""
    from distill_es.adapters.student import OpenAIStudent

    quick = settings.model_copy(update={"timeout_seconds": PROBE_TIMEOUT_SECONDS, "max_retries": 1})
    network = NetworkSettings(backoff_seconds=0.2, max_backoff_seconds=0.5, max_rate_limit_wait_seconds=1)
    return OpenAIStudent(home, quick, network=network).probe(model)
