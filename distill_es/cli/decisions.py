"""A reviewer's commands on sessions: `review`, `approve`, `reject`, `rollback`, `cancel`.

Approving or rejecting an edit may let the session go on: it runs under the live progress display.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from distill_es.adapters.terminal_safe import inert
from distill_es.cli.console import out, print_json
from distill_es.cli.driving import act_on_session, git_log, print_view, session_exit
from distill_es.cli.engines import open_engine, resolve_home, resolve_session
from distill_es.cli.errors import CliFailure
from distill_es.cli.identity import who
from distill_es.cli.options import ByOption, HomeOption, JsonOption, SessionArg, globals_of
from distill_es.domain.errors import EditNotFound

if TYPE_CHECKING:
    from distill_es.api import Engine
    from distill_es.domain.vocabulary import LearningSession


def review(ctx: typer.Context, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Edits waiting for a reviewer, with their diff previews.

    Under them, the edits of the same sessions that never reached a gate (refused at plan time,
    invalid, apply_failed), each with its reason.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        items = engine.pending_reviews()
        sessions = {sid: engine.get(sid) for sid in dict.fromkeys(item["session_id"] for item in items)}
    if as_json:
        print_json(items)
        return
    if not items:
        out().print("nothing is waiting for review")
        return
    from distill_es.cli import render  # rich: only for a person

    out().print(render.review_items(items))
    if notes := render.unworked_edits(sessions.values()):  # what the plan dropped, beside what waits
        out().print(notes)
    first = items[0]
    decide = f"distill-es approve {inert(first['session_id'])} {inert(first['edit_id'])} --by NAME"
    out().print(f"decide with: {decide}   (or reject … --by NAME --reason TEXT)", soft_wrap=True)


def require_edit(engine: Engine, session_id: str, edit_id: str) -> None:
    """An edit id the session does not have is not found (3), whatever state the session is in."""
    view = engine.get(session_id)
    known = [e.id for e in view.plan.edits] if view.plan else []
    known += [o.edit_id for o in view.edit_outcomes if o.edit_id not in known]
    if edit_id not in known:
        listed = ", ".join(known) or "none"
        raise EditNotFound(f"session {session_id} has no edit {edit_id!r} (its edits: {listed})")


def decide(
    engine: Engine, session_id: str, edit_id: str, act: Callable[[], LearningSession]
) -> LearningSession:
    require_edit(engine, session_id, edit_id)
    return act()


def approve(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[
        str, typer.Argument(metavar="EDIT", help="The pending edit's id, e.g. edit_003.", show_default=False)
    ],
    by: ByOption = None,
    note: Annotated[str, typer.Option("--note", metavar="TEXT", help="A note kept with the approval.")] = "",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending edit: it is applied and gated now.

    The session then goes on: completed once no edit is pending any more.
    """
    name = who(by)
    view, path = act_on_session(
        ctx, home, session,
        lambda e, sid: decide(e, sid, edit, lambda: e.approve(sid, edit, reviewer=name, note=note)),
        as_json=as_json,
    )  # fmt: skip
    session_exit(view, path)


def reject(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[str, typer.Argument(metavar="EDIT", help="The pending edit's id.", show_default=False)],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log).", show_default=False)
    ],
    by: ByOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending edit; it is never applied.

    The session completes once no edit is pending any more.
    """
    name = who(by)
    view, path = act_on_session(
        ctx, home, session,
        lambda e, sid: decide(e, sid, edit, lambda: e.reject(sid, edit, reviewer=name, reason=reason)),
        as_json=as_json,
    )  # fmt: skip
    session_exit(view, path)


def rollback(
    ctx: typer.Context,
    session: SessionArg,
    by: ByOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revert every applied edit of a session; it ends rolled_back.

    Edits are reverted newest first, one git revert commit each; the workspace's git log is shown.
    """
    name = who(by)
    _, path = act_on_session(
        ctx, home, session, lambda e, sid: e.rollback(sid, requested_by=name), as_json=as_json
    )
    if not as_json:
        from rich.text import Text

        out().print(Text("\nworkspace git log (newest first):", style="bold"))
        out().print(git_log(path), end="", soft_wrap=True)


def cancel(
    ctx: typer.Context,
    session: SessionArg,
    reason: Annotated[  # "" by default: the command names every missing one of --by and --reason at once
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log). Required.",
                          show_default=False)
    ] = "",
    by: ByOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """End a session that cannot go on (initiated, diagnosing, planning or executing).

    It rests failed, reason `cancelled`, with who and why in its history. Edits it had committed but
    not gated are reverted; its accepted edits stay (`rollback` reverts them). Exit 0 once cancelled;
    4 if the session already rests (or another process is running it).
    """
    name = who(by)
    if not name.strip() or not reason.strip():
        raise CliFailure(2, "cancel needs a name (--by) and a reason (--reason)")
    path = resolve_home(ctx, home)
    from distill_es.api import Engine

    # Any store (a session stranded in another one), but never created: a cancel that finds no
    # session must leave no store behind.
    engine = Engine.open(path, store_url=globals_of(ctx).store, create_tables=False, own=False)
    try:
        view = engine.cancel(resolve_session(engine, session), by=name, reason=reason)
    finally:
        engine.close()
    print_view(view, as_json)
