"""The `distill-es` command line: the app, its global options, and every command mounted in the order
`--help` lists them. Each command calls the engine and renders what it returns.

Any error escaping a command becomes its exit code and one or two lines on stderr (cli/errors.py).
Commands are imported when they run (`COMMANDS`, cli/lazy.py).
The commands: cli/workspace.py (init, demo, diagram, benchmark show), cli/benchmark.py (benchmark
run, compare), cli/sessions.py (run, resume,
sessions, show, history, verify), cli/decisions.py (review, approve, reject, rollback, cancel),
cli/doctor.py, cli/dev_servers.py, cli/transfer.py, cli/loop.py, cli/worker.py, cli/training.py.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from distill_es import __version__
from distill_es.adapters.terminal_safe import inert
from distill_es.cli import collector
from distill_es.cli.console import JSON_ERRORS, ErrorsWritten, errors_written, print_error
from distill_es.cli.errors import report_error
from distill_es.cli.help_format import hide_flag_values
from distill_es.cli.lazy import LazyCommands
from distill_es.cli.options import ROOT_CONTEXT, Globals
from distill_es.cli.pipes import (
    closed_pipe,
    flush_quietly,
    open_missing_streams,
    quiet_exit,
    reraise_closed_pipes,
)


def wants_json(argv: Sequence[str]) -> bool:
    """`--json` among the options (not after `--`): errors are then JSON, usage errors included."""
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class _Group(LazyCommands, TyperGroup):
    """Turns any error escaping a command into its exit code and a short message (one JSON object on
    stderr under --json: every command, mounted groups and new ones included, gets it here); ends
    quietly with 141 when the reader of stdout (or of the error on stderr) went away; and lets every
    command take the global flags after its name too (`distill-es run --quiet`). The commands of
    `COMMANDS` are imported only when they run (or `--help` lists them): cli/lazy.py."""

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:  # built on lookup (lazy): the global flags join it then
            from distill_es.cli.global_flags import add_global_flags_to

            add_global_flags_to(command)
            collector.settle()  # the command's modules are imported: freeze them, collect from here
        return command

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        from distill_es.cli.global_flags import json_to_command

        argv = json_to_command(list(sys.argv[1:] if args is None else args))
        token = JSON_ERRORS.set(wants_json(argv))
        written = errors_written.set(ErrorsWritten())
        try:
            return super().main(argv, *rest, **options)
        finally:
            errors_written.reset(written)
            JSON_ERRORS.reset(token)
            flush_quietly()

    def make_context(self, info_name: str | None, args: list[str], *rest: Any, **extra: Any) -> typer.Context:
        """The root's own options and --help: a usage error is JSON under --json, a closed pipe quiet."""
        try:
            return super().make_context(info_name, args, *rest, **extra)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:
            code, message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
            if not JSON_ERRORS.get() or code is None or message is None:
                raise
            print_error(message(), code=code)
            raise typer.Exit(code) from None
        except OSError as exc:
            if closed_pipe(exc):
                raise quiet_exit() from None
            raise

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return self._invoke_reporting(ctx)
        except OSError as exc:  # the error itself could not be written: its reader went away too
            if closed_pipe(exc):
                raise quiet_exit() from None
            raise

    def _invoke_reporting(self, ctx: typer.Context) -> Any:
        token = ROOT_CONTEXT.set(ctx)
        try:
            return super().invoke(ctx)
        except typer.Exit as exc:  # explicit exits; under --json a failure always says so on stderr
            code = exc.exit_code
            if code and JSON_ERRORS.get() and not getattr(errors_written.get(), "any", False):
                command = f"distill-es {ctx.invoked_subcommand or ''}".strip()
                print_error(f"`{command}` failed (exit code {code})", code=code)
            raise
        except (typer.Abort, KeyboardInterrupt):  # Ctrl-C outside a session's own handling: 130, one line
            print_error("interrupted", code=130)
            raise typer.Exit(130) from None
        except typer.TyperException as exc:  # usage errors (2): typer prints them, or JSON here
            code, message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
            if not JSON_ERRORS.get() or code is None or message is None:
                raise
            print_error(message(), code=code)
            raise typer.Exit(code) from None
        except Exception as exc:
            if closed_pipe(exc):
                raise quiet_exit() from None  # the reader went away (`export --all | head -1`)
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


# The commands, in the order `--help` lists them: name -> "module:attribute" (a command function, or a
# typer.Typer for a group), imported only when that command runs, so a read command never imports what
# the others need (the SDKs, GitPython, tomlkit). A new command is one line here. Groups of commands a
# module registers with `register(app, opener)` are named by a factory, `"module:factory()"`. A name
# mapped to None is one registered on `app` itself; commands registered on `app` and not named here
# are listed after these (cli/lazy.py).
COMMANDS: dict[str, str | None] = {
    "init": "distill_es.cli.workspace:init:InitCommand",  # --openjarvis takes an optional folder
    "demo": "distill_es.cli.workspace:demo",
    "run": "distill_es.cli.sessions:run",
    "resume": "distill_es.cli.sessions:resume",
    "sessions": "distill_es.cli.sessions:sessions",
    "show": "distill_es.cli.sessions:show",
    "history": "distill_es.cli.sessions:history",
    "review": "distill_es.cli.decisions:review",
    "approve": "distill_es.cli.decisions:approve",
    "reject": "distill_es.cli.decisions:reject",
    "rollback": "distill_es.cli.decisions:rollback",
    "cancel": "distill_es.cli.decisions:cancel",
    "verify": "distill_es.cli.sessions:verify",
    "doctor": "distill_es.cli.doctor:doctor",
    "diagram": "distill_es.cli.workspace:diagram",
    "regate": "distill_es.cli.audit:regate",
    "explain": "distill_es.cli.audit:explain",
    "dev-servers": "distill_es.cli.dev_servers:dev_servers",
    "export": "distill_es.cli.main:transfer_commands()",
    "import": "distill_es.cli.main:transfer_commands()",
    "loop": "distill_es.cli.main:loop_commands()",
    "loops": "distill_es.cli.main:loop_commands()",
    "daemon": "distill_es.cli.main:loop_commands()",
    "flag": "distill_es.cli.main:loop_commands()",
    "worker": "distill_es.cli.worker:worker",
    "queue": "distill_es.cli.queue_status:queue",
    "ui": "distill_es.cli.ui:ui",
    "report": "distill_es.cli.ui:report",
    "enqueue": "distill_es.cli.enqueue:enqueue",
    "benchmark": "distill_es.cli.benchmark:benchmark_group",
    "training": "distill_es.cli.training:training_app",
}  # fmt: skip
_Group.lazy = COMMANDS


@functools.cache
def transfer_commands() -> typer.Typer:
    """`export` and `import`, as cli/transfer.py registers them with our engine opener."""
    from distill_es.cli import engines
    from distill_es.cli import transfer as cli_transfer

    commands = typer.Typer()
    cli_transfer.register(commands, engines.transfer_engine)
    return commands


@functools.cache
def loop_commands() -> typer.Typer:
    """`loop`, `loops`, `daemon` and `flag`, as cli/loop.py registers them with our engine opener."""
    from distill_es.cli import engines
    from distill_es.cli import loop as cli_loop

    commands = typer.Typer()
    cli_loop.register(commands, engines.loop_engine)
    return commands


hide_flag_values()
reraise_closed_pipes()


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
    open_missing_streams()
    bad = _undecodable_argument(sys.argv[1:])
    if bad is not None:
        token = JSON_ERRORS.set(wants_json(sys.argv[1:]))
        print_error(f"the argument {bad} is not UTF-8 text", "pass names, notes and reasons as UTF-8 text", 2)
        JSON_ERRORS.reset(token)
        raise SystemExit(2)
    app()


if __name__ == "__main__":
    main()
