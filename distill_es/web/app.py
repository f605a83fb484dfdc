"""The Starlette app of the web audit view: read-only GET pages over one open engine.

Routes: `/` sessions, `/sessions/{id}` (`?at=N`: as of version N), `/sessions/{id}/edits/{edit}`,
`/trends`, `/whatif`, `/review`, `/static/…`. Unknown sessions, edits and versions are 404 pages,
bad query values 400 pages; every response carries the headers of web/security.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from distill_es.domain.errors import (
    DamagedSession,
    EditNotFound,
    InvalidVersion,
    SessionNotFound,
    VersionNotFound,
)
from distill_es.web.reads import AmbiguousSession, AuditReader
from distill_es.web.security import SecurityHeaders
from distill_es.web.templating import render
from distill_es.web.views import edit, review, session, sessions, trends, whatif

if TYPE_CHECKING:
    from distill_es.api import Engine

log = logging.getLogger(__name__)
NOT_FOUND = (SessionNotFound, EditNotFound, VersionNotFound)


def page(template: str, context: dict[str, Any], code: int = 200) -> HTMLResponse:
    return HTMLResponse(render(template, standalone=False, **context), status_code=code)


def error_page(code: int, title: str, message: str) -> HTMLResponse:
    return page("error.html", {"title": title, "message": message, "code": code}, code)


def _session_id(request: Request) -> str:
    reader: AuditReader = request.app.state.reader
    return reader.resolve(request.path_params["session_id"])


def _version(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidVersion(f"version {raw!r}: versions are whole numbers from 1")
    return int(raw)


def sessions_page(request: Request) -> Response:
    q = request.query_params
    context = sessions.context(request.app.state.reader, q.get("status"), q.get("trigger"))
    return page("sessions.html", context)


def session_page(request: Request) -> Response:
    sid = _session_id(request)
    if sid != request.path_params["session_id"]:  # a prefix: go to the full id's page
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/sessions/{sid}{query}", status_code=307)
    at = _version(request.query_params.get("at"))
    return page("session.html", session.context(request.app.state.reader, sid, at))


def edit_page(request: Request) -> Response:
    sid = _session_id(request)
    context = edit.context(request.app.state.reader, sid, request.path_params["edit_id"])
    return page("edit.html", context)


def trends_page(request: Request) -> Response:
    return page("trends.html", trends.context(request.app.state.reader))


def whatif_page(request: Request) -> Response:
    q = request.query_params
    context = whatif.context(
        request.app.state.reader, q.get("max_regression"), q.get("min_improvement"), q.get("session")
    )
    return page("whatif.html", context)


def review_page(request: Request) -> Response:
    return page("review.html", review.context(request.app.state.reader))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = "Not found" if exc.status_code == 404 else "Not allowed" if exc.status_code == 405 else "Error"
    return error_page(exc.status_code, title, str(exc.detail))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_page(404, "Not found", str(exc))


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error_page(400, "Bad request", str(exc))


async def _damaged(request: Request, exc: Exception) -> Response:
    return error_page(409, "Damaged session", f"{exc} — run `distill-es verify` for the details")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("the audit view failed on %s", request.url.path)
    return error_page(500, "Error", f"this page could not be read: {type(exc).__name__}")


def create_app(engine: Engine) -> Starlette:
    """The ASGI app over an open engine (the caller closes it after the server stops)."""
    reader = AuditReader(engine)
    from importlib.resources import files

    static = StaticFiles(directory=str(files("distill_es.web").joinpath("static")))
    routes = [
        Route("/", sessions_page, name="sessions"),
        Route("/sessions/{session_id}", session_page, name="session"),
        Route("/sessions/{session_id}/edits/{edit_id}", edit_page, name="edit"),
        Route("/trends", trends_page, name="trends"),
        Route("/whatif", whatif_page, name="whatif"),
        Route("/review", review_page, name="review"),
        Mount("/static", app=static, name="static"),
    ]
    handlers: dict[Any, Any] = {
        HTTPException: _http_error,
        SessionNotFound: _not_found, EditNotFound: _not_found, VersionNotFound: _not_found,
        InvalidVersion: _bad_request, AmbiguousSession: _bad_request,
        sessions.BadFilter: _bad_request, whatif.BadPolicy: _bad_request,
        DamagedSession: _damaged, Exception: _server_error,
    }  # fmt: skip
    bad_policy = _audit_policy_error()
    if bad_policy is not None:
        handlers[bad_policy] = _bad_request
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(SecurityHeaders)])
    app.state.reader = reader
    return app


def _audit_policy_error() -> type[Exception] | None:
    """regate's own error for a policy out of range, when this build has it."""
    try:
        from distill_es.app.audit.regate import InvalidPolicy
    except ImportError:
        return None
    return InvalidPolicy
