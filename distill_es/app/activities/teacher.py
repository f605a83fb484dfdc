"""One teacher request, performed and reported as an outcome (the caller records it)."""

from __future__ import annotations

from typing import Any

from distill_es.adapters.retry import MalformedResponse, call_with_retries
from distill_es.adapters.teacher import usage_of
from distill_es.app.activities.context import StepContext
from distill_es.app.teacher_calls import paid_call, teacher_endpoint
from distill_es.domain.errors import CassetteMiss, InvalidTeacherOutput, RequestRefused, SessionInterrupted
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.react import Done, Outcome, Refused


def checked_message(message: Any) -> Any:
    """A teacher reply that is a Message (or its dict) with a content list; else `MalformedResponse`
    (a proxy's HTML page, a truncated body), which is retried and then interrupts."""
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
    if not isinstance(content, list):
        raise MalformedResponse(f"the reply is not a Message with content blocks: {str(message)[:120]!r}")
    return message


def call_teacher(
    ctx: StepContext, session: Session, call_key: str, purpose: str, params: dict[str, Any]
) -> Outcome:
    """Perform one teacher request (with retries). `Done` carries `record_teacher_call`'s arguments;
    `Refused` a request the teacher will never answer (a cassette divergence, a 400, an unreadable
    bill). A missing key or an endpoint that stays down interrupts the session (nothing recorded)."""
    import anthropic  # for its error types; the SDK is imported only once a call is made

    adapters = ctx.adapters
    try:
        message = call_with_retries(
            lambda: checked_message(adapters.teacher.messages.create(**params)),
            role="teacher",
            endpoint=teacher_endpoint(adapters.teacher),
            policy=adapters.retry_policy(),
            on_wait=adapters.waiting,
        )
    except CassetteMiss as exc:
        return Refused("cassette_divergence", str(exc))
    except RequestRefused as exc:  # 400/413/422: the same request would be refused again
        return Refused("teacher_error", f"the teacher refused the {purpose} request: {exc.error}")
    except TypeError as exc:
        if "authentication" not in str(exc):
            raise
        # The SDK raises TypeError when it has no key: a setup problem, not a session failure.
        raise SessionInterrupted(
            f"teacher call {call_key} of session {session.id} needs Anthropic credentials: set "
            "ANTHROPIC_API_KEY (or pass a teacher); nothing was recorded — run the session again"
        ) from exc
    except anthropic.APIError as exc:
        raise SessionInterrupted(
            f"teacher call {call_key} of session {session.id} did not complete ({type(exc).__name__}: "
            f"{exc}); nothing was recorded — run the session again to resume"
        ) from exc
    try:
        usage = usage_of(message)
    except InvalidTeacherOutput as exc:
        if purpose == "self_run":
            raise  # run_self_on_task: the teacher hears it as a tool error and may go on
        # A paid reply whose bill cannot be read: the session's failure, never priced.
        return Refused(
            "teacher_invalid_output", f"the teacher's reply to {purpose} call {call_key} is invalid: {exc}"
        )
    return Done(paid_call(call_key, purpose, params, message, usage, session.settings.get("pricing")))
