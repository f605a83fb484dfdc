"""A reviewer's commands on sessions: `review`, `approve`, `reject`, `rollback`, `cancel`.

Approving or rejecting an edit may let the session go on: it runs under the live progress display.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from distill_es.adapters.terminal_safe import inert
from distill_es.cli import render
from distill_es.cli.console import out, print_json
from distill_es.cli.driving import act_on_session, git_log, session_exit
from distill_es.cli.engines import open_engine, resolve_home, resolve_session
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import HomeOption, JsonOption, SessionArg


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
    out().print(render.review_items(items))
    if notes := render.unworked_edits(sessions.values()):  # what the plan dropped, beside what waits
        out().print(notes)
    first = items[0]
    decide = f"distill-es approve {inert(first['session_id'])} {inert(first['edit_id'])} --by NAME"
    out().print(f"decide with: {decide}   (or reject … --by NAME --reason TEXT)", soft_wrap=True)


def approve(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[
        str, typer.Argument(metavar="EDIT", help="The pending edit's id, e.g. edit_003.", show_default=False)
    ],
    by: Annotated[
        str,
        typer.Option("--by", metavar="NAME", help="Who approves (recorded in the log).", show_default=False),
    ],
    note: Annotated[str, typer.Option("--note", metavar="TEXT", help="A note kept with the approval.")] = "",
    home: HomeOption = None,
) -> None:
    """Approve a pending edit: it is applied and gated now.

    The session then goes on: completed once no edit is pending any more.
    """
    view, path = act_on_session(
        ctx, home, session, lambda e, sid: e.approve(sid, edit, reviewer=by, note=note)
    )
    session_exit(view, path)


def reject(
    ctx: typer.Context,
    session: SessionArg,
    edit: Annotated[str, typer.Argument(metavar="EDIT", help="The pending edit's id.", show_default=False)],
    by: Annotated[
        str,
        typer.Option("--by", metavar="NAME", help="Who rejects (recorded in the log).", show_default=False),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log).", show_default=False)
    ],
    home: HomeOption = None,
) -> None:
    """Reject a pending edit; it is never applied.

    The session completes once no edit is pending any more.
    """
    view, path = act_on_session(
        ctx, home, session, lambda e, sid: e.reject(sid, edit, reviewer=by, reason=reason)
    )
    session_exit(view, path)


def rollback(
    ctx: typer.Context,
    session: SessionArg,
    by: Annotated[
        str, typer.Option("--by", metavar="NAME", help="Who asks for the rollback (recorded).")
    ] = "user",
    home: HomeOption = None,
) -> None:
    """Revert every applied edit of a session; it ends rolled_back.

    Edits are reverted newest first, one git revert commit each; the workspace's git log is shown.
    """
    _, path = act_on_session(ctx, home, session, lambda e, sid: e.rollback(sid, requested_by=by))
    out().print(Text("\nworkspace git log (newest first):", style="bold"))
    out().print(git_log(path), end="", soft_wrap=True)


def cancel(
    ctx: typer.Context,
    session: SessionArg,
    by: Annotated[
        str, typer.Option("--by", metavar="NAME", help="Who cancels (recorded).", show_default=False)
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded in the log).", show_default=False)
    ],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a session that cannot go on (initiated, diagnosing, planning or executing).

    It rests failed, reason `cancelled`, with who and why in its history. Edits it had committed but
    not gated are reverted; its accepted edits stay (`rollback` reverts them). Exit 0 once cancelled;
    4 if the session already rests (or another process is running it).
    """
    if not by.strip() or not reason.strip():
        raise CliFailure(2, "cancel needs a name (--by) and a reason (--reason)")
    path = resolve_home(ctx, home)
    with open_engine(ctx, path) as engine:
        view = engine.cancel(resolve_session(engine, session), by=by, reason=reason)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    out().print(render.session_summary(view))
