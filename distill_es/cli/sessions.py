"""Commands that run and read sessions: `run`, `resume`, `sessions`, `show`, `history`, `verify`.

Each finds the workspace, opens the engine, and renders what the engine returns (cli/render.py).
Reviewers' decisions on a session are in cli/decisions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from distill_es.adapters.terminal_safe import inert
from distill_es.cli.console import out, print_error, print_json, print_note
from distill_es.cli.engines import checked_traces, is_demo, open_engine, resolve_home, resolve_session
from distill_es.cli.errors import CliFailure
from distill_es.cli.options import (
    AutonomyOption,
    ClusterDescriptionOption,
    HomeOption,
    JsonOption,
    SessionArg,
    TraceIdOption,
    TracesOption,
    TriggerOption,
    globals_of,
)
from distill_es.cli.teachers import (
    TEACHER_METAVAR,
    LazyAnthropic,
    build_teacher,
    record_spec,
    require_api_key,
    teacher_spec,
)
from distill_es.config.paths import resolve
from distill_es.domain.enums import SessionStatus, TriggerKind

# rich (tables, styled text, the progress line) and the renderers are imported where a command prints
# for a person: the --json reads never load them (docs/performance.md, "Cold start").
if TYPE_CHECKING:
    from distill_es.domain.vocabulary import Trigger


def _render() -> ModuleType:
    from distill_es.cli import render

    return render


PAGE = 20  # `sessions` lists this many unless --limit or --all says otherwise
MAX_PAGING = 2**31 - 1  # --limit/--offset beyond it: a usage error (SQLite takes 64-bit at most)


def build_trigger(kind: TriggerKind, trace_ids: list[str], description: str | None) -> Trigger:
    from distill_es.domain import triggers

    if description is not None and kind != TriggerKind.CLUSTER:  # never dropped silently
        raise typer.BadParameter(
            "only a --trigger cluster takes a description", param_hint="--cluster-description"
        )
    if description is not None and not description.strip():
        raise typer.BadParameter("the description is empty", param_hint="--cluster-description")
    if kind == TriggerKind.SCHEDULED and trace_ids:
        raise typer.BadParameter("a scheduled trigger names no trace", param_hint="--trace-id")
    if kind == TriggerKind.USER_FLAG:
        if len(trace_ids) != 1:
            raise typer.BadParameter(
                "a user_flag trigger needs exactly one --trace-id", param_hint="--trace-id"
            )
        return triggers.UserFlagTrigger(trace_ids[0])
    if kind == TriggerKind.CLUSTER:
        text = description or "a failure cluster flagged from the command line"
        return triggers.ClusterTrigger(text, trace_ids=trace_ids)
    if kind == TriggerKind.SCHEDULED:
        return triggers.ScheduledTrigger()
    return triggers.OnDemandTrigger({"source": "distill-es run", "trace_ids": trace_ids} if trace_ids else {})


def run(
    ctx: typer.Context,
    home: HomeOption = None,
    trigger: TriggerOption = TriggerKind.ON_DEMAND,
    trace_id: TraceIdOption = None,
    cluster_description: ClusterDescriptionOption = None,
    autonomy: AutonomyOption = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", callback=teacher_spec, metavar=TEACHER_METAVAR, show_default=False,
                     help="The teacher. Default: anthropic (needs ANTHROPIC_API_KEY); on a demo workspace "
                     "the shipped cassette."),
    ] = None,
    record_cassette: Annotated[
        Path | None,
        typer.Option("--record-cassette", metavar="PATH", show_default=False, callback=record_spec,
                     help="Append every teacher call to this cassette, to replay later offline."),
    ] = None,
    traces: TracesOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Run one learning session, with live progress.

    Ends with a summary of the session's edits. Exit 0 when the session rests completed or
    awaiting_review, 1 when it failed.
    """
    from distill_es.cli.doctor import require_preflight  # only `run` checks: not every read command

    path = resolve_home(ctx, home)
    chosen_trigger = build_trigger(trigger, list(trace_id or []), cluster_description)
    source = checked_traces(path, traces)  # named by --traces or [traces] source: missing 3, invalid 2
    # files, counts, store, git: before anything is recorded
    require_preflight(path, globals_of(ctx).store, traces=resolve(traces) if traces else None)
    if teacher == "anthropic" or (teacher is None and not is_demo(path)):
        require_api_key()  # before a session is recorded, not half-way through it
        teacher = teacher or "anthropic"
    elif teacher is None and record_cassette is not None:  # re-record the demo's own cassette
        from distill_es.demo.run import CASSETTE

        teacher = f"cassette:{CASSETTE}"
    from distill_es.cli.driving import drive, print_view, session_exit
    from distill_es.cli.progress import step_progress

    progress = step_progress(ctx)
    with open_engine(ctx, path, drives=True, teacher=build_teacher(teacher, record_cassette),
                     progress=progress, source=source) as engine:  # fmt: skip
        session_id = engine.start(chosen_trigger, autonomy=autonomy)
        if not progress.quiet:
            print_note(f"session {session_id} started on {path}")
        view = drive(engine, session_id, progress, path)
    print_view(view, as_json)
    session_exit(view, path)


def resume(
    ctx: typer.Context,
    session: SessionArg,
    home: HomeOption = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", callback=teacher_spec, metavar=TEACHER_METAVAR, show_default=False,
                     help="The teacher, if the session still needs one (as for run)."),
    ] = None,
    traces: TracesOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Continue an interrupted session from its last recorded step.

    A session that is already resting (awaiting_review, completed, failed) is just shown.
    """
    path = resolve_home(ctx, home)
    from distill_es.cli.driving import drive, print_view, session_exit
    from distill_es.cli.progress import step_progress

    progress = step_progress(ctx)
    chosen = build_teacher(teacher, None) if teacher else (None if is_demo(path) else LazyAnthropic())
    source = checked_traces(path, traces) if traces is not None else None  # else read when needed
    with open_engine(ctx, path, drives=True, teacher=chosen, progress=progress, source=source) as engine:
        view = drive(engine, resolve_session(engine, session), progress, path)
    print_view(view, as_json)
    session_exit(view, path)


def sessions(
    ctx: typer.Context,
    home: HomeOption = None,
    status: Annotated[
        SessionStatus | None,
        typer.Option("--status", help="Only sessions in this state.", show_default=False),
    ] = None,
    trigger: Annotated[
        TriggerKind | None,
        typer.Option("--trigger", help="Only sessions started so.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="N", min=1, max=MAX_PAGING, show_default=False,
                     help=f"At most this many. Default: {PAGE} (a note on stderr says when there are more)."),
    ] = None,
    offset: Annotated[
        int,
        typer.Option(
            "--offset", metavar="N", min=0, max=MAX_PAGING, help="Skip the N newest first (the next page)."
        ),
    ] = 0,
    all_sessions: Annotated[bool, typer.Option("--all", help="Every session, however many.")] = False,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """List this workspace's sessions, newest first.

    A damaged session is listed on stderr as damaged (with what `distill-es verify` will detail);
    the others are listed as usual.
    """
    if all_sessions and limit is not None:
        raise CliFailure(
            2, "give either --limit or --all, not both", "--all lists every session; --limit N a page"
        )
    path = resolve_home(ctx, home)
    # A page by default: each listed session is loaded and checked, so a store of thousands is paged.
    page = None if all_sessions else (limit or PAGE)
    filters: dict[str, Any] = {"limit": page, "offset": offset}
    if trigger is not None:
        filters["trigger"] = trigger.value
    with open_engine(ctx, path, read_only=True) as engine:
        views, damaged = engine.sessions_and_damage(status=status, **filters)
        shown = len(views) + len(damaged)
        more = page is not None and shown >= page  # a full page: count what the next pages hold
        total = engine.session_count(status=status, **filters) if more else offset + shown
    queue = status == SessionStatus.INITIATED  # the workers' queue: how long each has waited
    now = datetime.now(UTC)
    if as_json:
        listed = [view.model_dump(mode="json") for view in views]
        if queue:
            for item, view in zip(listed, views, strict=True):
                item["age_seconds"] = _render().age_seconds(view, now)
        print_json(listed + [{"id": d.session_id, "status": "damaged", "error": str(d)} for d in damaged])
    elif not views and not damaged and offset:
        out().print(f"no sessions past the newest {offset}")
    elif not views and not damaged:
        out().print("no sessions yet: start one with `distill-es run` (or try `distill-es demo`)")
    elif views:
        out().print(_render().sessions_table(views, waiting_at=now if queue else None))
    for problem in [] if as_json else damaged:
        print_note(f"damaged: {inert(problem)}", style="bold red")
    if total > offset + shown and not as_json and not globals_of(ctx).quiet:
        note = f"sessions {offset + 1}-{offset + shown} of {total} shown, newest first: "
        note += f"--offset {offset + shown} for the next page, --all for every one"
        print_note(note)


def _parse_at(value: str) -> int | datetime:
    if value.isdigit():
        if int(value) < 1:
            raise typer.BadParameter("versions start at 1", param_hint="--at")
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a version number nor an ISO 8601 time",
                                 param_hint="--at") from None  # fmt: skip
    return moment.astimezone()  # a time without zone is local time


def show(
    ctx: typer.Context,
    session: SessionArg,
    home: HomeOption = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="VERSION|TIME", show_default=False,
                     help="The session as it was at this event version (or ISO 8601 time)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Show one session: state, benchmark, diagnosis and edits.

    With --at, the session as it was at that event version (see `history`) or time.
    """
    path = resolve_home(ctx, home)
    moment = _parse_at(at) if at is not None else None
    with open_engine(ctx, path, read_only=True) as engine:
        session_id = resolve_session(engine, session)
        if isinstance(moment, datetime):
            view = engine.get_at(session_id, moment)
        else:
            view = engine.get(session_id, version=moment)
        unpriced = None if as_json else _render().unpriced_models(engine.cost_ledger(session_id))
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        out().print(_render().session_detail(view, unpriced))


def history(
    ctx: typer.Context, session: SessionArg, home: HomeOption = None, as_json: JsonOption = False
) -> None:
    """The audit timeline of a session: one line per event.

    Each line: version, time (UTC), who (engine, teacher, student or a reviewer), what.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        entries = engine.history(resolve_session(engine, session))
    if as_json:
        print_json(entries)
    else:
        out().print(_render().history_lines(entries), end="", soft_wrap=True)


def verify(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(
            metavar="SESSION", help="Only this session (id or prefix). Default: all.", show_default=False
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the event log: digests chain, sessions replay, projections agree, and every log head
    anchored in the workspace's git history (Distill-Log-Head trailers) is still in the log.

    Exit 1 when damage is found, listing session, position (event version) and kind. The anchors do
    not need the index: a cut or rewritten log is found with .distill_es/views*.sqlite deleted.
    """
    path = resolve_home(ctx, home)
    with open_engine(ctx, path, read_only=True) as engine:
        reports = engine.verify(resolve_session(engine, session) if session is not None else None)
    if as_json:
        print_json([report.model_dump(mode="json") for report in reports])
    else:
        out().print(_render().verify_table(reports))
    if any(not report.ok for report in reports):
        where = "the reports on stdout" if as_json else "the table above"
        print_error(f"damage found in the event log (see {where})", code=1)
        raise typer.Exit(1)
