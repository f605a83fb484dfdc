"""`distill-es report`: the session page as one self-contained HTML file (the stylesheet inlined, no
links back to a server, no script, no external resource) to attach to a review or a ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from distill_es.web.reads import AuditReader
from distill_es.web.templating import render, stylesheet
from distill_es.web.views import session

if TYPE_CHECKING:
    from distill_es.api import Engine


def render_report(engine: Engine, session_id: str, *, at: int | None = None) -> str:
    """The HTML of the session's page (as of version `at` when given)."""
    context = session.context(AuditReader(engine), session_id, at)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return render("report.html", standalone=True, css=stylesheet(), generated_at=generated, **context)
