"""Commands for the loop, the daemon and flags, mountable on any typer app with `register`.

    register(app, open_engine)   # open_engine(home: Path | None, *, read_only=False) -> Engine; None: the
                                 # default workspace; read_only (`loops`): create no store or folder

Exit codes follow the main command line: 0 success, 1 the loop stopped because a session failed (or
`daemon --once` ran a session that failed), 2 usage error, 3 not found; other errors propagate to the
app's own error handling (conflicts 4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from distill_es.adapters.terminal_safe import inert, json_safe
from distill_es.cli.console import out, print_error, print_note
from distill_es.cli.identity import who
from distill_es.cli.options import ByOption, HomeOption, JsonOption, Number, TracesOption
from distill_es.cli.render import score
from distill_es.domain.enums import AutonomyMode, SessionStatus

if TYPE_CHECKING:  # the loop, the daemon and the engine are imported by the commands that run them:
    # every other command (and --help) starts without them
    from distill_es.api import Engine
    from distill_es.app.daemon import DaemonTick
    from distill_es.domain.loop.views import LoopView

EngineOpener = Callable[..., "Engine"]  # (home: Path | None, *, read_only: bool = False)

# The numeric options' bounds, checked before a workspace is opened (nan, inf, `1_0`: exit 2).
STAGNATION_K = Number(1, 1_000_000, integer=True)
EPS = Number(0.0, 1.0)  # scores are 0-1
COST = Number(0.0, 1_000_000.0)  # above 0 too: checked in the command
INTERVAL = Number(1.0, 7 * 86400.0)


def _fail(code: int, message: str, hint: str = "") -> typer.Exit:
    """The error lines of the main app, and the exit: these commands work on any app they are mounted on."""
    print_error(message, hint, code)
    return typer.Exit(code)


def tick_json(result: DaemonTick) -> dict[str, Any]:
    """One daemon evaluation as data: when, what it did, the session, and every trigger's verdict."""
    return {
        "at": result.at.isoformat(),
        "action": result.action,
        "session_id": result.session_id,
        "session": result.session.model_dump(mode="json") if result.session is not None else None,
        "note": result.note,
        "decisions": [asdict(d) for d in result.decisions],
    }


def loop_table(view: LoopView) -> Table:
    table = Table(title=f"loop {view.id}", title_justify="left")
    for column in ("#", "session", "status", "before", "after", "best", "improved", "cost $", "note"):
        table.add_column(column, overflow="fold")
    for s in view.sessions:
        improved = "—" if s.improved is None else ("yes" if s.improved else "no")
        cost = "—" if s.cost_usd is None else f"{s.cost_usd:.4f}"
        table.add_row(
            str(s.iteration), inert(s.session_id[:8]), inert(s.status or "in flight"), score(s.before_score),
            score(s.after_score), score(s.best_score), improved, cost, inert(s.note),
        )  # fmt: skip
    return table


def loop_summary(view: LoopView) -> Text:
    reason = view.stop_reason.value if view.stop_reason else "still running"
    text = f"{reason}: {inert(view.detail)}" if view.detail else reason
    return Text(
        f"{text}\n{len(view.sessions)} session(s), best gated score {score(view.best_score)}, "
        f"total cost ${view.total_cost_usd:.4f} of ${view.params.max_total_cost_usd:.2f}"
    )


def loops_table(views: list[LoopView]) -> Table:
    table = Table(title="loops", title_justify="left")
    for column in ("loop", "status", "sessions", "best", "cost $", "stopped by", "started"):
        table.add_column(column)
    for v in views:
        table.add_row(
            inert(v.id[:8]), inert(v.status), str(len(v.sessions)), score(v.best_score),
            f"{v.total_cost_usd:.4f}",
            v.stop_reason.value if v.stop_reason else "—", f"{v.started_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    return table


def _resolve_loop(engine: Engine, ref: str) -> str:
    """A loop id, or a unique prefix of one of this workspace's loops."""
    ref = ref.strip().lower()
    matches = [v.id for v in engine.loops() if v.id.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        engine.get_loop(ref)  # a full id of another workspace's loop still resolves; else LoopNotFound
        return ref
    raise _fail(
        2, f"loop prefix {ref!r} is ambiguous: it matches {len(matches)} loops", "give more characters"
    )


def _reading(open_engine: EngineOpener) -> dict[str, bool]:
    """`read_only=True` for an opener that takes it (older openers do not)."""
    from distill_es.ports import accepts_keyword

    return {"read_only": True} if accepts_keyword(open_engine, "read_only") else {}


def _reading_traces(open_engine: EngineOpener, traces: Path | None) -> dict[str, Path]:
    """`traces=` (--traces) for an opener that takes it; an opener that does not cannot honour it."""
    from distill_es.ports import accepts_keyword

    if traces is None:
        return {}
    if not accepts_keyword(open_engine, "traces"):
        raise _fail(2, "--traces is not available where these commands are mounted")
    return {"traces": traces}


def register(app: typer.Typer, open_engine: EngineOpener) -> None:
    """Add `loop`, `loops`, `daemon` and `flag` to `app`."""

    @app.command("loop")
    def loop_command(
        home: HomeOption = None,
        stagnation_k: Annotated[
            int, typer.Option("--stagnation-k", parser=STAGNATION_K, metavar="K",
                              help="Stop after k sessions without improvement (1 or more).")
        ] = 5,
        eps: Annotated[
            float, typer.Option("--eps", parser=EPS, metavar="EPS",
                                help="An improvement must beat the best score by more (0-1).")
        ] = 0.001,
        max_total_cost: Annotated[
            float, typer.Option("--max-total-cost", metavar="USD", parser=COST,
                                help="Stop once the sessions spent this (above 0).")
        ] = 50.0,
        resume: Annotated[
            str | None,
            typer.Option("--resume", metavar="LOOP_ID", show_default=False,
                         help="Continue this loop (after a crash or Ctrl-C) with its recorded settings."),
        ] = None,
        autonomy: Annotated[
            AutonomyMode | None,
            typer.Option("--autonomy", show_default=False, help="Override session.autonomy_mode."),
        ] = None,
        traces: TracesOption = None,
        as_json: JsonOption = False,
    ) -> None:  # fmt: skip
        """Run learning sessions back to back, each chained to the previous one (paper Algorithm 1).

        Stops on stagnation, budget, a failed session, or a session awaiting review. Exit 1 only when
        a session failed.
        """
        from distill_es.domain.loop.errors import LoopNotFound
        from distill_es.domain.loop.rules import StopReason

        if max_total_cost <= 0:
            raise _fail(2, f"--max-total-cost must be above 0, got {max_total_cost}")
        from distill_es.domain.triggers import OnDemandTrigger

        engine = open_engine(home, **_reading_traces(open_engine, traces))
        try:
            loop_id = _resolve_loop(engine, resume) if resume else None

            def progress(message: str, _view: LoopView) -> None:
                print_note(f"▸ {inert(message)}", style="")

            view = engine.loop(
                OnDemandTrigger({"source": "distill-es loop"}), stagnation_k=stagnation_k,
                stagnation_eps=eps, max_total_cost_usd=max_total_cost, loop_id=loop_id, autonomy=autonomy,
                on_progress=None if as_json else progress,
            )  # fmt: skip
        except LoopNotFound as exc:
            raise _fail(3, str(exc), "list loops with `distill-es loops`") from None
        finally:
            engine.close()
        if as_json:
            typer.echo(json.dumps(view.model_dump(mode="json"), indent=2))
        else:
            out().print(loop_table(view))
            out().print(loop_summary(view))
        if view.stop_reason == StopReason.FAILED:
            detail = f": {view.detail}" if view.detail else ""
            raise _fail(1, f"loop {view.id} stopped: a session failed{detail}", "`distill-es show SESSION`")

    @app.command("loops")
    def loops_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
        """List this workspace's loops, newest first."""
        engine = open_engine(home, **_reading(open_engine))
        try:
            views = engine.loops()
        finally:
            engine.close()
        if as_json:
            typer.echo(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        elif not views:
            out().print("no loops yet: start one with `distill-es loop`")
        else:
            out().print(loops_table(views))

    @app.command("daemon")
    def daemon_command(
        home: HomeOption = None,
        once: Annotated[bool, typer.Option("--once", help="Evaluate the triggers once, then exit.")] = False,
        interval: Annotated[
            float,
            typer.Option(
                "--interval", metavar="SECONDS", parser=INTERVAL, help="Time between evaluations (1-604800)."
            ),
        ] = 60.0,
        traces: TracesOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Evaluate the \\[triggers] table of distill_es.toml and start sessions when they fire (foreground).

        Prints, every evaluation, what fired and why, and what did not and why (with --json: one JSON
        object a line per evaluation). At most one session runs per workspace at a time.
        """
        from distill_es.app.daemon import run_daemon

        engine = open_engine(home, **_reading_traces(open_engine, traces))

        def show(result: DaemonTick) -> None:
            if as_json:  # JSON Lines: a foreground daemon's output is read as it comes
                typer.echo(json_safe(json.dumps(tick_json(result), ensure_ascii=False, default=str)))
                return
            for line in result.lines():
                out().print(Text(inert(line)), soft_wrap=True)

        try:
            last = run_daemon(engine, once=once, interval_seconds=interval, on_tick=show)
        except KeyboardInterrupt:
            raise _fail(130, "daemon stopped (interrupted)") from None
        finally:
            engine.close()
        if once and last.session is not None and last.session.status == SessionStatus.FAILED:
            failed = last.session
            raise _fail(1, f"session {failed.id} failed: {failed.error}", f"`distill-es show {failed.id}`")

    @app.command("flag")
    def flag_command(
        trace_id: Annotated[str, typer.Argument(metavar="TRACE_ID", help="The trace to learn from.")],
        home: HomeOption = None,
        note: Annotated[str, typer.Option("--note", help="What was wrong with it.")] = "",
        by: ByOption = None,
        traces: TracesOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Flag a trace: the daemon's user_flag trigger starts a session about it (once)."""
        from distill_es.domain.trigger_log.errors import TraceNotFound

        engine = open_engine(home, **_reading_traces(open_engine, traces))
        try:
            flag = engine.flag(trace_id, note=note, flagged_by=who(by))
        except TraceNotFound as exc:
            raise _fail(3, str(exc), "flag a trace_id from traces.jsonl / traces.db") from None
        finally:
            engine.close()
        if as_json:
            typer.echo(json.dumps(flag.model_dump(mode="json"), indent=2))
        else:
            out().print(
                f"flagged trace {inert(flag.trace_id)} (flag {inert(flag.flag_id)}, {inert(flag.status)})"
            )
