"""Driving a session from a command: the live progress display, what an interruption says to do
next, the exit code of a session that failed, and the workspace's git log shown after edits."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from distill_es.cli.console import out, print_error, print_json
from distill_es.cli.engines import is_demo, open_engine, resolve_home, resolve_session
from distill_es.cli.errors import CliFailure
from distill_es.domain.enums import SessionStatus
from distill_es.domain.errors import SessionInterrupted, StoreUnavailable

if TYPE_CHECKING:
    from distill_es.api import Engine
    from distill_es.cli.progress import StepProgress
    from distill_es.domain.vocabulary import LearningSession


def session_exit(view: LearningSession, home: Path) -> None:
    """Exit 1 when the session failed, saying why on stderr (one JSON object under --json)."""
    if view.status != SessionStatus.FAILED:
        return
    hint = ""
    if is_demo(home) and "no recorded response" in (view.error or ""):
        # The shipped cassette holds the first demo session only; later sessions ask other questions.
        hint = (
            "the demo's recorded teacher knows only the first demo session; start a fresh one with "
            "`distill-es demo`, or use a real teacher with --teacher anthropic"
        )
    print_error(f"session {view.id} failed: {view.error}", hint, code=1)
    raise typer.Exit(1)


def git_log(home: Path, limit: int = 20) -> str:
    result = subprocess.run(
        ["git", "-C", str(home), "log", "--oneline", f"-n{limit}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout if result.returncode == 0 else f"(git log failed: {result.stderr.strip()})\n"


def _store_option(engine: Engine) -> str:
    """` --store URL` when the engine's store is not the workspace's own (a resume must find it);
    nothing for a URL with a password, which is not printed (it is in $DISTILL_ES_STORE or known)."""
    from urllib.parse import urlparse

    from distill_es.store.urls import default_store_url

    url = engine.store.url
    if url == default_store_url(engine.home) or urlparse(url).password:
        return ""
    return f" --store {shlex.quote(url)}"


def drive(engine: Engine, session_id: str, progress: StepProgress, home: Path) -> LearningSession:
    """Run the session to rest under the live progress display; interruptions say how to resume."""
    resume = f"distill-es --home {shlex.quote(str(home))}{_store_option(engine)} resume {session_id}"
    try:
        with progress:
            return engine.run(session_id)
    except SessionInterrupted as exc:
        message = f"session {session_id} interrupted: {exc}"
        raise CliFailure(1, message, f"nothing was lost; continue with `{resume}`") from exc
    except StoreUnavailable as exc:  # the last recorded step stands; the one that failed is redone
        fix = exc.hint.partition(" Nothing of the failed write")[0]
        raise CliFailure(
            1, str(exc), f"{fix} Nothing of the failed step was stored; then continue with `{resume}`"
        ) from exc
    except KeyboardInterrupt:
        raise CliFailure(  # noqa: B904 - the interrupt itself says nothing more
            130, f"interrupted: session {session_id} stopped part-way", f"continue with `{resume}`"
        )


def act_on_session(
    ctx: typer.Context,
    home: Path | None,
    session: str,
    act: Callable[[Engine, str], LearningSession],
    *,
    as_json: bool = False,
) -> tuple[LearningSession, Path]:
    """A review command's shared part: find the workspace and the session, `act` on it under the live
    progress display (the session may go on running), print the summary (the view under --json)."""
    path = resolve_home(ctx, home)
    from distill_es.cli.progress import step_progress

    progress = step_progress(ctx)
    with open_engine(ctx, path, drives=True, progress=progress) as engine:
        session_id = resolve_session(engine, session)
        with progress:
            view = act(engine, session_id)
    print_view(view, as_json)
    return view, path


def print_view(view: LearningSession, as_json: bool) -> None:
    """What a write command prints: the resulting session view, as JSON or as the summary."""
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        from distill_es.cli import render  # rich: only for a person

        out().print(render.session_summary(view))
