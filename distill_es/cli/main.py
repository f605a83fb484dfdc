"""The `distill-es` command line: the app, its global options, and every command mounted in the order
`--help` lists them. Each command calls the engine and renders what it returns.

Any error escaping a command becomes its exit code and one or two lines on stderr (cli/errors.py).
The commands: cli/workspace.py (init, demo, diagram, benchmark show), cli/benchmark.py (benchmark
run, compare), cli/sessions.py (run, resume,
sessions, show, history, verify), cli/decisions.py (review, approve, reject, rollback, cancel),
cli/doctor.py, cli/dev_servers.py, cli/transfer.py, cli/loop.py, cli/worker.py, cli/training.py.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from distill_es import __version__
from distill_es.adapters.terminal_safe import inert
from distill_es.cli import benchmark, decisions, engines, sessions, workspace
from distill_es.cli import loop as cli_loop
from distill_es.cli import transfer as cli_transfer
from distill_es.cli.console import JSON_ERRORS, err, print_error
from distill_es.cli.dev_servers import dev_servers
from distill_es.cli.doctor import doctor
from distill_es.cli.errors import report_error
from distill_es.cli.help_format import hide_flag_values
from distill_es.cli.options import ROOT_CONTEXT, Globals
from distill_es.cli.queue_status import queue
from distill_es.cli.training import training_app
from distill_es.cli.worker import worker


def wants_json(argv: Sequence[str]) -> bool:
    """`--json` among the options (not after `--`): errors are then JSON, usage errors included."""
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class _Group(TyperGroup):
    """Turns any error escaping a command into its exit code and a short message (one JSON object on
    stderr under --json: every command, mounted groups and new ones included, gets it here)."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        token = JSON_ERRORS.set(wants_json(argv))
        try:
            return super().main(argv, *rest, **options)
        finally:
            JSON_ERRORS.reset(token)

    def invoke(self, ctx: typer.Context) -> Any:
        token = ROOT_CONTEXT.set(ctx)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise  # explicit exits
        except typer.TyperException as exc:  # usage errors (2): typer prints them, or JSON here
            code, message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
            if not JSON_ERRORS.get() or code is None or message is None:
                raise
            print_error(message(), code=code)
            raise typer.Exit(code) from None
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                raise  # the reader went away (`export --all | head -1`): typer exits quietly
            globals_ = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
            raise typer.Exit(report_error(exc, debug=globals_.debug)) from None
        finally:
            ROOT_CONTEXT.reset(token)


app = typer.Typer(
    name="distill-es",
    cls=_Group,
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="Event-sourced learning sessions: a teacher model diagnoses a local student agent, plans typed "
    "edits to its workspace, and a benchmark gate keeps only the edits that help.\n\n"
    "Start with `distill-es demo` (offline, no API key).",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"distill-es {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", metavar="DIR", show_default=False,
                     help="The workspace (else $DISTILL_ES_HOME, else the nearest one at or "
                     "above the current directory)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="URL", envvar="DISTILL_ES_STORE", show_default=False,
                     help="Event store URL: sqlite:///path or postgresql://user@host:port/db. "
                     "Default: <home>/.distill_es/events.sqlite."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or notes on stderr: results and errors only.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="A progress line for every step, in logs and pipes too.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:  # fmt: skip
    if quiet and verbose:
        raise typer.BadParameter("choose one of --quiet and --verbose", param_hint="--quiet")
    ctx.obj = Globals(home=home, store=store, debug=debug, quiet=quiet, verbose=verbose)


# The commands, in the order `--help` lists them (groups come after the commands).
app.command(cls=workspace.InitCommand)(workspace.init)  # its --openjarvis takes an optional folder
for command in (
    workspace.demo,
    sessions.run, sessions.resume, sessions.sessions, sessions.show, sessions.history,
    decisions.review, decisions.approve, decisions.reject, decisions.rollback, decisions.cancel,
    sessions.verify, doctor, workspace.diagram,
):  # fmt: skip
    app.command()(command)
app.command("dev-servers")(dev_servers)
cli_transfer.register(app, engines.transfer_engine)
cli_loop.register(app, engines.loop_engine)
app.command()(worker)
app.command()(queue)
benchmark.register(workspace.benchmark_app)
app.add_typer(workspace.benchmark_app, name="benchmark")
app.add_typer(training_app, name="training")
hide_flag_values()


def _undecodable_argument(argv: list[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python keeps its bad bytes as lone surrogates, which
    no event, commit or JSON can hold), shown inert; None when every argument is text."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return inert(arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return None


def main() -> None:
    """The `distill-es` entry point."""
    bad = _undecodable_argument(sys.argv[1:])
    if bad is not None:
        err().print(Text(f"error: the argument {bad} is not UTF-8 text"), soft_wrap=True)
        err().print(Text("hint: pass names, notes and reasons as UTF-8 text"), soft_wrap=True)
        raise SystemExit(2)
    app()


if __name__ == "__main__":
    main()
